package node

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
)

// TestMoveLeader: the leader hands leadership to a voter and answers once
// it leads; anything else gets etcd's error.
func TestMoveLeader(t *testing.T) {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, func(c *Config) { c.InitialMembers = foundingMembers(1, 2, 3) })
	lead := h.leader()
	var target uint64
	for _, id := range ids {
		if id != lead {
			target = id
		}
	}
	if _, err := h.serve(target, Request{MoveLeader: &pb.MoveLeaderRequest{TargetID: lead}}); !errors.Is(err, rpctypes.ErrGRPCNotLeader) {
		t.Fatalf("move-leader on a follower: %v", err)
	}
	if _, err := h.serve(lead, Request{MoveLeader: &pb.MoveLeaderRequest{TargetID: 99}}); !errors.Is(err, rpctypes.ErrGRPCBadLeaderTransferee) {
		t.Fatalf("move-leader to a stranger: %v", err)
	}
	rid := h.node(lead).Start(Request{MoveLeader: &pb.MoveLeaderRequest{TargetID: target}})
	for range 20 {
		h.tick()
		if _, ok := h.completion(lead, rid); ok {
			break
		}
	}
	if _, err := h.mustComplete(lead, rid).Result(); err != nil || h.leader() != target {
		t.Fatalf("move-leader: %v; leader %d, want %d", err, h.leader(), target)
	}

	// A target that cannot be reached never leads: the wait is bounded.
	lead = target
	var cut uint64
	for _, id := range ids {
		if id != lead {
			cut = id
		}
	}
	h.drop = func(m *raftpb.Message) bool { return m.GetTo() == cut || m.GetFrom() == cut }
	rid = h.node(lead).Start(Request{MoveLeader: &pb.MoveLeaderRequest{TargetID: cut}})
	for range leaderTransferTimeoutTicks {
		h.tick()
	}
	if _, err := h.mustComplete(lead, rid).Result(); !errors.Is(err, ErrLeaderTransferTimeout) {
		t.Fatalf("move-leader to a cut-off member: %v", err)
	}
}
