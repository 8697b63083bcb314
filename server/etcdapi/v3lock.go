package etcdapi

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// Lock implements v3lockpb.LockServer with etcd's algorithm, the client
// library's concurrency.Mutex run by the member against itself: a waiter
// puts the key <name>/<lease in hex> attached to its lease, and holds the
// lock once every key under <name>/ with a smaller create revision is gone.
// The lock is therefore held until Unlock deletes the key or the lease
// expires or is revoked; the server never keeps the lease alive (that is
// the caller's job), as in etcd.
type Lock struct {
	v3lockpb.UnimplementedLockServer
	c *clientv3.Client
}

var _ v3lockpb.LockServer = (*Lock)(nil)

// NewLock returns the Lock service; c is the member's loopback client
// (NewLoopbackClient).
func NewLock(c *clientv3.Client) *Lock { return &Lock{c: c} }

// Lock implements v3lockpb.LockServer. It blocks until the lock is held or
// ctx ends. As in etcd, lease 0 makes the server grant a 60 s lease that
// nobody keeps alive, and an unknown lease fails with "etcdserver:
// requested lease not found". Errors reach the caller as etcd's do: the
// client library's errors, which gRPC sends with code Unknown.
func (s *Lock) Lock(ctx context.Context, req *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	session, err := orphanSession(ctx, s.c, req.GetLease())
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(session, string(req.GetName()))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &v3lockpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

// Unlock implements v3lockpb.LockServer: it deletes the key Lock returned,
// whoever holds it, and succeeds when the key is already gone, as etcd does.
func (s *Lock) Unlock(ctx context.Context, req *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := s.c.Delete(ctx, string(req.GetKey()))
	if err != nil {
		return nil, err
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}

// orphanSession returns a concurrency session on the lease, granting a
// lease of the default session TTL for lease 0, and stops its keep-alive
// at once: the lease's owner is the remote caller, who keeps it alive.
func orphanSession(ctx context.Context, c *clientv3.Client, lease int64) (*concurrency.Session, error) {
	session, err := concurrency.NewSession(c, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	session.Orphan()
	return session, nil
}
