package node

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// checkpointHarness is three members checkpointing leases every second.
func checkpointHarness(t *testing.T, knobs TestingKnobs) *harness {
	return newHarness(t, []uint64{1, 2, 3}, func(c *Config) {
		c.LeaseCheckpointInterval = time.Second
		c.Knobs = knobs
	})
}

// cutOffLeader isolates the leader and ticks until another member leads
// with its lessor promoted; it returns the old and the new leader.
func (h *harness) cutOffLeader() (old, next uint64) {
	h.t.Helper()
	old = h.leader()
	h.drop = func(m *raftpb.Message) bool { return m.GetFrom() == old || m.GetTo() == old }
	for range maxTicks {
		h.tick()
		for _, id := range h.ids {
			if id != old && h.node(id).Status().IsLeader && h.node(id).lessor.IsPrimary() {
				return old, id
			}
		}
	}
	h.t.Fatal("no new leader")
	return 0, 0
}

// remainingAfterLeaderChange grants a 10 s lease, lets 6 s pass, moves the
// leadership and returns the TTL the new leader reports for the lease.
func remainingAfterLeaderChange(t *testing.T, knobs TestingKnobs) int64 {
	h := checkpointHarness(t, knobs)
	lead := h.leader()
	id, _ := h.grant(lead, 0, 10)
	h.write(lead, leasePut("a", id))
	for range ticksFor(6) {
		h.tick()
	}
	for _, m := range h.ids {
		if r := h.node(m).lessor.RemainingSeconds(id); r < 3 || r > 5 {
			t.Fatalf("member %d: checkpointed remaining TTL %d after 6 s of a 10 s lease, want 4 (3 to 5)", m, r)
		}
	}
	_, next := h.cutOffLeader()
	_, remaining, err := h.node(next).lessor.TimeToLive(id, h.node(next).now())
	if err != nil {
		t.Fatal(err)
	}
	return remaining
}

// TestLeaseCheckpointAcrossLeaderChange: the new leader continues a lease
// from its checkpoint (about 4 s left, plus an election timeout), not from
// its full TTL (10 s plus an election timeout), which the planted bug
// gives it.
func TestLeaseCheckpointAcrossLeaderChange(t *testing.T) {
	if got := remainingAfterLeaderChange(t, TestingKnobs{}); got > 6 {
		t.Fatalf("new leader gives the lease %d s, want at most the checkpointed 5 s and an election timeout", got)
	}
	if got := remainingAfterLeaderChange(t, TestingKnobs{LeaseCheckpointIgnoredAtPromotion: true}); got < 10 {
		t.Fatalf("with the checkpoint ignored, the new leader gives the lease %d s, want its full 10 s: the planted bug is not planted", got)
	}
}

// TestLeaseCheckpointClearedByKeepAlive: a keep-alive clears the lease's
// checkpoint on every member before it renews, so a new leader gives the
// renewed lease its full TTL.
func TestLeaseCheckpointClearedByKeepAlive(t *testing.T) {
	h := checkpointHarness(t, TestingKnobs{})
	lead := h.leader()
	id, _ := h.grant(lead, 0, 10)
	for range ticksFor(4) {
		h.tick()
	}
	if h.node(lead).lessor.RemainingSeconds(id) == 0 {
		t.Fatal("no checkpoint applied after 4 s")
	}
	if ttl, err := h.renew(lead, id); err != nil || ttl != 10 {
		t.Fatalf("renew: %d, %v", ttl, err)
	}
	for range 3 { // followers learn the commit index from the next heartbeats
		h.tick()
	}
	for _, m := range h.ids {
		if r := h.node(m).lessor.RemainingSeconds(id); r != 0 {
			t.Fatalf("member %d: checkpoint %d s left after the keep-alive", m, r)
		}
	}
	_, next := h.cutOffLeader()
	if _, remaining, _ := h.node(next).lessor.TimeToLive(id, h.node(next).now()); remaining < 9 {
		t.Fatalf("new leader gives a lease renewed just before %d s, want its full TTL", remaining)
	}
}

// TestLeaseCheckpointSurvivesRestart: checkpoints are in the lease
// records, so a cluster restarted whole continues from them.
func TestLeaseCheckpointSurvivesRestart(t *testing.T) {
	h := checkpointHarness(t, TestingKnobs{})
	lead := h.leader()
	id, _ := h.grant(lead, 0, 10)
	for range ticksFor(6) {
		h.tick()
	}
	for _, m := range h.ids {
		h.restart(m)
	}
	for _, m := range h.ids {
		if r := h.node(m).lessor.RemainingSeconds(id); r < 3 || r > 5 {
			t.Fatalf("member %d: remaining TTL %d after restart, want the checkpointed 4 (3 to 5)", m, r)
		}
	}
	lead = h.leader()
	for range ticksFor(1) {
		h.tick()
	}
	if _, remaining, err := h.node(lead).lessor.TimeToLive(id, h.node(lead).now()); err != nil || remaining > 6 {
		t.Fatalf("after a restart the lease has %d s (%v), want at most the checkpointed 5 and an election timeout", remaining, err)
	}
}
