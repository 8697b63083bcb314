package etcdapi

import (
	"context"
	"slices"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// APIVersion is the etcd version whose API cairn speaks, reported where
// etcd reports its own version so that clients gating features on it work.
const APIVersion = node.EtcdVersion

// Maintenance implements etcdserverpb.MaintenanceServer but Snapshot:
// Alarm and Downgrade are core requests (through raft where they change
// state); Status, Hash,
// HashKV and Defragment are answered by the core from this member's state.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	d *driver.Driver
}

// NewMaintenance returns the Maintenance service of the member d drives.
func NewMaintenance(d *driver.Driver) *Maintenance { return &Maintenance{d: d} }

// Status implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return m.d.Node().StatusResponse(), nil
}

// Alarm implements etcdserverpb.MaintenanceServer: listing, raising and
// clearing alarms are replicated through raft, as in etcd.
func (m *Maintenance) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return serve[*pb.AlarmResponse](ctx, m.d, node.Request{Alarm: req})
}

// Hash implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) Hash(context.Context, *pb.HashRequest) (*pb.HashResponse, error) {
	return m.d.Node().Hash()
}

// HashKV implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) HashKV(_ context.Context, req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return m.d.Node().HashKV(req)
}

// Defragment implements etcdserverpb.MaintenanceServer: the member's
// database is compacted while it keeps serving.
func (m *Maintenance) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return m.d.Node().Defragment(ctx)
}

// Downgrade implements etcdserverpb.MaintenanceServer: validate, enable
// and cancel, decided by the core as etcd does for a cluster of one
// version.
func (m *Maintenance) Downgrade(ctx context.Context, req *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return serve[*pb.DowngradeResponse](ctx, m.d, node.Request{Downgrade: req})
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
	st := m.d.Node().Status()
	return slices.Contains(st.Learners, st.ID)
}
