package member

import (
	"context"
	"sync"
	"time"

	"github.com/cairn-db/cairn/server/transport"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// wallClock is the node's clock in production.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// leaderConns hands followers a connection to the current leader's peer
// port, where the leader serves forwarded lease renewals and promotions (as
// etcd serves them to its peers). Connections are kept per peer URL and
// closed with the member.
type leaderConns struct {
	m  *Member
	mu sync.Mutex
	// conns by peer URL; guarded by mu.
	conns map[string]*grpc.ClientConn
}

func newLeaderConns(m *Member) *leaderConns {
	return &leaderConns{m: m, conns: map[string]*grpc.ClientConn{}}
}

// conn implements etcdapi.LeaderConn.
func (l *leaderConns) conn(context.Context) (*grpc.ClientConn, error) {
	lead := l.m.node.Status().Leader
	if lead == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	mem, ok := l.m.node.Member(lead)
	if !ok || len(mem.GetRaftAttributes().GetPeerUrls()) == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	peerURL := mem.GetRaftAttributes().GetPeerUrls()[0]
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.conns[peerURL]; ok {
		return c, nil
	}
	c, err := transport.Dial(peerURL, l.m.tls.peerDial)
	if err != nil {
		return nil, err
	}
	l.conns[peerURL] = c
	return c, nil
}

func (l *leaderConns) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for peerURL, c := range l.conns {
		c.Close()
		delete(l.conns, peerURL)
	}
}
