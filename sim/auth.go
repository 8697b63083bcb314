package sim

import (
	"encoding/base64"
	"errors"
	"fmt"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/auth"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
)

// The auth workload (Options.Auth): an admin sets up users, roles and
// permissions and enables auth; a client per user holds a token (from
// Authenticate on any member) and writes and reads keys under prefixes it
// was granted, across crashes, partitions and leader changes; meanwhile
// the admin revokes permissions and roles one at a time, never granting
// them back, and churns unrelated roles so the auth revision moves under
// requests in flight. Every other client of the run acts as the root user
// (by certificate name, which the core takes as the user).
//
// The checks (checkAuth): no put of a user under a prefix is applied at a
// revision after the revocation of that user's permission on it (whose
// response reported the keyspace revision it applied at), and no read of
// such a prefix by that user succeeds with a header revision after it; and
// a request is never denied a permission that was neither revoked nor
// being revoked.

const (
	authUsers    = 3
	authPrefixes = 3
	// authClientBase keeps the auth clients' history IDs apart.
	authClientBase = 2000
	// authRetryMicros is the admin's pause before it retries a step.
	authRetryMicros = 200 * millisecond
	// authAdminPauseMicros is the mean pause between two changes.
	authAdminPauseMicros = 1500 * millisecond
	// authPassword is every user's password; bcrypt at its minimum cost
	// keeps Authenticate cheap in the simulator.
	authPassword = "pw"
)

// authPair is one user's permission on one prefix.
type authPair struct{ user, prefix int }

// authWorld is the auth workload's state.
type authWorld struct {
	enabled bool
	// hashedPassword is authPassword's bcrypt hash, base64, made once.
	hashedPassword string
	// revokedAt is the keyspace revision each revocation applied at, as
	// its response reported it.
	revokedAt map[authPair]int64
	// revoking are the pairs whose revocation was started: from then on a
	// denial is expected, and a revocation whose outcome is unknown stays
	// here without a revision (it is not checked, only allowed).
	revoking map[authPair]bool
	// reads are the auth clients' acknowledged reads.
	reads []authRead
	// churn counts the admin's throw-away roles.
	churn int
}

type authRead struct {
	pair           authPair
	headerRevision int64
}

func authUserName(u int) string     { return fmt.Sprintf("u%d", u) }
func authRoleName(u int) string     { return fmt.Sprintf("r%d", u) }
func authPrefix(p int) string       { return fmt.Sprintf("auth/p%d/", p) }
func authKeyPrefix(p, u int) string { return fmt.Sprintf("%su%d/", authPrefix(p), u) }

// authPermission is the read-write permission on prefix p.
func authPermission(p int) *authpb.Permission {
	return &authpb.Permission{PermType: authpb.READWRITE, Key: []byte(authPrefix(p)), RangeEnd: []byte(lin.PrefixEnd(authPrefix(p)))}
}

// withRoot makes the run's other clients act as the root user when the
// auth workload runs; a request with credentials of its own keeps them.
func (w *world) withRoot(req node.Request) node.Request {
	if w.opts.Auth && req.Credentials == (node.Credentials{}) {
		req.Credentials.CommonName = auth.RootUser
	}
	return req
}

// start starts req on m's loop, as the root user under the auth workload.
func (m *member) start(req node.Request) uint64 { return m.node.Start(m.w.withRoot(req)) }

func (w *world) startAuth() {
	if !w.opts.Auth {
		return
	}
	if w.tokensErr != nil {
		w.fail("auth workload: tokens: %v", w.tokensErr)
		return
	}
	w.trace.printf("%s", w.tokens.String())
	hash, err := bcrypt.GenerateFromPassword([]byte(authPassword), bcrypt.MinCost)
	if err != nil {
		w.fail("auth workload: hash: %v", err)
		return
	}
	w.auth = &authWorld{hashedPassword: base64.StdEncoding.EncodeToString(hash),
		revokedAt: map[authPair]int64{}, revoking: map[authPair]bool{}}
	w.sched.after(second, func() { w.authSetup(w.authSetupSteps(), 0) })
}

// authSetupSteps are the admin's requests before auth is enabled; each is
// retried until it succeeds, so each must be harmless to apply twice.
func (w *world) authSetupSteps() []node.AuthRequests {
	hashed := w.auth.hashedPassword
	steps := []node.AuthRequests{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: auth.RootUser, HashedPassword: hashed}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: auth.RootUser, Role: auth.RootRole}},
	}
	for u := range authUsers {
		steps = append(steps,
			node.AuthRequests{AuthUserAdd: &pb.AuthUserAddRequest{Name: authUserName(u), HashedPassword: hashed}},
			node.AuthRequests{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: authRoleName(u)}})
		for p := range authPrefixes {
			steps = append(steps, node.AuthRequests{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{
				Name: authRoleName(u), Perm: authPermission(p)}})
		}
		steps = append(steps, node.AuthRequests{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: authUserName(u), Role: authRoleName(u)}})
	}
	return append(steps, node.AuthRequests{AuthEnable: &pb.AuthEnableRequest{}})
}

// authAdmin runs one admin request (what describes it in the trace) on a
// live member, the leader if known, and hands done its outcome; known is
// false after a timeout or a crash.
func (w *world) authAdmin(what string, req node.AuthRequests, done func(resp any, err error, known bool)) {
	m := w.leader()
	if m == nil {
		m = w.randomLiveMember()
	}
	if m == nil {
		w.trace.printf("auth admin: no member up for %s", what)
		done(nil, nil, false)
		return
	}
	w.trace.printf("auth admin → %s %s", m.name(), what)
	id := m.start(node.Request{AuthRequests: req})
	w.await(m, id, func(_ *member, c *node.Completion) {
		if c == nil {
			w.trace.printf("auth admin ? timeout or crash")
			done(nil, nil, false)
			return
		}
		resp, err := c.Result()
		w.trace.printf("auth admin ← %v", err)
		done(resp, err, true)
	})
}

func (w *world) authSetup(steps []node.AuthRequests, i int) {
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	if i == len(steps) {
		w.auth.enabled = true
		w.trace.printf("auth enabled")
		for u := range authUsers {
			c := &authClient{w: w, user: u}
			w.sched.after(w.rng.Int64N(100*millisecond), c.issue)
		}
		w.sched.after(authAdminPauseMicros, w.authChange)
		return
	}
	w.authAdmin(fmt.Sprintf("setup step %d", i), steps[i], func(_ any, err error, known bool) {
		if known && (err == nil || errors.Is(err, rpctypes.ErrGRPCUserAlreadyExist) || errors.Is(err, rpctypes.ErrGRPCRoleAlreadyExist)) {
			w.authSetup(steps, i+1)
			return
		}
		w.sched.after(authRetryMicros, func() { w.authSetup(steps, i) })
	})
}

// authChange makes the admin's next change: revoke one user's permission
// on one prefix, revoke a user's role (all its prefixes), or add and
// delete a role no user holds (the revision moves, no permission changes).
func (w *world) authChange() {
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	next := func() { w.sched.after(authAdminPauseMicros/2+w.rng.Int64N(authAdminPauseMicros), w.authChange) }
	switch w.rng.IntN(4) {
	case 0:
		w.auth.churn++
		name := fmt.Sprintf("churn%d", w.auth.churn)
		w.authAdmin("role add "+name, node.AuthRequests{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: name}}, func(any, error, bool) {
			w.authAdmin("role delete "+name, node.AuthRequests{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: name}}, func(any, error, bool) { next() })
		})
	case 1:
		u := w.rng.IntN(authUsers)
		var pairs []authPair
		for p := range authPrefixes {
			pairs = append(pairs, authPair{u, p})
		}
		w.authRevoke(pairs, node.AuthRequests{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: authUserName(u), Role: authRoleName(u)}}, next)
	default:
		pair := authPair{w.rng.IntN(authUsers), w.rng.IntN(authPrefixes)}
		perm := authPermission(pair.prefix)
		w.authRevoke([]authPair{pair}, node.AuthRequests{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{
			Role: authRoleName(pair.user), Key: perm.Key, RangeEnd: perm.RangeEnd}}, next)
	}
}

// authRevoke revokes the pairs not revoked yet with req and records the
// revision it applied at, if its outcome is known.
func (w *world) authRevoke(pairs []authPair, req node.AuthRequests, next func()) {
	var fresh []authPair
	for _, pair := range pairs {
		if !w.auth.revoking[pair] {
			fresh = append(fresh, pair)
		}
	}
	if len(fresh) == 0 {
		next() // revoked already: nothing to learn
		return
	}
	for _, pair := range fresh {
		w.auth.revoking[pair] = true
	}
	w.authAdmin(fmt.Sprintf("revoke %v", fresh), req, func(resp any, err error, known bool) {
		if known && err == nil {
			rev := resp.(interface{ GetHeader() *pb.ResponseHeader }).GetHeader().GetRevision()
			for _, pair := range fresh {
				w.auth.revokedAt[pair] = rev
			}
			w.trace.printf("auth revoked %v at revision %d", fresh, rev)
		}
		next()
	})
}

// authClient is one user's client: it holds a token across requests and
// authenticates again when a member does not know it or it went stale.
type authClient struct {
	w       *world
	user    int
	token   string
	counter int
}

func (c *authClient) historyID() int { return authClientBase + c.user }

func (c *authClient) schedule() {
	c.w.sched.after(20*millisecond+c.w.rng.Int64N(100*millisecond), c.issue)
}

func (c *authClient) issue() {
	w := c.w
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	m := w.randomLiveMember()
	if m == nil {
		c.schedule()
		return
	}
	if c.token == "" {
		c.authenticate(m)
		return
	}
	c.counter++
	p := w.rng.IntN(authPrefixes)
	pair := authPair{c.user, p}
	creds := node.Credentials{Token: c.token}
	switch w.rng.IntN(6) {
	case 0:
		c.readSerializable(m, creds, pair)
		return
	case 1, 2:
		w.authOp(c, m, creds, pair, lin.Prefix(authPrefix(p), 0), func(resp lin.Response) {
			w.auth.reads = append(w.auth.reads, authRead{pair: pair, headerRevision: resp.HeaderRevision})
		})
		return
	}
	key := fmt.Sprintf("%s%d", authKeyPrefix(p, c.user), c.counter)
	w.authOp(c, m, creds, pair, lin.Put(key, fmt.Sprintf("a%d-%d", c.user, c.counter)), func(lin.Response) {})
}

// readSerializable reads the pair's prefix from m's local state; it is
// left out of the linearizable history (it may be stale) and only the
// auth check sees it.
func (c *authClient) readSerializable(m *member, creds node.Credentials, pair authPair) {
	w := c.w
	prefix := authPrefix(pair.prefix)
	req := node.Request{Range: &pb.RangeRequest{Key: []byte(prefix), RangeEnd: []byte(lin.PrefixEnd(prefix)), Serializable: true},
		Credentials: creds}
	comp, ok := m.node.ServeLocal(req)
	if !ok {
		w.fail("auth workload: a serializable range was not served locally")
		return
	}
	resp, err := comp.Result()
	w.authResult(c, m, pair, err)
	if err == nil {
		w.auth.reads = append(w.auth.reads, authRead{pair: pair, headerRevision: resp.(*pb.RangeResponse).GetHeader().GetRevision()})
	}
	c.schedule()
}

func (c *authClient) authenticate(m *member) {
	w := c.w
	req, err := m.node.PrepareAuthenticate(&pb.AuthenticateRequest{Name: authUserName(c.user), Password: authPassword})
	if err != nil {
		// A member behind the log may not know the user, or that auth is
		// enabled, yet.
		w.trace.printf("a%d ✗ %s refused the password: %v", c.user, m.name(), err)
		c.schedule()
		return
	}
	w.trace.printf("a%d → %s authenticate", c.user, m.name())
	id := m.node.Start(req)
	w.await(m, id, func(_ *member, comp *node.Completion) {
		if comp != nil {
			resp, err := comp.Result()
			w.trace.printf("a%d ← authenticate %v", c.user, err)
			if err == nil {
				c.token = resp.(*pb.AuthenticateResponse).GetToken()
			}
		}
		c.schedule()
	})
}

// authOp runs one recorded KV operation of an auth client and checks a
// denial: only a pair being revoked may be denied.
func (w *world) authOp(c *authClient, m *member, creds node.Credentials, pair authPair, req lin.Request, acked func(lin.Response)) {
	w.recordedOpAs(creds, c.historyID(), m, req, 0, func(resp lin.Response, ok bool, err error) {
		if ok {
			acked(resp)
		} else {
			w.authResult(c, m, pair, err)
		}
		c.schedule()
	})
}

// authResult handles an auth client's failed request: a denial must be of
// a pair being revoked; a token a member does not know, or resolved before
// the auth state changed, is dropped and the client authenticates again.
func (w *world) authResult(c *authClient, m *member, pair authPair, err error) {
	switch {
	case errors.Is(err, rpctypes.ErrGRPCPermissionDenied):
		if !w.auth.revoking[pair] {
			w.failAs(FailAuth, "%s denied %s access to %s, a permission never revoked", m.name(), authUserName(pair.user), authPrefix(pair.prefix))
		}
	case errors.Is(err, rpctypes.ErrGRPCInvalidAuthToken), errors.Is(err, rpctypes.ErrGRPCAuthOldRevision),
		errors.Is(err, rpctypes.ErrGRPCUserEmpty):
		w.trace.printf("a%d drops its token: %s", c.user, rpctypes.ErrorDesc(err))
		c.token = ""
	}
}

// checkAuth checks the committed history and the acknowledged reads
// against the revocations.
func (w *world) checkAuth(committed []lin.Event) {
	if w.auth == nil {
		return
	}
	for _, e := range committed {
		pair, ok := authPairOf(e.Key)
		if !ok || e.Type != lin.EventPut {
			continue
		}
		if rev, revoked := w.auth.revokedAt[pair]; revoked && e.Revision > rev {
			w.failAs(FailAuth, "put %s applied at revision %d, after %s lost write permission on %s at revision %d",
				e, e.Revision, authUserName(pair.user), authPrefix(pair.prefix), rev)
			return
		}
	}
	for _, r := range w.auth.reads {
		if rev, revoked := w.auth.revokedAt[r.pair]; revoked && r.headerRevision > rev {
			w.failAs(FailAuth, "%s read %s at revision %d, after it lost read permission at revision %d",
				authUserName(r.pair.user), authPrefix(r.pair.prefix), r.headerRevision, rev)
			return
		}
	}
	w.trace.printf("auth: %d revocations checked, %d reads", len(w.auth.revokedAt), len(w.auth.reads))
}

// authPairOf is the user and prefix of a key an auth client wrote.
func authPairOf(key string) (authPair, bool) {
	var pair authPair
	var seq int
	if _, err := fmt.Sscanf(key, "auth/p%d/u%d/%d", &pair.prefix, &pair.user, &seq); err != nil {
		return authPair{}, false
	}
	return pair, true
}
