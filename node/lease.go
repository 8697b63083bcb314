package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-db/cairn/node/lease"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Clock tells the node the time for leases: grants, keep-alives, expiry
// and a new leader's extension read it, and nothing else does. Raft time
// is ticks (Tick), a separate input, so the two can drift apart as they do
// on a real machine. The time must be monotonic, as etcd's lessor's is:
// the production driver passes time.Now, whose readings carry Go's
// monotonic clock; the simulator passes each member's own lease clock in
// virtual time, which its clock faults skew and jump apart from its ticks.
type Clock interface {
	Now() time.Time
}

// tickEpoch is where the default clock starts: without a Clock (unit
// tests), lease time is Ticks × TickInterval after it.
var tickEpoch = time.Unix(0, 0).UTC()

// A lease record: "ll" + ID (8 bytes BE, sign bit flipped) → granted TTL in
// seconds (8 bytes BE). Written in the apply batch that grants or revokes
// the lease. Expiry times are never stored: only the leader tracks them, in
// memory. The keys attached to a lease are in the keyspace (package mvcc,
// prefix "kl").
var leaseRecordPrefix = []byte("ll")

func leaseRecordKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), leaseRecordPrefix...), uint64(id)^(1<<63))
}

// now is the node's time for leases.
func (n *Node) now() time.Time {
	if n.cfg.Clock != nil && !n.cfg.Knobs.LeaseTimeFromTicks {
		return n.cfg.Clock.Now()
	}
	return tickEpoch.Add(time.Duration(n.ticks) * n.cfg.TickInterval)
}

// electionTimeout is the election timeout in time, as etcd's
// --election-timeout: ElectionTicks × TickInterval.
func (n *Node) electionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// openStore opens the keyspace of n.db and recovers the leases stored with
// it (at Open and after a snapshot install).
func (n *Node) openStore() (*mvcc.Store, error) {
	if n.lessor == nil {
		n.lessor = lease.New(lease.Config{
			MinTTLSeconds:                lease.MinTTLSeconds(n.cfg.ElectionTicks, n.cfg.TickInterval),
			CheckpointInterval:           n.cfg.LeaseCheckpointInterval,
			CheckpointIgnoredAtPromotion: n.cfg.Knobs.LeaseCheckpointIgnoredAtPromotion,
		})
	}
	if err := n.recoverLeases(); err != nil {
		return nil, err
	}
	return mvcc.Open(n.db, mvcc.Options{LeaseExists: n.lessor.Exists, CompactDropsNewestAtTarget: n.cfg.Knobs.CompactDropsNewestVersion,
		LatestCacheBytes:      max(n.cfg.LatestVersionCacheBytes, 0),
		ReadCacheBytes:        max(n.cfg.ReadCacheBytes, 0),
		LiveKeySetBytes:       max(n.cfg.LiveKeySetBytes, 0),
		ReadCacheKeepsDeleted: n.cfg.Knobs.ReadCacheKeepsDeleted,
		BackgroundFailure:     n.cfg.backgroundFailure})
}

func (n *Node) recoverLeases() (err error) {
	n.lessor.Reset()
	upper := append([]byte(nil), leaseRecordPrefix...)
	upper[len(upper)-1]++
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: leaseRecordPrefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("recover leases: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("recover leases: %w", cerr)
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(leaseRecordPrefix)+8 {
			return fmt.Errorf("lease record %x = %x: %w", k, v, errCorrupt)
		}
		id := int64(binary.BigEndian.Uint64(k[len(leaseRecordPrefix):]) ^ (1 << 63))
		if err := recoverLeaseRecord(n.lessor, id, v); err != nil {
			return err
		}
	}
	return it.Error()
}

// isLeaseRequest reports whether applyLease applies req.
func isLeaseRequest(req *pb.InternalRaftRequest) bool {
	return req.LeaseGrant != nil || req.LeaseRevoke != nil
}

// applyLease applies a LeaseGrant or LeaseRevoke and records its
// completion. Its error is a failure of the member, not of the request.
func (n *Node) applyLease(b *pebble.Batch, w *mvcc.Writer, req *pb.InternalRaftRequest, out *Output) error {
	c := Completion{ID: req.GetHeader().GetID()}
	var err error
	if g := req.GetLeaseGrant(); g != nil {
		c.Response, c.Err, err = n.applyLeaseGrant(b, w, g)
	} else {
		c.Response, c.Err, err = n.applyLeaseRevoke(b, w, req.GetLeaseRevoke())
	}
	if err != nil {
		return err
	}
	if c.Err == nil {
		n.completeHeader(c.Response)
	}
	out.Done = append(out.Done, c)
	return nil
}

func (n *Node) applyLeaseGrant(b *pebble.Batch, w *mvcc.Writer, g *pb.LeaseGrantRequest) (proto.Message, error, error) {
	ttl, err := n.lessor.Grant(g.GetID(), g.GetTTL(), n.now())
	if err != nil {
		return nil, leaseError(err), nil
	}
	if err := b.Set(leaseRecordKey(g.GetID()), binary.BigEndian.AppendUint64(nil, uint64(ttl)), nil); err != nil {
		return nil, nil, fmt.Errorf("record lease %x: %w", g.GetID(), err)
	}
	return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}, ID: g.GetID(), TTL: ttl}, nil, nil
}

// applyLeaseRevoke deletes every key attached to the lease at one revision,
// then the lease.
func (n *Node) applyLeaseRevoke(b *pebble.Batch, w *mvcc.Writer, r *pb.LeaseRevokeRequest) (proto.Message, error, error) {
	if !n.lessor.Exists(r.GetID()) {
		return nil, rpctypes.ErrGRPCLeaseNotFound, nil
	}
	if _, err := w.RevokeLease(r.GetID()); err != nil {
		return nil, nil, fmt.Errorf("revoke lease %x: %w", r.GetID(), err)
	}
	if err := b.Delete(leaseRecordKey(r.GetID()), nil); err != nil {
		return nil, nil, fmt.Errorf("revoke lease %x: %w", r.GetID(), err)
	}
	if err := n.lessor.Revoke(r.GetID()); err != nil {
		panic(fmt.Sprintf("node: lease %x existed and then did not: %v", r.GetID(), err))
	}
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}}, nil, nil
}

// leaseError is the rpctypes error a client sees for a lessor error.
func leaseError(err error) error {
	switch {
	case errors.Is(err, lease.ErrNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, lease.ErrExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, lease.ErrTTLTooLarge):
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	return err
}

// newLeaseID picks the ID of a lease granted without one: positive, like
// etcd's, and unique like request IDs.
func (n *Node) newLeaseID() int64 {
	for {
		if id := int64(n.ids.next() & (1<<63 - 1)); id != 0 {
			return id
		}
	}
}

// leaderEntryApplied runs when a leader's empty entry is applied. If it is
// this member's, of its current term, every entry of earlier terms is
// applied, so every lease is known: the lessor becomes primary, giving each
// lease its full TTL plus an election timeout, as etcd's Promote does.
func (n *Node) leaderEntryApplied(e *raftpb.Entry) {
	st := n.raw.BasicStatus()
	if st.RaftState == raft.StateLeader && e.GetTerm() == st.GetTerm() {
		n.lessor.Promote(n.now(), n.electionTimeout())
		n.lessorTerm = st.GetTerm()
	}
}

// leaseTick runs on every Tick: the leader proposes the revocation of
// leases that expired, a bounded number per tick.
func (n *Node) leaseTick() {
	n.demoteStaleLessor()
	if !n.lessor.IsPrimary() {
		return
	}
	if n.cfg.LeaseCheckpointInterval > 0 {
		n.proposeDueCheckpoints()
	}
	if expired := n.lessor.Expired(n.now()); len(expired) > 0 {
		n.proposeRevocations(expired)
	}
}

// demoteStaleLessor demotes a primary lessor whose member no longer leads
// the term the lessor was promoted in, so that a primary lessor always
// speaks for the current term. Its expiries are not the leases' any more:
// another leader may have renewed them since. A member may step down and
// even win a later term by the messages it steps between two ticks, so
// this runs after every Step and Tick, the only calls that change raft's
// role or term.
func (n *Node) demoteStaleLessor() {
	if !n.lessor.IsPrimary() {
		return
	}
	if st := n.raw.BasicStatus(); st.RaftState == raft.StateLeader && st.GetTerm() == n.lessorTerm {
		return
	}
	n.lessor.Demote()
	n.checkpoints.reset(n)
}

// proposeRevocations proposes, on the primary, the revocation of leases
// that expired. raft takes them now, while this member leads the term its
// lessor expired them in, or never: they are neither batched for the next
// Process nor parked. Handed to raft later, after this member stepped down,
// raft would forward them to the new leader, which may have renewed the
// leases since; a revocation appended at the lessor's term applies, if it
// commits, before any later leader promotes its lessor. Expired reports a
// lease again after its retry interval, so a revocation raft dropped or
// that never committed is asked again (a duplicate finds the lease gone and
// is harmless). The entries have no waiter.
func (n *Node) proposeRevocations(ids []int64) {
	// The member revokes as the root user, as etcd does: the check at
	// apply must pass whatever keys the lease holds.
	info, err := n.requestInfo(n.authView.Load(), Request{byMember: true})
	if err != nil {
		panic(fmt.Sprintf("node: the member's own identity: %v", err))
	}
	for _, id := range ids {
		if err := n.proposeNow(&pb.InternalRaftRequest{
			Header:      &pb.RequestHeader{ID: n.ids.next(), Username: info.User, AuthRevision: info.Revision},
			LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}); err != nil {
			return // a leadership transfer is in progress: retried as above
		}
	}
}

// proposeNow hands the lessor's own request ir to raft at once, neither
// batched for the next Process nor parked: it is valid only while this
// member leads its current term, and raft, were it handed the request
// later, would forward it to whoever leads then. The error is raft's
// (ErrProposalDropped during a leadership transfer).
func (n *Node) proposeNow(ir *pb.InternalRaftRequest) error {
	data, err := proto.Marshal(ir)
	if err != nil {
		panic(fmt.Sprintf("node: encode the lessor's request: %v", err))
	}
	return n.raw.Propose(data)
}

// keepAlive renews a lease, as a keep-alive, on the leader after its
// barrier confirmed leadership: a deposed leader never renews, and every
// grant acknowledged before is applied. An unknown or expired lease gets
// TTL 0, as etcd answers. The header is this moment's, so its revision is
// never after a revocation the renewal did not see.
func (n *Node) keepAlive(r *pb.LeaseKeepAliveRequest) (proto.Message, error) {
	if !n.isLeader() {
		return nil, ErrNotLeader
	}
	resp := &pb.LeaseKeepAliveResponse{Header: n.header(n.store.Rev()), ID: r.GetID()}
	ttl, err := n.lessor.Renew(r.GetID(), n.now())
	switch {
	case errors.Is(err, lease.ErrNotPrimary):
		// Elected, but the lessor is not promoted yet (its first entry is
		// not applied): the driver asks again.
		return nil, ErrNotLeader
	case errors.Is(err, lease.ErrNotFound):
		ttl = 0
	case err != nil:
		return nil, leaseError(err)
	}
	resp.TTL = ttl
	return resp, nil
}

// timeToLive answers a lease's granted and remaining TTL on the leader,
// with the same barrier as keepAlive. An unknown lease is not an error:
// TTL -1, as etcd answers.
func (n *Node) timeToLive(r *pb.LeaseTimeToLiveRequest) (proto.Message, error) {
	if !n.isLeader() {
		return nil, ErrNotLeader
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: n.header(n.store.Rev()), ID: r.GetID()}
	granted, remaining, err := n.lessor.TimeToLive(r.GetID(), n.now())
	switch {
	case errors.Is(err, lease.ErrNotPrimary):
		return nil, ErrNotLeader
	case errors.Is(err, lease.ErrNotFound):
		resp.TTL = -1
		return resp, nil
	case err != nil:
		return nil, leaseError(err)
	}
	resp.TTL, resp.GrantedTTL = remaining, granted
	if r.GetKeys() {
		if resp.Keys, err = n.store.LeaseKeys(r.GetID()); err != nil {
			return nil, fmt.Errorf("keys of lease %x: %w", r.GetID(), err)
		}
	}
	return resp, nil
}

// startLeaderRead starts a request only the leader serves: a follower
// completes it with ErrNotLeader at once (the driver forwards it); the
// leader serves it after a ReadIndex barrier.
func (n *Node) startLeaderRead(id uint64, req Request) {
	if !n.isLeader() {
		n.completed = append(n.completed, Completion{ID: id, Err: ErrNotLeader})
		return
	}
	n.startBarrier(id, req)
}

// leaseLeases lists every lease this member has applied, as etcd does
// (from the member's own state, without a barrier).
func (n *Node) leaseLeases() *pb.LeaseLeasesResponse {
	ls := n.lessor.Leases()
	resp := &pb.LeaseLeasesResponse{Header: n.header(n.store.Rev()), Leases: make([]*pb.LeaseStatus, len(ls))}
	for i, l := range ls {
		resp.Leases[i] = &pb.LeaseStatus{ID: l.ID}
	}
	return resp
}

// Leases returns the leases this member has applied, for the simulator's
// end-of-run checks; call it only from the driver's goroutine.
func (n *Node) Leases() []lease.Lease { return n.lessor.Leases() }
