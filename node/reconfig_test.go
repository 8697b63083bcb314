package node

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// startedMembers are founding members of which those in started have
// published their name, as a member does once it serves.
func startedMembers(ids []uint64, started ...uint64) []*membershippb.Member {
	out := foundingMembers(ids...)
	for _, m := range out {
		for _, id := range started {
			if m.GetID() == id {
				m.MemberAttributes = &membershippb.Attributes{Name: fmt.Sprintf("m%d", id)}
			}
		}
	}
	return out
}

func expectErr(t *testing.T, h *harness, id uint64, req Request, want error) {
	t.Helper()
	if _, err := h.serve(id, req); !errors.Is(err, want) {
		t.Fatalf("%v on %d: %v, want %v", req, id, err, want)
	}
}

func addVoter(url string) Request {
	return Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{url}}}
}

// TestStrictReconfigCheckStartedMembers: with one of three members
// started, etcd (--strict-reconfig-check, on by default) refuses to add a
// voter or remove one with "re-configuration failed due to not enough
// started members"; learners are exempt; switched off, both are allowed.
// (etcd 3.7.3 answers so, code Unknown, to a second voter added to a
// one-member cluster whose first added voter never started.)
func TestStrictReconfigCheckStartedMembers(t *testing.T) {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, func(c *Config) { c.InitialMembers = startedMembers(ids, 1); c.ClusterToken = "t" })
	lead := h.leader()
	expectErr(t, h, lead, addVoter("http://m4:2380"), rpctypes.ErrMemberNotEnoughStarted)
	expectErr(t, h, lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: 2}}, rpctypes.ErrMemberNotEnoughStarted)
	resp, err := h.serve(lead, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m5:2380"}, IsLearner: true}})
	if err != nil {
		t.Fatalf("a learner is exempt: %v", err)
	}
	learner := resp.(*pb.MemberAddResponse).GetMember().GetID()
	if _, err := h.serve(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: learner}}); err != nil {
		t.Fatalf("removing a learner is exempt: %v", err)
	}

	h = newHarness(t, ids, func(c *Config) {
		c.InitialMembers = startedMembers(ids, 1)
		c.ClusterToken = "t"
		c.DisableStrictReconfigCheck = true
	})
	lead = h.leader()
	if _, err := h.serve(lead, addVoter("http://m4:2380")); err != nil {
		t.Fatalf("check off: add a voter: %v", err)
	}
}

// TestStrictReconfigCheckActiveMembers: with every member started but one
// down, the leader refuses a change that would leave fewer active voters
// than a quorum ("etcdserver: unhealthy cluster"), and allows removing
// the member that is down.
func TestStrictReconfigCheckActiveMembers(t *testing.T) {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, func(c *Config) { c.InitialMembers = startedMembers(ids, 1, 2, 3); c.ClusterToken = "t" })
	lead := h.leader()
	var up, down uint64
	for _, id := range ids {
		if id != lead {
			up, down = down, id
		}
	}
	h.crash(down)
	// CheckQuorum forgets a silent follower's activity after an election
	// timeout; wait two.
	for range 2 * defaultElectionTicks() {
		h.tick()
	}
	if h.leader() != lead {
		t.Fatal("leadership changed")
	}
	expectErr(t, h, lead, addVoter("http://m4:2380"), rpctypes.ErrGRPCUnhealthy)
	// etcd checks the active quorum for a learner too.
	expectErr(t, h, lead, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m5:2380"}, IsLearner: true}}, rpctypes.ErrGRPCUnhealthy)
	expectErr(t, h, lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: up}}, rpctypes.ErrGRPCUnhealthy)
	if _, err := h.serve(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: down}}); err != nil {
		t.Fatalf("remove the member that is down: %v", err)
	}
}

// TestMaxLearners: the member API allows MaxLearners learners and refuses
// one more with etcd's error.
func TestMaxLearners(t *testing.T) {
	ids := []uint64{1}
	h := newHarness(t, ids, func(c *Config) { c.InitialMembers = startedMembers(ids, 1); c.MaxLearners = 2 })
	for i := range 2 {
		if _, err := h.serve(1, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{fmt.Sprintf("http://l%d:2380", i)}, IsLearner: true}}); err != nil {
			t.Fatalf("learner %d: %v", i, err)
		}
	}
	expectErr(t, h, 1, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://l3:2380"}, IsLearner: true}}, rpctypes.ErrGRPCTooManyLearners)
}

// ticksToFirstLeader ticks a fresh three-member cluster until one leads.
func ticksToFirstLeader(t *testing.T, advance bool) int {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, func(c *Config) { c.InitialElectionTickAdvance = advance })
	for ticks := 0; ticks < maxTicks; ticks++ {
		for _, id := range ids {
			if h.node(id).Status().IsLeader {
				return ticks
			}
		}
		h.tick()
	}
	t.Fatal("no leader")
	return 0
}

// TestInitialElectionTickAdvance: raft's randomised election timeout is
// in [ElectionTicks, 2×ElectionTicks); advanced by ElectionTicks-1 at
// open, the first election ends within ElectionTicks ticks, and never
// that early without.
func TestInitialElectionTickAdvance(t *testing.T) {
	electionTicks := defaultElectionTicks()
	if electionTicks < 3 {
		t.Fatalf("test needs ElectionTicks ≥ 3, has %d", electionTicks)
	}
	for range 5 {
		if got := ticksToFirstLeader(t, true); got > electionTicks {
			t.Fatalf("advanced: leader after %d ticks, want ≤ %d", got, electionTicks)
		}
		if got := ticksToFirstLeader(t, false); got < electionTicks {
			t.Fatalf("not advanced: leader after %d ticks, want ≥ %d", got, electionTicks)
		}
	}
}

// defaultElectionTicks is the harness's election timeout: the default.
func defaultElectionTicks() int {
	cfg := testConfig(1, nil, nil)
	cfg.EnsureDefaults()
	return cfg.ElectionTicks
}

func TestPreVoteSetting(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	if !h.node(1).raftConfig().PreVote {
		t.Fatal("Pre-Vote off by default")
	}
	h = newHarness(t, []uint64{1}, func(c *Config) { c.DisablePreVote = true })
	if h.node(1).raftConfig().PreVote {
		t.Fatal("DisablePreVote left Pre-Vote on")
	}
}
