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

// Maintenance implements etcdserverpb.MaintenanceServer: Alarm and
// Downgrade are core requests (through raft where they change state);
// Snapshot streams a checkpoint the core makes; Status, Hash,
// HashKV and Defragment are answered by the core from this member's state.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	d *driver.Driver
}

// NewMaintenance returns the Maintenance service of the member d drives.
func NewMaintenance(d *driver.Driver) *Maintenance { return &Maintenance{d: d} }

// Status implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := m.d.Node().CheckCredentials(credentialsOf(ctx)); err != nil {
		return nil, err
	}
	return m.d.Node().StatusResponse(), nil
}

// Alarm implements etcdserverpb.MaintenanceServer: listing, raising and
// clearing alarms are replicated through raft, as in etcd.
func (m *Maintenance) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return serve[*pb.AlarmResponse](ctx, m.d, node.Request{Alarm: req})
}

// Hash implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	if err := m.d.Node().CheckAdmin(credentialsOf(ctx)); err != nil {
		return nil, err
	}
	return m.d.Node().Hash()
}

// HashKV implements etcdserverpb.MaintenanceServer.
func (m *Maintenance) HashKV(ctx context.Context, req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if err := m.d.Node().CheckAdmin(credentialsOf(ctx)); err != nil {
		return nil, err
	}
	return m.d.Node().HashKV(req)
}

// Defragment implements etcdserverpb.MaintenanceServer: the member's
// database is compacted while it keeps serving.
func (m *Maintenance) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := m.d.Node().CheckAdmin(credentialsOf(ctx)); err != nil {
		return nil, err
	}
	return m.d.Node().Defragment(ctx)
}

// Downgrade implements etcdserverpb.MaintenanceServer: validate, enable
// and cancel, decided by the core as etcd does for a cluster of one
// version.
func (m *Maintenance) Downgrade(ctx context.Context, req *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return serve[*pb.DowngradeResponse](ctx, m.d, node.Request{Downgrade: req})
}

// snapshotChunkBytes is the blob size of one Snapshot message, as etcd's.
const snapshotChunkBytes = 32 * 1024

// Snapshot implements etcdserverpb.MaintenanceServer: the core checkpoints
// the member's database and the stream carries it in cairn's backup
// format (node/backup.go), ending with its SHA-256, in 32 KiB messages
// that count down the remaining bytes.
func (m *Maintenance) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	if err := m.d.Node().CheckAdmin(credentialsOf(srv.Context())); err != nil {
		return err
	}
	b, err := m.d.Node().Backup()
	if err != nil {
		return err
	}
	defer b.Close()
	w := &snapshotSender{srv: srv, remaining: b.Size()}
	if _, err := b.WriteTo(w); err != nil {
		return err
	}
	return w.flush()
}

// snapshotSender cuts a backup stream into Snapshot messages.
type snapshotSender struct {
	srv       pb.Maintenance_SnapshotServer
	buf       []byte
	remaining int64
}

func (s *snapshotSender) Write(p []byte) (int, error) {
	for written := 0; written < len(p); {
		n := min(len(p)-written, snapshotChunkBytes-len(s.buf))
		s.buf = append(s.buf, p[written:written+n]...)
		written += n
		if len(s.buf) == snapshotChunkBytes {
			if err := s.flush(); err != nil {
				return written, err
			}
		}
	}
	return len(p), nil
}

func (s *snapshotSender) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	s.remaining -= int64(len(s.buf))
	// A message owns its blob: gRPC may still hold it after Send returns.
	resp := &pb.SnapshotResponse{Header: &pb.ResponseHeader{}, RemainingBytes: uint64(max(s.remaining, 0)),
		Blob: s.buf, Version: node.ClusterVersion}
	s.buf = nil
	return s.srv.Send(resp)
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
