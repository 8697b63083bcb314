package etcdapi

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
)

// ErrMissingLeaderKey answers a Proclaim or Resign without its leader key,
// with etcd's message.
var ErrMissingLeaderKey = errors.New(`"leader" field must be provided`)

// noLease is the lease of the sessions that only read an election (Leader,
// Observe). It is not NoLease (0), which would grant a lease; a keep-alive
// of lease -1 just finds no lease, as in etcd.
const noLease = -1

// Election implements v3electionpb.ElectionServer with etcd's algorithm, the
// client library's concurrency.Election run by the member against itself:
// a candidate puts <name>/<lease in hex> attached to its lease and leads
// once every key under <name>/ with a smaller create revision is gone; the
// leader is the key with the smallest create revision, its value the
// proclaimed one. As with Lock, the caller keeps its lease alive.
type Election struct {
	epb.UnimplementedElectionServer
	c *clientv3.Client
}

var _ epb.ElectionServer = (*Election)(nil)

// NewElection returns the Election service; c is the member's loopback
// client (NewLoopbackClient).
func NewElection(c *clientv3.Client) *Election { return &Election{c: c} }

// Campaign implements v3electionpb.ElectionServer. It blocks until the
// caller leads or ctx ends; a candidate that campaigns again with its lease
// keeps its place in the queue (and proclaims its new value).
func (s *Election) Campaign(ctx context.Context, req *epb.CampaignRequest) (*epb.CampaignResponse, error) {
	session, err := orphanSession(ctx, s.c, req.GetLease())
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(session, string(req.GetName()))
	if err := e.Campaign(ctx, string(req.GetValue())); err != nil {
		return nil, err
	}
	leader := &epb.LeaderKey{Name: req.GetName(), Key: []byte(e.Key()), Rev: e.Rev(), Lease: int64(session.Lease())}
	return &epb.CampaignResponse{Header: e.Header(), Leader: leader}, nil
}

// Proclaim implements v3electionpb.ElectionServer: it replaces the leader's
// value if the leader key still has the create revision Campaign returned,
// and fails with "election: not leader" otherwise.
func (s *Election) Proclaim(ctx context.Context, req *epb.ProclaimRequest) (*epb.ProclaimResponse, error) {
	e, err := s.resume(ctx, req.GetLeader())
	if err != nil {
		return nil, err
	}
	if err := e.Proclaim(ctx, string(req.GetValue())); err != nil {
		return nil, err
	}
	return &epb.ProclaimResponse{Header: e.Header()}, nil
}

// Resign implements v3electionpb.ElectionServer: it deletes the leader key
// if it still has the create revision Campaign returned. Resigning an
// election one no longer leads is not an error, as in etcd.
func (s *Election) Resign(ctx context.Context, req *epb.ResignRequest) (*epb.ResignResponse, error) {
	e, err := s.resume(ctx, req.GetLeader())
	if err != nil {
		return nil, err
	}
	if err := e.Resign(ctx); err != nil {
		return nil, err
	}
	return &epb.ResignResponse{Header: e.Header()}, nil
}

// resume rebuilds the election a LeaderKey names, on the leader's lease.
func (s *Election) resume(ctx context.Context, l *epb.LeaderKey) (*concurrency.Election, error) {
	if l == nil {
		return nil, ErrMissingLeaderKey
	}
	session, err := orphanSession(ctx, s.c, l.GetLease())
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(session, string(l.GetName()), string(l.GetKey()), l.GetRev()), nil
}

// Leader implements v3electionpb.ElectionServer: the current leader's key
// and value, or "election: no leader".
func (s *Election) Leader(ctx context.Context, req *epb.LeaderRequest) (*epb.LeaderResponse, error) {
	session, err := orphanSession(ctx, s.c, noLease)
	if err != nil {
		return nil, err
	}
	resp, err := concurrency.NewElection(session, string(req.GetName())).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}, nil
}

// Observe implements v3electionpb.ElectionServer: it streams the leader's
// key and value, first as it is (or as soon as someone leads), then at
// every proclamation and every change of leader. The stream ends with the
// caller's context, or without error if the election can no longer be
// read, as in etcd.
func (s *Election) Observe(req *epb.LeaderRequest, stream epb.Election_ObserveServer) error {
	ctx := stream.Context()
	session, err := orphanSession(ctx, s.c, noLease)
	if err != nil {
		return err
	}
	leaders := concurrency.NewElection(session, string(req.GetName())).Observe(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-leaders:
			if !ok {
				return nil
			}
			if err := stream.Send(&epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
}
