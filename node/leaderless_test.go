package node

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestLeaderLost: a follower cut off from the others loses its leader
// after an election timeout (it becomes a pre-candidate) and reports
// LeaderLost only after leaderlessElectionTimeoutsMax election timeouts
// more; the members that still have a leader never do, and the follower
// stops as soon as it learns a leader again.
func TestLeaderLost(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	var follower uint64
	for _, id := range h.ids {
		if id != leader {
			follower = id
		}
	}
	f := h.node(follower)
	electionTicks := f.cfg.ElectionTicks
	h.drop = func(m *raftpb.Message) bool { return m.GetTo() == follower || m.GetFrom() == follower }
	lostAt := -1
	for tick := 1; tick <= (leaderlessElectionTimeoutsMax+3)*electionTicks && lostAt < 0; tick++ {
		h.tick()
		for _, id := range h.ids {
			if id != follower && h.node(id).LeaderLost() {
				t.Fatalf("tick %d: member %d, which has a leader, reports LeaderLost", tick, id)
			}
		}
		if f.LeaderLost() {
			lostAt = tick
		}
	}
	// The follower notices after one to two election timeouts (raft's
	// randomized timeout, counted from the last heartbeat it got, up to a
	// heartbeat interval before the cut), then waits three more.
	earliest := (leaderlessElectionTimeoutsMax+1)*electionTicks - f.cfg.HeartbeatTicks
	latest := (leaderlessElectionTimeoutsMax + 2) * electionTicks
	if lostAt < earliest || lostAt > latest {
		t.Fatalf("LeaderLost after %d ticks, want between %d and %d (election timeout %d ticks, heartbeat %d)", lostAt,
			earliest, latest, electionTicks, f.cfg.HeartbeatTicks)
	}
	h.drop = nil
	for tick := 0; f.LeaderLost(); tick++ {
		if tick > 3*electionTicks {
			t.Fatalf("still LeaderLost %d ticks after healing", tick)
		}
		h.tick()
	}
}
