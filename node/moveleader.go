package node

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MoveLeader in the core: the leader hands leadership to a voting member
// and the request completes once this member sees the target lead.

const (
	// leaderTransferTimeoutTicks bounds the wait for the new leader (5 s
	// at 100 ms ticks, as etcd waits).
	leaderTransferTimeoutTicks = 50
	// leaderTransfersMax bounds the transfers waiting at once; beyond it a
	// transfer fails with "etcdserver: too many requests".
	leaderTransfersMax = 16
)

// ErrLeaderTransferTimeout is etcd's answer when a transfer takes too long.
var ErrLeaderTransferTimeout = status.Error(codes.Unavailable, "etcdserver: request timed out, leader transfer took too long")

// leaderTransfer is a MoveLeader waiting for its target to lead.
type leaderTransfer struct {
	id, target uint64
	sinceTick  uint64
}

func (n *Node) startMoveLeader(id uint64, req *pb.MoveLeaderRequest) {
	target := req.GetTargetID()
	switch m, ok := n.members.get(target); {
	case !n.isLeader():
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCNotLeader})
		return
	case !ok || m.GetRaftAttributes().GetIsLearner():
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCBadLeaderTransferee})
		return
	case len(n.transfers) >= leaderTransfersMax:
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCRequestTooManyRequests})
		return
	}
	n.transfers = append(n.transfers, leaderTransfer{id: id, target: target, sinceTick: n.ticks})
	n.raw.TransferLeader(target)
	n.finishTransfers()
}

// finishTransfers completes the transfers whose target leads now, and
// fails those that waited too long.
func (n *Node) finishTransfers() {
	if len(n.transfers) == 0 {
		return
	}
	lead := n.raw.BasicStatus().Lead
	kept := n.transfers[:0]
	for _, t := range n.transfers {
		switch {
		case lead == t.target:
			n.completed = append(n.completed, Completion{ID: t.id, Response: &pb.MoveLeaderResponse{Header: n.header(0)}})
		case n.ticks-t.sinceTick >= leaderTransferTimeoutTicks:
			n.completed = append(n.completed, Completion{ID: t.id, Err: ErrLeaderTransferTimeout})
		default:
			kept = append(kept, t)
		}
	}
	n.transfers = kept
}
