package etcdapi

import (
	"context"

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
	dbSize func() int64
}

// NewMaintenance returns the Maintenance service of the member d drives.
func NewMaintenance(d *driver.Driver, id Identity, dbSize func() int64) *Maintenance {
	return &Maintenance{d: d, id: id, dbSize: dbSize}
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
		IsLearner:        false,
	}, nil
}
