package node

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
)

// authTokenTTLForTest is short, so that expiry takes a few dozen ticks.
const authTokenTTLForTest = 2 * time.Second

// authCluster is a 3-member cluster with auth enabled: root, alice
// (read-write on [a, b)) and bob (read-write on [b, c)).
type authCluster struct {
	*harness
	leader   uint64
	follower uint64
}

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(h)
}

func newAuthCluster(t *testing.T, knobs TestingKnobs) *authCluster {
	t.Helper()
	return newAuthClusterWith(t, func(c *Config) { c.Knobs = knobs })
}

// newAuthClusterWith is newAuthCluster with adjust applied to each
// member's configuration.
func newAuthClusterWith(t *testing.T, adjust func(*Config)) *authCluster {
	t.Helper()
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) {
		c.AuthTokenTTL = authTokenTTLForTest
		adjust(c)
	})
	c := &authCluster{harness: h, leader: h.leader()}
	c.follower = h.ids[0]
	if c.follower == c.leader {
		c.follower = h.ids[1]
	}
	for _, req := range []AuthRequests{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: bcryptHash(t, "rootpw")}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: bcryptHash(t, "alicepw")}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob", HashedPassword: bcryptHash(t, "bobpw")}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "ra"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "rb"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "ra",
			Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("a"), RangeEnd: []byte("b")}}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "rb",
			Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("b"), RangeEnd: []byte("c")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "ra"}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "rb"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		if _, err := h.serve(c.leader, Request{AuthRequests: req}); err != nil {
			t.Fatalf("%v: %v", req, err)
		}
	}
	return c
}

// token authenticates name on member id and returns its token.
func (c *authCluster) token(id uint64, name, password string) string {
	c.t.Helper()
	req, err := c.node(id).PrepareAuthenticate(&pb.AuthenticateRequest{Name: name, Password: password})
	if err != nil {
		c.t.Fatalf("authenticate %s: %v", name, err)
	}
	resp, err := c.serve(id, req)
	if err != nil {
		c.t.Fatalf("authenticate %s: %v", name, err)
	}
	return resp.(*pb.AuthenticateResponse).GetToken()
}

func withToken(req Request, token string) Request {
	req.Credentials = Credentials{Token: token}
	return req
}

func putAs(token, key string) Request {
	return withToken(Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}, token)
}

func rangeAs(token, key, end string, serializable bool) Request {
	return withToken(Request{Range: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end), Serializable: serializable}}, token)
}

// wantErr serves req on member id and requires err (nil: success).
func (c *authCluster) wantErr(id uint64, req Request, want error) {
	c.t.Helper()
	_, err := c.serve(id, req)
	if !errors.Is(err, want) && !(want == nil && err == nil) {
		c.t.Fatalf("%+v: got %v, want %v", req, err, want)
	}
}

// wantLocal serves a serializable read with ServeLocal and requires err.
func (c *authCluster) wantLocal(id uint64, req Request, want error) {
	c.t.Helper()
	comp, ok := c.node(id).ServeLocal(req)
	if !ok {
		c.t.Fatalf("%+v not served locally", req)
	}
	if _, err := comp.Result(); !errors.Is(err, want) && !(want == nil && err == nil) {
		c.t.Fatalf("local %+v: got %v, want %v", req, err, want)
	}
}

func TestAuthenticate(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	if _, err := c.node(c.follower).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "alice", Password: "wrong"}); !errors.Is(err, rpctypes.ErrGRPCAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := c.node(c.follower).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "nobody", Password: "x"}); !errors.Is(err, rpctypes.ErrGRPCAuthFailed) {
		t.Fatalf("unknown user: %v", err)
	}
	token := c.token(c.follower, "alice", "alicepw")
	// A token issued through one member is known to every member.
	for _, id := range c.ids {
		c.wantErr(id, putAs(token, "a1"), nil)
		c.wantLocal(id, rangeAs(token, "a1", "", true), nil)
	}
	// A check made against a stale auth state issues no token.
	req, err := c.node(c.leader).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.serve(c.leader, Request{AuthRequests: AuthRequests{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "x"}},
		Credentials: Credentials{Token: c.token(c.leader, "root", "rootpw")}}); err != nil {
		t.Fatal(err)
	}
	c.wantErr(c.leader, req, rpctypes.ErrGRPCAuthOldRevision)
}

func TestAuthenticateWhenDisabled(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.leader()
	if _, err := h.node(1).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "root", Password: "x"}); !errors.Is(err, rpctypes.ErrGRPCAuthNotEnabled) {
		t.Fatalf("got %v, want %v", err, rpctypes.ErrGRPCAuthNotEnabled)
	}
}

// TestAuthBypassNoToken: a request without credentials does nothing.
func TestAuthBypassNoToken(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	c.wantErr(c.leader, putAs("", "a1"), rpctypes.ErrGRPCUserEmpty)
	c.wantErr(c.follower, rangeAs("", "a1", "", false), rpctypes.ErrGRPCUserEmpty)
	c.wantLocal(c.follower, rangeAs("", "a1", "", true), rpctypes.ErrGRPCUserEmpty)
	c.wantErr(c.leader, Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 10}}, rpctypes.ErrGRPCUserEmpty)
	if err := c.node(c.leader).CheckWatch(Credentials{}, []byte("a"), nil); !errors.Is(err, rpctypes.ErrGRPCUserEmpty) {
		t.Fatalf("watch: %v", err)
	}
	if err := c.node(c.leader).CheckCredentials(Credentials{}); !errors.Is(err, rpctypes.ErrGRPCUserEmpty) {
		t.Fatalf("status: %v", err)
	}
}

// TestAuthBypassForgedToken: a token no member issued is refused, even
// with a valid certificate name beside it.
func TestAuthBypassForgedToken(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	token := c.token(c.leader, "alice", "alicepw")
	for _, forged := range []string{"AAAAAAAAAAAAAAAA.1", token + "0", "root", token[:len(token)-1]} {
		c.wantErr(c.leader, putAs(forged, "a1"), rpctypes.ErrGRPCInvalidAuthToken)
		c.wantLocal(c.follower, rangeAs(forged, "a1", "", true), rpctypes.ErrGRPCInvalidAuthToken)
		req := putAs(forged, "a1")
		req.Credentials.CommonName = "root"
		c.wantErr(c.leader, req, rpctypes.ErrGRPCInvalidAuthToken)
	}
}

// TestAuthBypassExpiredToken: a token unused for its TTL is refused; one
// in use stays valid.
func TestAuthBypassExpiredToken(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	idle := c.token(c.leader, "alice", "alicepw")
	used := c.token(c.leader, "alice", "alicepw")
	ttlTicks := int(authTokenTTLForTest / (100 * time.Millisecond))
	for i := range 2 * ttlTicks {
		c.tick()
		if i%(ttlTicks/2) == 0 {
			c.wantErr(c.leader, putAs(used, "a1"), nil)
		}
	}
	for _, id := range c.ids {
		c.wantErr(id, putAs(idle, "a1"), rpctypes.ErrGRPCInvalidAuthToken)
		c.wantLocal(id, rangeAs(idle, "a1", "", true), rpctypes.ErrGRPCInvalidAuthToken)
	}
	c.wantErr(c.leader, putAs(used, "a1"), nil)
}

// TestAuthBypassDeletedUser: deleting a user, or changing its password,
// invalidates its tokens on every member; a new user of the same name does
// not revive them.
func TestAuthBypassDeletedUser(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	root := c.token(c.leader, "root", "rootpw")
	alice := c.token(c.follower, "alice", "alicepw")
	bob := c.token(c.follower, "bob", "bobpw")
	admin := func(req AuthRequests) {
		t.Helper()
		if _, err := c.serve(c.leader, Request{AuthRequests: req, Credentials: Credentials{Token: root}}); err != nil {
			t.Fatal(err)
		}
	}
	admin(AuthRequests{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "alice"}})
	admin(AuthRequests{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: bcryptHash(t, "new")}})
	admin(AuthRequests{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "ra"}})
	admin(AuthRequests{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "bob", HashedPassword: bcryptHash(t, "new")}})
	for _, id := range c.ids {
		c.wantErr(id, putAs(alice, "a1"), rpctypes.ErrGRPCInvalidAuthToken)
		c.wantErr(id, putAs(bob, "b1"), rpctypes.ErrGRPCInvalidAuthToken)
	}
	// A certificate's name is checked against the users of the moment.
	admin(AuthRequests{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "bob"}})
	c.wantErr(c.leader, withToken(Request{Put: &pb.PutRequest{Key: []byte("b1")}}, ""), rpctypes.ErrGRPCUserEmpty)
	byCert := Request{Put: &pb.PutRequest{Key: []byte("b1")}, Credentials: Credentials{CommonName: "bob"}}
	c.wantErr(c.leader, byCert, rpctypes.ErrGRPCPermissionDenied)
}

// TestAuthBypassRoleRevoked: revoking a permission or a role applies to
// tokens already issued, and to a write admitted before the revocation
// but applied after it (the write check at apply, against the auth
// revision).
func TestAuthBypassRoleRevoked(t *testing.T) {
	for _, planted := range []bool{false, true} {
		c := newAuthCluster(t, TestingKnobs{SkipApplyAuthCheck: planted})
		root := c.token(c.leader, "root", "rootpw")
		alice := c.token(c.follower, "alice", "alicepw")
		c.wantErr(c.follower, putAs(alice, "a1"), nil)
		// The put is admitted at the current revision; the revocation,
		// started first, applies first.
		revoke := c.node(c.leader).Start(Request{AuthRequests: AuthRequests{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "ra"}},
			Credentials: Credentials{Token: root}})
		put := c.node(c.leader).Start(putAs(alice, "a2"))
		c.settle()
		if d := c.mustComplete(c.leader, revoke); d.Err != nil {
			t.Fatal(d.Err)
		}
		err := c.mustComplete(c.leader, put).Err
		if planted {
			if err != nil {
				t.Fatalf("planted: the put should bypass the revocation, got %v", err)
			}
			continue
		}
		if !errors.Is(err, rpctypes.ErrGRPCAuthOldRevision) {
			t.Fatalf("put admitted before the revocation: %v, want %v", err, rpctypes.ErrGRPCAuthOldRevision)
		}
		if _, found := c.get(c.leader, "a2"); found {
			t.Fatal("a write without permission was applied")
		}
		// After it, the held token has no permission left.
		c.wantErr(c.follower, putAs(alice, "a3"), rpctypes.ErrGRPCPermissionDenied)
		c.wantErr(c.follower, rangeAs(alice, "a1", "", false), rpctypes.ErrGRPCPermissionDenied)
		c.wantLocal(c.follower, rangeAs(alice, "a1", "", true), rpctypes.ErrGRPCPermissionDenied)
	}
}

// TestAuthBypassMixedTxn: a txn with one denied operation, in either
// branch or nested, or a compare on a denied key, is denied whole.
func TestAuthBypassMixedTxn(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	alice := c.token(c.leader, "alice", "alicepw")
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte("v")}}}
	}
	get := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
	}
	del := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}}
	}
	cmp := func(k string) *pb.Compare {
		return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 0}}
	}
	for _, tc := range []struct {
		name string
		txn  *pb.TxnRequest
		want error
	}{
		{"allowed", &pb.TxnRequest{Compare: []*pb.Compare{cmp("a0")}, Success: []*pb.RequestOp{put("a1")}, Failure: []*pb.RequestOp{get("a2")}}, nil},
		{"denied put in the branch not taken", &pb.TxnRequest{Success: []*pb.RequestOp{put("a1")}, Failure: []*pb.RequestOp{put("b1")}}, rpctypes.ErrGRPCPermissionDenied},
		{"denied delete", &pb.TxnRequest{Success: []*pb.RequestOp{put("a1"), del("b1")}}, rpctypes.ErrGRPCPermissionDenied},
		{"denied compare", &pb.TxnRequest{Compare: []*pb.Compare{cmp("b1")}, Success: []*pb.RequestOp{put("a1")}}, rpctypes.ErrGRPCPermissionDenied},
		{"denied read-only", &pb.TxnRequest{Success: []*pb.RequestOp{get("a1"), get("b1")}}, rpctypes.ErrGRPCPermissionDenied},
		{"denied nested", &pb.TxnRequest{Success: []*pb.RequestOp{put("a1"), {Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{put("b1")}}}}}}, rpctypes.ErrGRPCPermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.wantErr(c.leader, withToken(Request{Txn: tc.txn}, alice), tc.want)
		})
	}
	if _, found := c.get(c.leader, "b1"); found {
		t.Fatal("a denied txn wrote b1")
	}
}

// TestAuthBypassRangePastPermission: a range, delete or watch reaching
// one key past the permission is denied.
// wantStream starts a RangeStream on member id and requires err when its
// chunks are asked for (nil: the stream starts).
func (c *authCluster) wantStream(id uint64, req Request, want error) {
	c.t.Helper()
	rid := c.node(id).Start(req)
	c.settle()
	if _, err := c.mustComplete(id, rid).Stream(); !errors.Is(err, want) && !(want == nil && err == nil) {
		c.t.Fatalf("stream %+v: got %v, want %v", req, err, want)
	}
}

func TestAuthBypassRangePastPermission(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	alice := c.token(c.leader, "alice", "alicepw")
	for _, tc := range []struct {
		key, end string
		want     error
	}{
		{"a", "b", nil},
		{"a1", "a9", nil},
		{"a", "b\x00", rpctypes.ErrGRPCPermissionDenied},
		{"a", "\x00", rpctypes.ErrGRPCPermissionDenied},
		{"0", "a1", rpctypes.ErrGRPCPermissionDenied},
		{"b", "", rpctypes.ErrGRPCPermissionDenied},
	} {
		c.wantErr(c.leader, rangeAs(alice, tc.key, tc.end, false), tc.want)
		c.wantLocal(c.follower, rangeAs(alice, tc.key, tc.end, true), tc.want)
		c.wantErr(c.leader, withToken(Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(tc.key), RangeEnd: []byte(tc.end)}}, alice), tc.want)
		c.wantStream(c.leader, withToken(Request{RangeStream: &pb.RangeRequest{Key: []byte(tc.key), RangeEnd: []byte(tc.end)}}, alice), tc.want)
		if err := c.node(c.follower).CheckWatch(Credentials{Token: alice}, []byte(tc.key), []byte(tc.end)); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Fatalf("watch [%q, %q): %v, want %v", tc.key, tc.end, err, tc.want)
		}
	}
}

// TestAuthBypassLeaseOfAnotherUser: revoking, or attaching a key to, a
// lease that holds another user's key is denied.
func TestAuthBypassLeaseOfAnotherUser(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	alice := c.token(c.leader, "alice", "alicepw")
	bob := c.token(c.leader, "bob", "bobpw")
	resp, err := c.serve(c.leader, withToken(Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 60}}, bob))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.(*pb.LeaseGrantResponse).GetID()
	c.wantErr(c.leader, withToken(Request{Put: &pb.PutRequest{Key: []byte("b1"), Lease: id}}, bob), nil)
	c.wantErr(c.leader, withToken(Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}, alice), rpctypes.ErrGRPCPermissionDenied)
	c.wantErr(c.leader, withToken(Request{Put: &pb.PutRequest{Key: []byte("a1"), Lease: id}}, alice), rpctypes.ErrGRPCPermissionDenied)
	c.wantErr(c.leader, withToken(Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: id}}, alice), rpctypes.ErrGRPCPermissionDenied)
	c.wantErr(c.leader, withToken(Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: id, Keys: true}}, alice), rpctypes.ErrGRPCPermissionDenied)
	if _, found := c.get(c.leader, "b1"); !found {
		t.Fatal("bob's key went with a denied revoke")
	}
	c.wantErr(c.leader, withToken(Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}, bob), nil)
}

// TestAuthBypassAdminByNonRoot: compaction, member, alarm and auth
// management requests need the root role.
func TestAuthBypassAdminByNonRoot(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	alice := c.token(c.leader, "alice", "alicepw")
	root := c.token(c.leader, "root", "rootpw")
	for _, req := range []Request{
		{Compaction: &pb.CompactionRequest{Revision: 1}},
		{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:9"}}},
		{MemberRemove: &pb.MemberRemoveRequest{ID: c.follower}},
		{MoveLeader: &pb.MoveLeaderRequest{TargetID: c.follower}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: c.leader, Alarm: pb.AlarmType_NOSPACE}},
		{AuthRequests: AuthRequests{AuthUserAdd: &pb.AuthUserAddRequest{Name: "eve", HashedPassword: bcryptHash(t, "e")}}},
		{AuthRequests: AuthRequests{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "root"}}},
		{AuthRequests: AuthRequests{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "ra",
			Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("b")}}}},
		{AuthRequests: AuthRequests{AuthDisable: &pb.AuthDisableRequest{}}},
		{AuthRequests: AuthRequests{AuthUserList: &pb.AuthUserListRequest{}}},
		{AuthRequests: AuthRequests{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}},
		{AuthRequests: AuthRequests{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "rb"}}},
	} {
		c.wantErr(c.follower, withToken(req, alice), rpctypes.ErrGRPCPermissionDenied)
	}
	if err := c.node(c.leader).CheckAdmin(Credentials{Token: alice}); !errors.Is(err, rpctypes.ErrGRPCPermissionDenied) {
		t.Fatalf("maintenance by alice: %v", err)
	}
	if err := c.node(c.leader).CheckAdmin(Credentials{CommonName: "mallory"}); !errors.Is(err, rpctypes.ErrGRPCUserNotFound) {
		t.Fatalf("maintenance by an unknown certificate name: %v", err)
	}
	// A user may read itself and its own roles; root may do it all.
	c.wantErr(c.follower, withToken(Request{AuthRequests: AuthRequests{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}}, alice), nil)
	c.wantErr(c.follower, withToken(Request{AuthRequests: AuthRequests{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "ra"}}}, alice), nil)
	c.wantErr(c.follower, withToken(Request{AuthRequests: AuthRequests{AuthStatus: &pb.AuthStatusRequest{}}}, alice), nil)
	c.wantErr(c.leader, putAs(root, "z"), nil)
	c.wantErr(c.follower, withToken(Request{Compaction: &pb.CompactionRequest{Revision: 1}}, root), nil)
	if err := c.node(c.leader).CheckAdmin(Credentials{Token: root}); err != nil {
		t.Fatalf("maintenance by root: %v", err)
	}
	// The certificate's name is the user.
	c.wantErr(c.leader, Request{Put: &pb.PutRequest{Key: []byte("a1")}, Credentials: Credentials{CommonName: "alice"}}, nil)
	c.wantErr(c.leader, Request{Put: &pb.PutRequest{Key: []byte("b1")}, Credentials: Credentials{CommonName: "alice"}}, rpctypes.ErrGRPCPermissionDenied)
}

// TestAuthDisableDropsTokens: disabling auth drops every token; requests
// without credentials pass again.
func TestAuthDisableDropsTokens(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	root := c.token(c.leader, "root", "rootpw")
	c.wantErr(c.leader, withToken(Request{AuthRequests: AuthRequests{AuthDisable: &pb.AuthDisableRequest{}}}, root), nil)
	c.wantErr(c.leader, putAs("", "z"), nil)
	c.wantErr(c.leader, withToken(Request{AuthRequests: AuthRequests{AuthEnable: &pb.AuthEnableRequest{}}}, ""), nil)
	c.wantErr(c.leader, putAs(root, "z"), rpctypes.ErrGRPCInvalidAuthToken)
}

// TestAuthMemberRequestsRunAsRoot: a lease the leader expires is revoked
// with auth enabled (the member's own requests run as root).
func TestAuthMemberRequestsRunAsRoot(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	bob := c.token(c.leader, "bob", "bobpw")
	resp, err := c.serve(c.leader, withToken(Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}}, bob))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.(*pb.LeaseGrantResponse).GetID()
	c.wantErr(c.leader, withToken(Request{Put: &pb.PutRequest{Key: []byte("b1"), Lease: id}}, bob), nil)
	for range 200 {
		c.tick()
		if _, found := c.get(c.leader, "b1"); !found {
			return
		}
	}
	t.Fatal("the expired lease's key is still there")
}

// TestAuthWriteAdmittedBeforeEnable: a write admitted while auth is not
// enabled yet on its member, and applied after the enable, is checked as
// its certificate's user; one without credentials is refused, as in etcd.
func TestAuthWriteAdmittedBeforeEnable(t *testing.T) {
	c := newAuthCluster(t, TestingKnobs{})
	root := c.token(c.leader, "root", "rootpw")
	c.wantErr(c.leader, withToken(Request{AuthRequests: AuthRequests{AuthDisable: &pb.AuthDisableRequest{}}}, root), nil)
	enable := c.node(c.leader).Start(Request{AuthRequests: AuthRequests{AuthEnable: &pb.AuthEnableRequest{}}})
	byCert := c.node(c.leader).Start(Request{Put: &pb.PutRequest{Key: []byte("a1")}, Credentials: Credentials{CommonName: "alice"}})
	denied := c.node(c.leader).Start(Request{Put: &pb.PutRequest{Key: []byte("b1")}, Credentials: Credentials{CommonName: "alice"}})
	anonymous := c.node(c.leader).Start(Request{Put: &pb.PutRequest{Key: []byte("a2")}})
	c.settle()
	for _, tc := range []struct {
		id   uint64
		want error
	}{{enable, nil}, {byCert, nil}, {denied, rpctypes.ErrGRPCPermissionDenied}, {anonymous, rpctypes.ErrGRPCUserEmpty}} {
		if err := c.mustComplete(c.leader, tc.id).Err; !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Fatalf("request %x: %v, want %v", tc.id, err, tc.want)
		}
	}
}
