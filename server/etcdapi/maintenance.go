package etcdapi

import (
	"context"
	"slices"

	"github.com/cairn-db/cairn/node"

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

// MoveLeader implements etcdserverpb.MaintenanceServer: the leader hands
// leadership to a voting member and answers once it has moved (the core
// decides and waits).
func (m *Maintenance) MoveLeader(ctx context.Context, req *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return serve[*pb.MoveLeaderResponse](ctx, m.d, node.Request{MoveLeader: req})
}

// IsLearner reports whether this member is a learner; safe for concurrent
// use, and cheap: every request asks it (the learner interceptor).
func (m *Maintenance) IsLearner() bool {
	return slices.Contains(m.d.Node().Status().Learners, m.id.MemberID)
}
