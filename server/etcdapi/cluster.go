package etcdapi

import (
	"context"
	"errors"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Cluster implements etcdserverpb.ClusterServer by carrying each request
// to the core, which checks it and makes the configuration change.
type Cluster struct {
	pb.UnimplementedClusterServer
	d      *driver.Driver
	leader LeaderConn
}

// NewCluster returns the Cluster service of the member d drives. leader
// may be nil: a follower then answers a promotion with "etcdserver: not
// leader" (as the service that serves forwarded promotions on the peer port
// must, so a forward is never forwarded again).
func NewCluster(d *driver.Driver, leader LeaderConn) *Cluster {
	return &Cluster{d: d, leader: leader}
}

// MemberList implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberList(ctx context.Context, req *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	return serve[*pb.MemberListResponse](ctx, c.d, node.Request{MemberList: req})
}

// MemberAdd implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberAdd(ctx context.Context, req *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return serve[*pb.MemberAddResponse](ctx, c.d, node.Request{MemberAdd: req})
}

// MemberRemove implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberRemove(ctx context.Context, req *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return serve[*pb.MemberRemoveResponse](ctx, c.d, node.Request{MemberRemove: req})
}

// MemberUpdate implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberUpdate(ctx context.Context, req *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return serve[*pb.MemberUpdateResponse](ctx, c.d, node.Request{MemberUpdate: req})
}

// MemberPromote implements etcdserverpb.ClusterServer. Only the leader
// knows how far a learner has caught up, so a follower's core refuses the
// promotion and this service forwards it to the leader, as etcd does.
func (c *Cluster) MemberPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	resp, err := serve[*pb.MemberPromoteResponse](ctx, c.d, node.Request{MemberPromote: req})
	if !errors.Is(err, node.ErrNotLeader) {
		return resp, err
	}
	if c.leader == nil || c.d.Node().Status().Leader == 0 {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	conn, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	return pb.NewClusterClient(conn).MemberPromote(forwardCredentials(ctx), req)
}
