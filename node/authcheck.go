package node

import (
	"fmt"
	"time"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/mvcc"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Credentials are what a client presented with a request: the token of
// its gRPC metadata ("token"), and, on a client port with
// --client-cert-auth, the common name of its verified TLS certificate.
// The driver only carries them; the core decides who the request comes
// from and what it may do. A token wins over the certificate, as in etcd.
type Credentials struct {
	Token      string
	CommonName string
}

// Authenticate is an Authenticate request whose password
// PrepareAuthenticate checked; Start proposes it, and the member issues a
// token when it applies, if the auth state is still the one checked.
type Authenticate struct {
	Name string
	// checkedRevision is the auth revision the password was checked at.
	checkedRevision uint64
}

// authState is the auth state published to readers on other goroutines
// (ServeLocal, reads served by Completion.Result, the watch and
// maintenance checks of the server): a copy of the store and the token
// table, both immutable once published (a token's expiry aside). The
// loop publishes a new one after every applied batch that changed either.
type authState struct {
	store  *auth.Store
	tokens *auth.Tokens
}

// publishAuth publishes the loop's auth state; storeChanged says the
// store changed since the last publication (the tokens are always
// republished, being immutable).
func (n *Node) publishAuth(storeChanged bool) {
	st := &authState{tokens: n.tokens}
	if prev := n.authView.Load(); prev != nil && !storeChanged {
		st.store = prev.store
	} else {
		st.store = n.authStore.Clone()
	}
	n.authView.Store(st)
}

// authTick keeps the time tokens expire by, for readers, and drops the
// expired tokens.
func (n *Node) authTick() {
	now := n.now().UnixNano()
	n.authNowNanos.Store(now)
	if t := n.tokens.WithoutExpired(now); t != n.tokens {
		n.tokens = t
		n.publishAuth(false)
	}
}

// resolve decides who presented c: the token's user, if the token is
// known and unexpired (else "invalid auth token"); else the certificate's
// common name; else nobody. Simple tokens are resolved at the current auth
// revision, as in etcd: a change of permissions applies to tokens already
// issued.
//
// While auth is disabled on this member nothing is refused, but known
// credentials are still resolved: the entry enabling auth may be committed
// and not yet applied here, and a write admitted now is then checked, when
// it applies, as its user's (etcd carries no user, and refuses it with
// "user name is empty"). Enabling auth does not move the auth revision.
func (n *Node) resolve(st *authState, c Credentials) (auth.Info, error) {
	if c.Token != "" {
		info, ok := n.resolveToken(st, c.Token)
		switch {
		case ok:
			return info, nil
		case st.store.Enabled():
			return auth.Info{}, rpctypes.ErrGRPCInvalidAuthToken
		}
	}
	if c.CommonName != "" {
		return auth.Info{User: c.CommonName, Revision: st.store.Revision()}, nil
	}
	return auth.Info{}, nil
}

// resolveToken is who a token names: for a simple token, its user at the
// current auth revision; for a JSON Web Token, the user and the auth
// revision it was issued at, so that it goes stale, as in etcd, when the
// auth state changes. Both expire by the member's clock at its last tick.
func (n *Node) resolveToken(st *authState, token string) (auth.Info, bool) {
	now := n.authNowNanos.Load()
	if j := n.cfg.AuthJWT; j != nil {
		return j.Verify(token, time.Unix(0, now))
	}
	user, ok := st.tokens.Lookup(token, now, n.cfg.AuthTokenTTL.Nanoseconds())
	return auth.Info{User: user, Revision: st.store.Revision()}, ok
}

// AsMember marks req as the member's own (a health check's read): it runs
// as the root user, as etcd's WithRoot requests do.
func AsMember(req Request) Request {
	req.byMember = true
	req.Credentials = Credentials{}
	return req
}

// requestInfo is who req comes from: the root user for the member's own
// requests, else the client its credentials name.
func (n *Node) requestInfo(st *authState, req Request) (auth.Info, error) {
	if req.byMember && st.store.Enabled() {
		return auth.Info{User: auth.RootUser, Revision: st.store.Revision()}, nil
	}
	return n.resolve(st, req.Credentials)
}

// requireInfo is etcd's rule for requests any authenticated user may
// make (lease grant and revoke, member list, alarm list, status).
func requireInfo(st *authState, info auth.Info) error {
	if st.store.Enabled() && info.User == "" {
		return rpctypes.ErrGRPCUserEmpty
	}
	return nil
}

// CheckAdmin decides whether the client presenting c may make a request
// only root users may make: Defragment, Hash, HashKV, Snapshot. Safe for
// concurrent use.
func (n *Node) CheckAdmin(c Credentials) error {
	st := n.authView.Load()
	info, err := n.resolve(st, c)
	if err != nil {
		return err
	}
	return st.store.CheckAdmin(info)
}

// CheckCredentials decides whether the client presenting c may make a
// request any authenticated user may make (Status). Safe for concurrent
// use.
func (n *Node) CheckCredentials(c Credentials) error {
	st := n.authView.Load()
	info, err := n.resolve(st, c)
	if err != nil {
		return err
	}
	return requireInfo(st, info)
}

// CheckWatch decides whether the client presenting c may watch [key,
// rangeEnd): read permission on the range, as for a range request. Safe
// for concurrent use.
func (n *Node) CheckWatch(c Credentials, key, rangeEnd []byte) error {
	st := n.authView.Load()
	info, err := n.resolve(st, c)
	if err != nil {
		return err
	}
	return st.store.CheckOp(info, key, rangeEnd, authpb.READ)
}

// PrepareAuthenticate checks an Authenticate request's password against
// the published auth state, on the caller's goroutine (bcrypt is too
// costly for the loop), and returns the request to Start. Safe for
// concurrent use.
func (n *Node) PrepareAuthenticate(r *pb.AuthenticateRequest) (Request, error) {
	rev, err := n.authView.Load().store.CheckPassword(r.GetName(), r.GetPassword())
	if err != nil {
		return Request{}, err
	}
	return Request{Authenticate: &Authenticate{Name: r.GetName(), checkedRevision: rev}}, nil
}

// admitAuth resolves a request's credentials when it starts and makes
// the checks etcd makes before a request enters raft: admin-only
// requests, and requests that need some user. Keyspace permissions are
// checked when the request is served (reads) or applied (writes).
func (n *Node) admitAuth(req Request) (auth.Info, error) {
	st := n.authView.Load()
	if req.Authenticate != nil {
		return auth.Info{}, nil
	}
	info, err := n.requestInfo(st, req)
	if err != nil || !st.store.Enabled() {
		return info, err
	}
	switch {
	case req.Compaction != nil, req.isMemberChange(), req.MoveLeader != nil, req.Downgrade != nil:
		return info, st.store.CheckAdmin(info)
	case req.Alarm != nil:
		if req.Alarm.GetAction() == pb.AlarmRequest_GET {
			return info, requireInfo(st, info)
		}
		return info, st.store.CheckAdmin(info)
	case req.MemberList != nil, req.LeaseGrant != nil, req.LeaseRevoke != nil:
		return info, requireInfo(st, info)
	case req.LeaseKeepAlive != nil:
		return info, n.checkLeaseKeys(st, info, []int64{req.LeaseKeepAlive.GetID()}, authpb.WRITE)
	case req.LeaseTimeToLive != nil:
		if !req.LeaseTimeToLive.GetKeys() {
			return info, requireInfo(st, info)
		}
		return info, n.checkLeaseKeys(st, info, []int64{req.LeaseTimeToLive.GetID()}, authpb.READ)
	case req.LeaseLeases != nil:
		var ids []int64
		for _, l := range n.lessor.Leases() {
			ids = append(ids, l.ID)
		}
		return info, n.checkLeaseKeys(st, info, ids, authpb.READ)
	}
	return info, nil
}

// checkLeaseKeys is etcd's check of a lease keep-alive, a time-to-live
// with keys and a lease list: some user, and a root user or permission
// of type op on every key attached to the leases.
func (n *Node) checkLeaseKeys(st *authState, info auth.Info, ids []int64, op authpb.Permission_Type) error {
	if err := requireInfo(st, info); err != nil {
		return err
	}
	if st.store.CheckAdmin(info) == nil {
		return nil
	}
	for _, id := range ids {
		keys, err := n.view.LeaseKeys(id)
		if err != nil {
			return fmt.Errorf("node: keys of lease %x: %w", id, err)
		}
		for _, key := range keys {
			if err := st.store.CheckOp(info, key, nil, op); err != nil {
				return err
			}
		}
	}
	return nil
}

// permissions checks the keyspace permissions of one request against
// one auth state, by etcd's rules.
type permissions struct {
	store *auth.Store
	info  auth.Info
	// leaseKeys lists the keys attached to a lease.
	leaseKeys func(id int64) ([][]byte, error)
	// failed is a failure to read lease keys: a failure of the member,
	// not of the request.
	failed error
}

func (p *permissions) op(key, rangeEnd []byte, op authpb.Permission_Type) error {
	return p.store.CheckOp(p.info, key, rangeEnd, op)
}

func (p *permissions) rangeRequest(r *pb.RangeRequest) error {
	return p.op(r.GetKey(), r.GetRangeEnd(), authpb.READ)
}

// put needs write permission on the key, write permission on every key
// already attached to the lease it attaches the key to (a user who could
// not revoke the lease must not extend it), and read permission on the
// key for its previous value.
func (p *permissions) put(r *pb.PutRequest) error {
	if err := p.op(r.GetKey(), nil, authpb.WRITE); err != nil {
		return err
	}
	if err := p.leasePuts(r.GetLease()); err != nil {
		return err
	}
	if r.GetPrevKv() {
		return p.op(r.GetKey(), nil, authpb.READ)
	}
	return nil
}

func (p *permissions) deleteRange(r *pb.DeleteRangeRequest) error {
	if err := p.op(r.GetKey(), r.GetRangeEnd(), authpb.WRITE); err != nil {
		return err
	}
	if r.GetPrevKv() {
		return p.op(r.GetKey(), r.GetRangeEnd(), authpb.READ)
	}
	return nil
}

// txn checks every compare (read) and every operation of both branches,
// whichever runs, as etcd does: a txn with one denied operation is
// denied whole.
func (p *permissions) txn(r *pb.TxnRequest) error {
	for _, c := range r.GetCompare() {
		if err := p.op(c.GetKey(), c.GetRangeEnd(), authpb.READ); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			if err := p.requestOp(op); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *permissions) requestOp(op *pb.RequestOp) error {
	switch {
	case op.GetRequestRange() != nil:
		return p.rangeRequest(op.GetRequestRange())
	case op.GetRequestPut() != nil:
		return p.put(op.GetRequestPut())
	case op.GetRequestDeleteRange() != nil:
		return p.deleteRange(op.GetRequestDeleteRange())
	case op.GetRequestTxn() != nil:
		return p.txn(op.GetRequestTxn())
	}
	return nil
}

// leasePuts needs, unless the user is a root user, write permission on
// every key attached to lease id (none for no lease or an unknown one).
func (p *permissions) leasePuts(id int64) error {
	if id == 0 || p.store.CheckAdmin(p.info) == nil {
		return nil
	}
	keys, err := p.leaseKeys(id)
	if err != nil {
		p.failed = fmt.Errorf("keys of lease %x: %w", id, err)
		return p.failed
	}
	for _, key := range keys {
		if err := p.op(key, nil, authpb.WRITE); err != nil {
			return err
		}
	}
	return nil
}

// read checks a read (a range or a read-only txn) against the published
// auth state, when it is served.
func (n *Node) checkRead(st *authState, info auth.Info, req Request) error {
	p := &permissions{store: st.store, info: info, leaseKeys: n.view.LeaseKeys}
	switch {
	case req.Range != nil:
		return p.rangeRequest(req.Range)
	case req.RangeStream != nil:
		return p.rangeRequest(req.RangeStream)
	}
	return p.txn(req.Txn)
}

// checkWrite checks a write when its entry applies, against the auth
// state of that entry and the requester's info from the entry's header:
// a permission revoked after the request was admitted is never bypassed,
// and credentials resolved before a change of the auth state fail with
// "revision of auth store is old" (the client re-authenticates and
// retries). reqErr is for the client; err is a failure of the member.
func (n *Node) checkWrite(w *mvcc.Writer, req *pb.InternalRaftRequest) (reqErr, err error) {
	if !n.authStore.Enabled() || n.cfg.Knobs.SkipApplyAuthCheck {
		return nil, nil
	}
	info := auth.Info{User: req.GetHeader().GetUsername(), Revision: req.GetHeader().GetAuthRevision()}
	p := &permissions{store: n.authStore, info: info, leaseKeys: w.LeaseKeys}
	switch {
	case req.Put != nil:
		reqErr = p.put(req.Put)
	case req.DeleteRange != nil:
		reqErr = p.deleteRange(req.DeleteRange)
	case req.Txn != nil:
		reqErr = p.txn(req.Txn)
	case req.LeaseRevoke != nil:
		reqErr = p.leasePuts(req.LeaseRevoke.GetID())
	}
	if p.failed != nil {
		return nil, p.failed
	}
	return reqErr, nil
}
