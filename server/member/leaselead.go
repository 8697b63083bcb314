package member

import (
	"context"
	"net/url"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// wallClock is the node's clock in production.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// leaderLeases hands followers a Lease client of the current leader, served
// on the leader's peer URLs (as etcd serves lease renewals to its peers).
// Connections are kept per peer URL and closed with the member.
type leaderLeases struct {
	m  *Member
	mu sync.Mutex
	// conns by peer URL host; guarded by mu.
	conns map[string]*grpc.ClientConn
}

func newLeaderLeases(m *Member) *leaderLeases {
	return &leaderLeases{m: m, conns: map[string]*grpc.ClientConn{}}
}

// client implements etcdapi.LeaderLease.
func (l *leaderLeases) client(context.Context) (pb.LeaseClient, error) {
	lead := l.m.node.Status().Leader
	if lead == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	mem, ok := l.m.node.Member(lead)
	if !ok || len(mem.GetRaftAttributes().GetPeerUrls()) == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	u, err := url.Parse(mem.GetRaftAttributes().GetPeerUrls()[0])
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.conns[u.Host]; ok {
		return pb.NewLeaseClient(c), nil
	}
	c, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	l.conns[u.Host] = c
	return pb.NewLeaseClient(c), nil
}

func (l *leaderLeases) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for host, c := range l.conns {
		c.Close()
		delete(l.conns, host)
	}
}
