package etcdapi

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// LeaderConn returns a connection to the current leader's peer port, for a
// follower to forward what only the leader serves (lease keep-alives and
// time-to-live, learner promotion), as etcd forwards them over its peer
// URLs. It fails with rpctypes.ErrGRPCNoLeader when no leader is known.
type LeaderConn func(ctx context.Context) (*grpc.ClientConn, error)

// Bounds of lease requests that wait for the leader.
const (
	// leaseRetryInterval is the pause between two attempts to reach the
	// leader (no leader yet, or a forward that failed).
	leaseRetryInterval = 50 * time.Millisecond
	// leaseRequestTimeout bounds one keep-alive or time-to-live, as etcd's
	// request timeout does (5 s plus two election timeouts with defaults).
	leaseRequestTimeout = 7 * time.Second
)

// Lease implements etcdserverpb.LeaseServer. Grants and revocations go
// through raft on any member; keep-alives and time-to-live are served by
// the leader, after a ReadIndex that confirms its leadership, and forwarded
// to it by followers.
type Lease struct {
	pb.UnimplementedLeaseServer
	d      *driver.Driver
	id     Identity
	leader LeaderConn
}

// NewLease returns the Lease service of the member d drives. leader may be
// nil: a follower then answers keep-alives with "etcdserver: not leader"
// (as the service that serves forwarded requests on the peer port must, so
// a forward is never forwarded again).
func NewLease(d *driver.Driver, id Identity, leader LeaderConn) *Lease {
	return &Lease{d: d, id: id, leader: leader}
}

// LeaseGrant implements etcdserverpb.LeaseServer.
func (s *Lease) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.d.Propose(ctx, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: req.GetID(), TTL: req.GetTTL()}})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.LeaseGrantResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

// LeaseRevoke implements etcdserverpb.LeaseServer.
func (s *Lease) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.d.Propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.LeaseRevokeResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

// LeaseTimeToLive implements etcdserverpb.LeaseServer. An unknown lease is
// not an error: TTL -1, as etcd answers.
func (s *Lease) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var resp *pb.LeaseTimeToLiveResponse
	err := s.atLeader(ctx, func(ctx context.Context) error {
		r, err := s.localTimeToLive(ctx, req)
		resp = r
		return err
	}, func(ctx context.Context, c pb.LeaseClient) error {
		r, err := c.LeaseTimeToLive(ctx, req)
		resp = r
		return err
	})
	if errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		resp, err = &pb.LeaseTimeToLiveResponse{ID: req.GetID(), TTL: -1}, nil
	}
	if err != nil {
		return nil, err
	}
	resp.Header = nil
	s.fillHeader(&resp.Header)
	return resp, nil
}

func (s *Lease) localTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if err := s.d.ReadIndex(ctx); err != nil {
		return nil, err
	}
	granted, remaining, err := s.d.Node().Leases().TimeToLive(req.GetID())
	if err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{ID: req.GetID(), TTL: remaining, GrantedTTL: granted}
	if req.GetKeys() {
		if resp.Keys, err = s.d.Node().Store().LeaseKeys(req.GetID()); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// LeaseLeases implements etcdserverpb.LeaseServer from the member's own
// leases, as etcd does.
func (s *Lease) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ls := s.d.Node().Leases().List()
	resp := &pb.LeaseLeasesResponse{Leases: make([]*pb.LeaseStatus, len(ls))}
	for i, l := range ls {
		resp.Leases[i] = &pb.LeaseStatus{ID: l.ID}
	}
	s.fillHeader(&resp.Header)
	return resp, nil
}

// LeaseKeepAlive implements etcdserverpb.LeaseServer: one renewal per
// request, answered in order. An unknown or expired lease gets TTL 0. An
// error ends the stream; etcd's client opens a new one.
func (s *Lease) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// The header is taken before the renewal, as etcd does, so its
		// revision is never after a revocation the renewal did not see.
		resp := &pb.LeaseKeepAliveResponse{ID: req.GetID()}
		s.fillHeader(&resp.Header)
		ttl, err := s.renew(stream.Context(), req.GetID())
		if errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return err
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *Lease) renew(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := s.atLeader(ctx, func(ctx context.Context) error {
		if err := s.d.ReadIndex(ctx); err != nil {
			return err
		}
		var err error
		ttl, err = s.d.Node().Leases().Renew(id)
		return err
	}, func(ctx context.Context, c pb.LeaseClient) error {
		var err error
		ttl, err = forwardKeepAlive(ctx, c, id)
		return err
	})
	return ttl, err
}

// forwardKeepAlive renews a lease on the leader through a stream of its
// own; it returns rpctypes.ErrGRPCLeaseNotFound for TTL 0.
func forwardKeepAlive(ctx context.Context, c pb.LeaseClient, id int64) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.LeaseKeepAlive(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return 0, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	if resp.GetTTL() <= 0 {
		return 0, rpctypes.ErrGRPCLeaseNotFound
	}
	return resp.GetTTL(), nil
}

// atLeader runs local when this member leads, or forward with a client of
// the leader, retrying while leadership is in transition, for up to
// leaseRequestTimeout. Errors that answer the request (lease not found) end
// it at once.
func (s *Lease) atLeader(ctx context.Context, local func(context.Context) error, forward func(context.Context, pb.LeaseClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, leaseRequestTimeout)
	defer cancel()
	for {
		err := s.attempt(ctx, local, forward)
		if err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return rpctypes.ErrGRPCTimeout
			}
			return rpctypes.ErrGRPCCanceled
		case <-time.After(leaseRetryInterval):
		}
	}
}

func (s *Lease) attempt(ctx context.Context, local func(context.Context) error, forward func(context.Context, pb.LeaseClient) error) error {
	st := s.d.Node().Status()
	switch {
	case st.IsLeader:
		err := local(ctx)
		if errors.Is(err, node.ErrNotLeader) {
			// Elected, but the lessor is not promoted yet (its first entry
			// is not applied), or just deposed: try again.
			return rpctypes.ErrGRPCLeaderChanged
		}
		return err
	case st.Leader == 0:
		return rpctypes.ErrGRPCNoLeader
	case s.leader == nil:
		return rpctypes.ErrGRPCNotLeader
	}
	conn, err := s.leader(ctx)
	if err != nil {
		return err
	}
	return forward(ctx, pb.NewLeaseClient(conn))
}

// retryable reports whether a lease request should try the leader again.
func retryable(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrGRPCLeaseNotFound),
		errors.Is(err, rpctypes.ErrGRPCCanceled),
		errors.Is(err, context.Canceled),
		errors.Is(err, driver.ErrStopped):
		return false
	}
	return true
}

func (s *Lease) fillHeader(h **pb.ResponseHeader) {
	if *h == nil {
		*h = &pb.ResponseHeader{}
	}
	(*h).ClusterId = s.id.ClusterID
	(*h).MemberId = s.id.MemberID
	(*h).RaftTerm = s.d.Node().Status().Term
	if (*h).Revision == 0 {
		(*h).Revision = s.d.Node().Store().Rev()
	}
}
