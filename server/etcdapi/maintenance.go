package etcdapi

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// APIVersion is the etcd API version cairn speaks, reported where etcd
// reports its own version so that clients gating features on it work.
const APIVersion = "3.7.0"

// Maintenance implements the parts of etcdserverpb.MaintenanceServer that
// exist so far: Status.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	d  *driver.Driver
	id Identity
	// dbSize reports the on-disk size of the member's database in bytes.
	dbSize     func() int64
	quotaBytes int64
}

// NewMaintenance returns the Maintenance service of the member d drives.
func NewMaintenance(d *driver.Driver, id Identity, dbSize func() int64, limits Limits) *Maintenance {
	return &Maintenance{d: d, id: id, dbSize: dbSize, quotaBytes: limits.QuotaBackendBytes}
}

// Status implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st := m.d.Node().Status()
	size := m.dbSize()
	return &pb.StatusResponse{
		Header: &pb.ResponseHeader{
			ClusterId: m.id.ClusterID,
			MemberId:  m.id.MemberID,
			Revision:  m.d.Node().Store().Rev(),
			RaftTerm:  st.Term,
		},
		Version:          APIVersion,
		StorageVersion:   APIVersion,
		DbSize:           size,
		DbSizeInUse:      size,
		Leader:           st.Leader,
		RaftIndex:        st.CommitIndex,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.AppliedIndex,
		IsLearner:        m.IsLearner(),
		DbSizeQuota:      m.quotaBytes,
		DowngradeInfo:    &pb.DowngradeInfo{},
	}, nil
}

// leaderTransferTimeout bounds MoveLeader's wait for the new leader.
const leaderTransferTimeout = 5 * time.Second

// errLeaderTransferTimeout is etcd's answer when the transfer takes too long.
var errLeaderTransferTimeout = status.Error(codes.Unavailable, "etcdserver: request timed out, leader transfer took too long")

// MoveLeader implements etcdserverpb.MaintenanceServer: the leader hands
// leadership to a voting member and answers once it has moved.
func (m *Maintenance) MoveLeader(ctx context.Context, req *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if !m.d.Node().Status().IsLeader {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	target, ok := m.d.Node().Member(req.GetTargetID())
	if !ok || target.GetRaftAttributes().GetIsLearner() {
		return nil, rpctypes.ErrGRPCBadLeaderTransferee
	}
	if err := m.d.Do(ctx, func(n *node.Node) { n.TransferLeadership(req.GetTargetID()) }); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(leaderTransferTimeout)
	for m.d.Node().Status().Leader != req.GetTargetID() {
		if time.Now().After(deadline) {
			return nil, errLeaderTransferTimeout
		}
		select {
		case <-ctx.Done():
			return nil, contextError(ctx)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return &pb.MoveLeaderResponse{Header: &pb.ResponseHeader{ClusterId: m.id.ClusterID, MemberId: m.id.MemberID, RaftTerm: m.d.Node().Status().Term}}, nil
}

func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return rpctypes.ErrGRPCCanceled
}

// IsLearner reports whether this member is a learner; safe for concurrent
// use, and cheap: every request asks it (the learner interceptor).
func (m *Maintenance) IsLearner() bool {
	return slices.Contains(m.d.Node().Status().Learners, m.id.MemberID)
}
