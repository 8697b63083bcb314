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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// AsPeer marks an outgoing forward to the leader's peer port as this
// member's.
type AsPeer func(ctx context.Context) context.Context

// CheckPeer reports whether an incoming call on the peer port comes from a
// member of this cluster.
type CheckPeer func(ctx context.Context) error

// Lease implements etcdserverpb.LeaseServer. Grants and revocations go
// through raft on any member; keep-alives and time-to-live are served by
// the leader, after a ReadIndex that confirms its leadership, and forwarded
// to it by followers, as etcd does: the follower checks the client's
// permissions against its own auth state, then forwards the request as
// its own over the leader's peer URL, where the leader serves it as the
// member's (etcd's leader renews what its peers forward without a check).
// A client authenticated only by its certificate thus keeps its leases
// alive through any member.
type Lease struct {
	pb.UnimplementedLeaseServer
	d      *driver.Driver
	id     Identity
	leader LeaderConn
	asPeer AsPeer
	// checkPeer is set on the peer port's service: a call it accepts is a
	// member's forward, served as the member's own.
	checkPeer CheckPeer
}

// NewLease returns the client port's Lease service of the member d drives;
// a follower forwards through leader, marked by asPeer.
func NewLease(d *driver.Driver, id Identity, leader LeaderConn, asPeer AsPeer) *Lease {
	return &Lease{d: d, id: id, leader: leader, asPeer: asPeer}
}

// NewPeerLease returns the peer port's Lease service, which serves
// followers' forwards (checked by checkPeer) and never forwards: a
// follower answers "etcdserver: not leader", so a forward is never
// forwarded again.
func NewPeerLease(d *driver.Driver, id Identity, checkPeer CheckPeer) *Lease {
	return &Lease{d: d, id: id, checkPeer: checkPeer}
}

// leaseRequest is req as this service serves it: a member's forward runs
// as the member's own request, anything else as the client's.
func (s *Lease) leaseRequest(ctx context.Context, req node.Request) node.Request {
	if s.checkPeer != nil && s.checkPeer(ctx) == nil {
		return node.AsMember(req)
	}
	return req
}

// LeaseGrant implements etcdserverpb.LeaseServer.
func (s *Lease) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return serve[*pb.LeaseGrantResponse](ctx, s.d, node.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: req.GetID(), TTL: req.GetTTL()}})
}

// LeaseRevoke implements etcdserverpb.LeaseServer.
func (s *Lease) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return serve[*pb.LeaseRevokeResponse](ctx, s.d, node.Request{LeaseRevoke: req})
}

// LeaseTimeToLive implements etcdserverpb.LeaseServer.
func (s *Lease) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var resp *pb.LeaseTimeToLiveResponse
	err := s.atLeader(ctx, func(ctx context.Context) error {
		r, err := serve[*pb.LeaseTimeToLiveResponse](ctx, s.d, s.leaseRequest(ctx, node.Request{LeaseTimeToLive: req}))
		resp = r
		return err
	}, func(ctx context.Context, c pb.LeaseClient) error {
		r, err := c.LeaseTimeToLive(s.asPeer(ctx), req)
		if err == nil {
			r.Header = s.localHeader()
		}
		resp = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// LeaseLeases implements etcdserverpb.LeaseServer from the member's own
// leases, as etcd does.
func (s *Lease) LeaseLeases(ctx context.Context, req *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	return serve[*pb.LeaseLeasesResponse](ctx, s.d, node.Request{LeaseLeases: req})
}

// LeaseKeepAlive implements etcdserverpb.LeaseServer: one renewal per
// request, answered in order. An unknown or expired lease gets TTL 0. An
// error ends the stream; etcd's client opens a new one.
//
// Requests are received on another goroutine so that the stream also ends
// when its context does (a stream that requires a leader, canceled when
// the member lost it), not only at the client's next request.
func (s *Lease) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	reqs := make(chan *pb.LeaseKeepAliveRequest)
	recvc := make(chan error, 1)
	go func() { recvc <- recvKeepAlives(stream, reqs) }()
	for {
		select {
		case req := <-reqs:
			resp, err := s.renew(stream.Context(), req)
			if err != nil {
				return err
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		case err := <-recvc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// recvKeepAlives hands the stream's requests to reqs, one at a time, until
// the stream fails (io.EOF when the client closed its side) or its context
// ends.
func recvKeepAlives(stream pb.Lease_LeaseKeepAliveServer, reqs chan<- *pb.LeaseKeepAliveRequest) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		select {
		case reqs <- req:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (s *Lease) renew(ctx context.Context, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	var resp *pb.LeaseKeepAliveResponse
	err := s.atLeader(ctx, func(ctx context.Context) error {
		r, err := serve[*pb.LeaseKeepAliveResponse](ctx, s.d, s.leaseRequest(ctx, node.Request{LeaseKeepAlive: req}))
		resp = r
		return err
	}, func(ctx context.Context, c pb.LeaseClient) error {
		// The header is taken before the forward, as etcd does, so its
		// revision is never after a revocation the renewal did not see.
		h := s.localHeader()
		ttl, err := forwardKeepAlive(s.asPeer(ctx), c, req.GetID())
		resp = &pb.LeaseKeepAliveResponse{Header: h, ID: req.GetID(), TTL: ttl}
		return err
	})
	return resp, err
}

// forwardKeepAlive renews a lease on the leader through a stream of its
// own and returns the TTL it answered (0: no such lease).
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
	return max(resp.GetTTL(), 0), nil
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

// attempt runs local, which on a follower checks the client's permissions
// and answers node.ErrNotLeader, then forwards to the leader.
func (s *Lease) attempt(ctx context.Context, local func(context.Context) error, forward func(context.Context, pb.LeaseClient) error) error {
	err := local(ctx)
	if !errors.Is(err, node.ErrNotLeader) {
		return err
	}
	st := s.d.Node().Status()
	if !st.IsLeader && st.Leader != 0 && s.leader != nil {
		conn, err := s.leader(ctx)
		if err != nil {
			return err
		}
		return forward(ctx, pb.NewLeaseClient(conn))
	}
	switch {
	case st.Leader == 0:
		return rpctypes.ErrGRPCNoLeader
	case s.leader == nil:
		return rpctypes.ErrGRPCNotLeader
	}
	// Elected but not ready to serve leases yet, or just deposed: try
	// again.
	return rpctypes.ErrGRPCLeaderChanged
}

// retryable reports whether a lease request should try the leader again:
// not when it was answered (lease not found, or refused by the auth
// checks: a bad token, no user, no permission, a stale auth revision).
func retryable(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrGRPCLeaseNotFound),
		errors.Is(err, rpctypes.ErrGRPCCanceled),
		errors.Is(err, context.Canceled),
		errors.Is(err, driver.ErrStopped):
		return false
	}
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return false
	}
	return true
}

// localHeader is this member's header for a response the leader served,
// as etcd fills a forwarded lease response's header locally.
func (s *Lease) localHeader() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.id.ClusterID, MemberId: s.id.MemberID,
		RaftTerm: s.d.Node().Status().Term, Revision: s.d.Node().Store().Rev()}
}
