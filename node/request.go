package node

import (
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/node/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Request is one client request as the core takes it, in etcd's own
// protobuf types: exactly one field is set. The core decides everything
// about it that a client can see — admission (limits, quota, learner
// rules), the ReadIndex barrier of a linearizable read, the leadership
// confirmation of a lease keep-alive — and completes it with etcd's full
// response or error. A driver only carries it in and the result out.
type Request struct {
	Range           *pb.RangeRequest
	Put             *pb.PutRequest
	DeleteRange     *pb.DeleteRangeRequest
	Txn             *pb.TxnRequest
	Compaction      *pb.CompactionRequest
	LeaseGrant      *pb.LeaseGrantRequest
	LeaseRevoke     *pb.LeaseRevokeRequest
	LeaseKeepAlive  *pb.LeaseKeepAliveRequest
	LeaseTimeToLive *pb.LeaseTimeToLiveRequest
	LeaseLeases     *pb.LeaseLeasesRequest
	MemberAdd       *pb.MemberAddRequest
	MemberRemove    *pb.MemberRemoveRequest
	MemberUpdate    *pb.MemberUpdateRequest
	MemberPromote   *pb.MemberPromoteRequest
	MemberList      *pb.MemberListRequest
	MoveLeader      *pb.MoveLeaderRequest
	// Alarm lists, raises or clears alarms, through raft (alarm.go).
	Alarm *pb.AlarmRequest
	// Downgrade validates, enables or cancels a downgrade (downgrade.go).
	Downgrade *pb.DowngradeRequest
	// ClusterMemberAttrSet publishes a member's name and client URLs.
	ClusterMemberAttrSet *membershippb.ClusterMemberAttrSetRequest
	// RangeStream is a range answered in chunks (etcd 3.7's KV.RangeStream):
	// its Completion is read with Completion.Stream (rangestream.go).
	RangeStream *pb.RangeRequest

	// AuthRequests are the Auth service's requests (authrequests.go).
	AuthRequests
	// Authenticate issues a token (PrepareAuthenticate makes it).
	Authenticate *Authenticate

	// Credentials are not a request: they are what the client presented
	// with it, for any request above (authcheck.go).
	Credentials Credentials
	// byMember marks the member's own requests (an automatic compaction, a
	// health check's read): they run as the root user, as etcd's do.
	byMember bool
	// wire is the start of the raft entry of a put that arrived encoded
	// (WirePut), proposed without encoding the put again.
	wire *wireEntry
}

// Limits are the request limits a member enforces, with etcd's defaults.
type Limits struct {
	// MaxRequestBytes bounds one request as proposed to raft
	// (--max-request-bytes). Default 1.5 MiB.
	MaxRequestBytes int
	// MaxTxnOps bounds the operations in one txn, counted per branch
	// (--max-txn-ops). Default 128.
	MaxTxnOps int
	// QuotaBackendBytes bounds the database's size on disk
	// (--quota-backend-bytes): a request that may add data (a put, a txn
	// with puts, a lease grant) and would take the database past it fails
	// with "etcdserver: mvcc: database space exceeded" and raises the
	// member's NOSPACE alarm, which refuses such requests until it is
	// disarmed (alarm.go); reads, deletes, revocations and compactions
	// still pass. Default 2 GiB; negative: no quota.
	QuotaBackendBytes int64
}

// DefaultLimits are etcd's defaults.
var DefaultLimits = Limits{MaxRequestBytes: 1536 * 1024, MaxTxnOps: 128, QuotaBackendBytes: 2 << 30}

func (l *Limits) ensureDefaults() {
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = DefaultLimits.MaxRequestBytes
	}
	if l.MaxTxnOps == 0 {
		l.MaxTxnOps = DefaultLimits.MaxTxnOps
	}
	if l.QuotaBackendBytes == 0 {
		l.QuotaBackendBytes = DefaultLimits.QuotaBackendBytes
	}
}

// Bounds of the request path.
const (
	// quotaSampleTicks is how often the database's size is read for the
	// quota: reading Pebble's metrics on every write cost 17% of a
	// member's CPU, and the quota needs no finer grain.
	quotaSampleTicks = 10
	// parkedProposalsMax bounds the writes waiting for a leader; beyond it
	// a write fails at once with "etcdserver: too many requests".
	parkedProposalsMax = 16384
)

// ErrNotLeader completes a lease keep-alive or time-to-live started on a
// member that does not lead (or lost leadership before serving it): only
// the leader serves them, so the driver forwards the request to the
// leader or asks again.
var ErrNotLeader = errors.New("node: not the leader")

// Start begins req's life and returns its ID; its result arrives as a
// Completion with that ID in a later Output, and is read with
// Completion.Result. Start never blocks and never fails by itself: a
// refused request completes with its error.
func (n *Node) Start(req Request) uint64 {
	id := n.ids.next()
	if err := n.admit(req); err != nil {
		n.completed = append(n.completed, Completion{ID: id, Err: err})
		return id
	}
	info, err := n.admitAuth(req)
	if err != nil {
		n.completed = append(n.completed, Completion{ID: id, Err: err})
		return id
	}
	switch {
	case req.isRead():
		if req.isSerializable() {
			n.completed = append(n.completed, Completion{ID: id, read: &deferredRead{n: n, req: req}})
		} else {
			n.startBarrier(id, req)
		}
	case req.LeaseKeepAlive != nil || req.LeaseTimeToLive != nil:
		n.startLeaderRead(id, req)
	case req.LeaseLeases != nil:
		n.completed = append(n.completed, Completion{ID: id, Response: n.leaseLeases()})
	case req.MemberList != nil || req.isMemberChange():
		n.startMemberRequest(id, req)
	case req.MoveLeader != nil:
		n.startMoveLeader(id, req.MoveLeader)
	case req.Downgrade != nil:
		n.startDowngrade(id, req.Downgrade)
	case req.Authenticate != nil:
		n.propose(id, &pb.InternalRaftRequest{
			Header:       &pb.RequestHeader{AuthRevision: req.Authenticate.checkedRevision},
			Authenticate: &pb.InternalAuthenticateRequest{Name: req.Authenticate.Name, SimpleToken: n.simpleTokenPrefix()},
		})
	default:
		ir := req.internal()
		ir.Header = &pb.RequestHeader{Username: info.User, AuthRevision: info.Revision}
		n.proposeFrom(id, ir, req.wire)
	}
	return id
}

// ServeLocal serves, on the calling goroutine, a request that needs no
// round through the driver's loop: a serializable range, or a read-only
// txn whose ranges are all serializable. It reports false for any other
// request, which must be Started on the loop. Safe for concurrent use.
func (n *Node) ServeLocal(req Request) (Completion, bool) {
	if !req.isRead() || !req.isSerializable() {
		return Completion{}, false
	}
	if err := req.check(n.cfg.Limits, n.status.load().isLearner()); err != nil {
		return Completion{Err: err}, true
	}
	return Completion{read: &deferredRead{n: n, req: req, local: true}}, true
}

// admit runs the checks every request passes before it starts.
func (n *Node) admit(req Request) error {
	if err := req.check(n.cfg.Limits, n.isLearner()); err != nil {
		return err
	}
	return n.admitQuota(req)
}

// check validates a request on its own: its shape, the limits, and
// whether a learner may serve it.
func (r Request) check(limits Limits, learner bool) error {
	if learner && !r.servedByLearner() {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	switch {
	case r.Range != nil:
		return mvcc.CheckRange(r.Range)
	case r.RangeStream != nil:
		return checkRangeStream(r.RangeStream)
	case r.Put != nil:
		return mvcc.CheckPut(r.Put)
	case r.DeleteRange != nil:
		return mvcc.CheckDeleteRange(r.DeleteRange)
	case r.Txn != nil:
		return mvcc.CheckTxn(r.Txn, mvcc.Limits{MaxTxnOps: limits.MaxTxnOps})
	}
	return nil
}

// ServedByLearner reports whether a learner serves a gRPC request message
// at all: like etcd, a learner replicates but may be far behind, so it
// serves only Status and serializable ranges and refuses the rest with
// "etcdserver: rpc not supported for learner". Start applies the same rule
// to the requests the core takes.
func ServedByLearner(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.GetSerializable()
	}
	return false
}

// servedByLearner applies ServedByLearner's rule to a core request; a
// member's own publication of its attributes is not a client's, and a
// learner makes it too.
func (r Request) servedByLearner() bool {
	return r.Range.GetSerializable() || r.ClusterMemberAttrSet != nil
}

// isRead reports whether the request only reads the keyspace.
func (r Request) isRead() bool {
	return r.Range != nil || r.RangeStream != nil || (r.Txn != nil && mvcc.IsReadOnlyTxn(r.Txn))
}

// isSerializable reports whether a read may be served from local state
// without a ReadIndex barrier: a serializable range, or a read-only txn
// whose ranges, in either branch, are all serializable.
func (r Request) isSerializable() bool {
	if r.Range != nil || r.RangeStream != nil {
		return r.Range.GetSerializable() || r.RangeStream.GetSerializable()
	}
	return r.Txn != nil && isSerializableTxn(r.Txn)
}

func isSerializableTxn(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if r := op.GetRequestRange(); r != nil && !r.GetSerializable() {
				return false
			}
			if t := op.GetRequestTxn(); t != nil && !isSerializableTxn(t) {
				return false
			}
		}
	}
	return true
}

// internal is the request as raft replicates it.
func (r Request) internal() *pb.InternalRaftRequest {
	ir := &pb.InternalRaftRequest{Put: r.Put, DeleteRange: r.DeleteRange, Txn: r.Txn,
		Compaction: r.Compaction, LeaseGrant: r.LeaseGrant, LeaseRevoke: r.LeaseRevoke,
		ClusterMemberAttrSet: r.ClusterMemberAttrSet, Alarm: r.Alarm}
	r.AuthRequests.addTo(ir)
	return ir
}

// sampleDBSize refreshes the database size the quota reads, every
// quotaSampleTicks ticks.
func (n *Node) sampleDBSize() {
	if n.ticks%quotaSampleTicks == 0 {
		n.dbSizeBytes = n.DiskSpaceUsage()
	}
}

func (n *Node) isLearner() bool {
	for _, id := range n.log.ConfState().GetLearners() {
		if id == n.cfg.ID {
			return true
		}
	}
	return false
}

func (n *Node) isLeader() bool { return n.raw.BasicStatus().RaftState == raft.StateLeader }

// propose encodes a write once, checks its size and hands it to raft.
func (n *Node) propose(id uint64, ir *pb.InternalRaftRequest) { n.proposeFrom(id, ir, nil) }

// proposeFrom is propose for a write whose raft entry wire may already
// have begun (a put that arrived encoded, wire.go): the entry is then the
// wire bytes and the header, and the write is encoded only where wire
// cannot serve (nil, taken by an earlier Start, or the put changed).
func (n *Node) proposeFrom(id uint64, ir *pb.InternalRaftRequest, wire *wireEntry) {
	if ir.Header == nil {
		ir.Header = &pb.RequestHeader{}
	}
	ir.Header.ID = id
	if g := ir.GetLeaseGrant(); g != nil && g.GetID() == 0 {
		g.ID = n.newLeaseID()
	}
	data, err := wire.take(ir.Put, ir.Header)
	if data == nil && err == nil {
		data, err = proto.Marshal(ir)
	}
	if err != nil {
		n.completed = append(n.completed, Completion{ID: id, Err: fmt.Errorf("node: encode request: %w", err)})
		return
	}
	if len(data) > n.cfg.Limits.MaxRequestBytes {
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCRequestTooLarge})
		return
	}
	n.batched = append(n.batched, batchedProposal{id: id, data: data, request: ir, sinceTick: n.ticks})
}

// batchedProposal is a write propose encoded, waiting for the next
// Process to hand it to raft with the others (submitBatched).
type batchedProposal struct {
	id        uint64
	data      []byte
	request   *pb.InternalRaftRequest
	sinceTick uint64 // when it was proposed: a request's timeout counts from there
}

// submitBatched hands the writes proposed since the last Process to raft
// in proposal messages of many entries, as raft appends the entries of a
// proposal a follower forwards. raft then sends each follower one append
// for all of them instead of one per write, and each follower
// acknowledges once: with 100 clients, a leader sent about eight appends
// to each follower per Ready, each acknowledged. A message carries at
// most MaxSizePerMsgBytes of entries (a write over it goes alone), the
// bound of an append: a follower forwards it whole, and it must cross the
// peer transport. raft takes a message's entries or drops them all (no
// leader, a transfer in progress), which parks each.
func (n *Node) submitBatched() {
	batch := n.batched
	n.batched = nil
	for len(batch) > 0 {
		k, size := 1, uint64(len(batch[0].data))
		for ; k < len(batch) && size+uint64(len(batch[k].data)) <= n.cfg.MaxSizePerMsgBytes; k++ {
			size += uint64(len(batch[k].data))
		}
		n.submitProposals(batch[:k])
		batch = batch[k:]
	}
}

// submitProposals steps one proposal message of batch's writes into raft.
func (n *Node) submitProposals(batch []batchedProposal) {
	ents := make([]*raftpb.Entry, len(batch))
	for i, p := range batch {
		ents[i] = &raftpb.Entry{Data: p.data}
	}
	err := n.raw.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(n.cfg.ID), Entries: ents})
	for _, p := range batch {
		if !n.submitted(parkedProposal{id: p.id, data: p.data, sinceTick: p.sinceTick}, err) {
			continue
		}
		// A follower keeps its proposals too: raft forwards them to the
		// leader, and the entry that comes back carries these very bytes.
		// A parked proposal is not kept (it is counted once, as parked,
		// and is decoded if it applies after a retry).
		n.proposals.remember(p.id, len(p.data), p.request)
	}
}

// parkedProposal is a write (data) or a member change (confChange) raft
// dropped for want of a leader: it is proposed again every tick until
// RequestTimeoutTicks have passed.
type parkedProposal struct {
	id         uint64
	data       []byte
	confChange *raftpb.ConfChange
	sinceTick  uint64
}

func (p parkedProposal) propose(rn *raft.RawNode) error {
	if p.confChange != nil {
		return rn.ProposeConfChange(p.confChange)
	}
	return rn.Propose(p.data)
}

// submit hands p to raft and reports whether raft took it; one raft
// dropped for want of a leader is parked, or fails when too many are.
func (n *Node) submit(p parkedProposal) (proposed bool) {
	return n.submitted(p, p.propose(n.raw))
}

// submitted deals with raft's answer err to proposing p, as submit says.
func (n *Node) submitted(p parkedProposal, err error) (proposed bool) {
	switch {
	case errors.Is(err, raft.ErrProposalDropped):
		if len(n.parked) >= parkedProposalsMax {
			n.metrics.proposalsFailed.Add(1)
			n.completed = append(n.completed, Completion{ID: p.id, Err: rpctypes.ErrGRPCRequestTooManyRequests})
			return false
		}
		n.parked = append(n.parked, p)
		return false
	case err != nil:
		n.completed = append(n.completed, Completion{ID: p.id, Err: fmt.Errorf("node: propose: %w", err)})
		return false
	}
	return true
}

// retryParked proposes the parked writes again, once a tick, and fails
// those that waited RequestTimeoutTicks.
func (n *Node) retryParked() {
	parked := n.parked
	n.parked = nil
	for _, p := range parked {
		if n.ticks-p.sinceTick >= uint64(n.cfg.RequestTimeoutTicks) {
			delete(n.memberChanges, p.id)
			n.metrics.proposalsFailed.Add(1)
			n.completed = append(n.completed, Completion{ID: p.id, Err: rpctypes.ErrGRPCTimeout})
			continue
		}
		n.submit(p)
	}
}

// header is a response header of this member at revision rev.
func (n *Node) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, Revision: rev,
		RaftTerm: n.log.HardState().GetTerm()}
}

// headed is a response with etcd's header.
type headed interface {
	proto.Message
	GetHeader() *pb.ResponseHeader
}

// completeHeader fills in who answered a response whose header the store
// started (with its revision).
func (n *Node) completeHeader(resp proto.Message) {
	r, ok := resp.(headed)
	if !ok || r.GetHeader() == nil {
		panic(fmt.Sprintf("node: response %T without a header", resp))
	}
	h := r.GetHeader()
	h.ClusterId, h.MemberId, h.RaftTerm = n.cfg.ClusterID, n.cfg.ID, n.log.HardState().GetTerm()
}

// deferredRead is a read the core has admitted and, if linearizable,
// released past its ReadIndex barrier: Completion.Result serves it from
// the published keyspace on the caller's goroutine, so reads run in
// parallel with the driver's loop, and no caller can serve a read before
// its barrier.
type deferredRead struct {
	n   *Node
	req Request
	// local is set for a read ServeLocal admitted.
	local bool
}

func (r *deferredRead) serve() (proto.Message, error) {
	st := r.n.authView.Load()
	info, err := r.n.requestInfo(st, r.req)
	if err == nil {
		err = r.n.checkRead(st, info, r.req)
	}
	if err != nil {
		return nil, err
	}
	resp, err := r.read()
	if err != nil {
		return nil, err
	}
	// As etcd: credentials resolved before a change of the auth state
	// that landed while the read was served are stale.
	if now := r.n.authView.Load().store; now.Enabled() && info.Revision != 0 && info.Revision != now.Revision() {
		return nil, rpctypes.ErrGRPCAuthOldRevision
	}
	return resp, nil
}

func (r *deferredRead) read() (proto.Message, error) {
	var resp headed
	var err error
	if r.req.RangeStream != nil {
		panic("node: Result of a RangeStream's completion: its chunks are read with Completion.Stream")
	}
	if r.req.Range != nil {
		r.n.metrics.ranges.Add(1)
		resp, err = r.n.view.Range(r.rangeRequest())
	} else {
		resp, err = r.n.view.ReadTxn(r.req.Txn)
	}
	if err != nil {
		return nil, err
	}
	h := resp.GetHeader()
	h.ClusterId, h.MemberId, h.RaftTerm = r.n.cfg.ClusterID, r.n.cfg.ID, r.n.status.load().Term
	return resp, nil
}

// Result is the request's outcome as the client sees it: etcd's full
// response, or its error. A read is served here, on the caller's
// goroutine; it is safe for concurrent use.
func (c Completion) Result() (proto.Message, error) {
	switch {
	case c.Err != nil:
		return nil, c.Err
	case c.read != nil:
		return c.read.serve()
	case c.jwt != nil:
		resp, err := c.jwt.sign(c.Response.(*pb.AuthenticateResponse))
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	return c.Response, nil
}
