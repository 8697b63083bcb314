package etcdapi

import (
	"context"
	"errors"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A client may require a leader for a stream (clientv3.WithRequireLeader
// sends etcd's `hasleader` metadata; Kubernetes sets it on every watch).
// Like etcd, the member refuses such a stream with `etcdserver: no leader`
// when it knows no leader, and cancels the open ones with the same error
// when the core decides the leader is lost (node.Node.LeaderLost, three
// election timeouts without one): the client then moves to another member.
// The decision is the node's; this file only reads the metadata and ends
// the streams.

// LeaderStreams tracks the open streams that require a leader.
type LeaderStreams struct {
	hasLeader func() bool
	mu        struct {
		sync.Mutex
		// cancels ends each open stream that requires a leader; an
		// entry is removed when its stream ends.
		cancels map[*leaderStream]context.CancelCauseFunc
	}
}

// leaderStream is a stream whose context ends when the leader is lost.
type leaderStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *leaderStream) Context() context.Context { return s.ctx }

// NewLeaderStreams returns the tracker; hasLeader reports whether the
// member knows a leader now (safe for concurrent use).
func NewLeaderStreams(hasLeader func() bool) *LeaderStreams {
	l := &LeaderStreams{hasLeader: hasLeader}
	l.mu.cancels = map[*leaderStream]context.CancelCauseFunc{}
	return l
}

// requiresLeader reports whether a stream's metadata asks for a leader.
func requiresLeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return false
	}
	vs := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(vs) > 0 && vs[0] == rpctypes.MetadataHasLeader
}

// StreamInterceptor refuses a stream that requires a leader when there is
// none, and otherwise serves it with a context CancelAll can end.
func (l *LeaderStreams) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !requiresLeader(ss.Context()) {
			return handler(srv, ss)
		}
		if !l.hasLeader() {
			return rpctypes.ErrGRPCNoLeader
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		s := &leaderStream{ServerStream: ss, ctx: ctx}
		l.mu.Lock()
		l.mu.cancels[s] = cancel
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.mu.cancels, s)
			l.mu.Unlock()
			cancel(nil)
		}()
		err := handler(srv, s)
		if errors.Is(context.Cause(ctx), rpctypes.ErrGRPCNoLeader) {
			return rpctypes.ErrGRPCNoLeader
		}
		return err
	}
}

// CancelAll ends every open stream that requires a leader with
// `etcdserver: no leader`. Called when the node reports LeaderLost; it does
// not block.
func (l *LeaderStreams) CancelAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s, cancel := range l.mu.cancels {
		cancel(rpctypes.ErrGRPCNoLeader)
		delete(l.mu.cancels, s)
	}
}
