//go:build e2e

package e2e

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// authTokenTTLSeconds is the members' --auth-token-ttl in these tests:
// short, so the expired-token row waits only a few seconds.
const authTokenTTLSeconds = 3

// authStubs are raw gRPC stubs on one connection, so every response and
// error is seen as the server sent it.
type authStubs struct {
	kv          pb.KVClient
	auth        pb.AuthClient
	lease       pb.LeaseClient
	cluster     pb.ClusterClient
	maintenance pb.MaintenanceClient
	watch       pb.WatchClient
}

func dialStubs(t *testing.T, endpoint string) authStubs {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", endpoint, err)
	}
	t.Cleanup(func() { conn.Close() })
	return authStubs{kv: pb.NewKVClient(conn), auth: pb.NewAuthClient(conn), lease: pb.NewLeaseClient(conn),
		cluster: pb.NewClusterClient(conn), maintenance: pb.NewMaintenanceClient(conn), watch: pb.NewWatchClient(conn)}
}

// as is ctx carrying token as etcd's client sends it.
func as(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, token)
}

// authFixture is one member with auth enabled: root, alice (read-write on
// [a, b)) and bob (read-write on [b, c)).
type authFixture struct {
	t     *testing.T
	m     *Member
	s     authStubs
	alice string
}

func newAuthFixture(t *testing.T, kind Kind) *authFixture {
	t.Helper()
	m := StartMember(t, kind, "--bcrypt-cost=4", "--auth-token-ttl="+strconv.Itoa(authTokenTTLSeconds))
	f := &authFixture{t: t, m: m, s: dialStubs(t, m.Endpoint())}
	ctx := ctxTimeout(t, 30*time.Second)
	a := f.s.auth
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: "rootpw"}))
	must(a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}))
	for _, u := range []struct{ name, role, key, end string }{{"alice", "ra", "a", "b"}, {"bob", "rb", "b", "c"}} {
		must(a.UserAdd(ctx, &pb.AuthUserAddRequest{Name: u.name, Password: u.name + "pw"}))
		must(a.RoleAdd(ctx, &pb.AuthRoleAddRequest{Name: u.role}))
		must(a.RoleGrantPermission(ctx, &pb.AuthRoleGrantPermissionRequest{Name: u.role, Perm: &authpb.Permission{
			PermType: authpb.READWRITE, Key: []byte(u.key), RangeEnd: []byte(u.end)}}))
		must(a.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: u.name, Role: u.role}))
	}
	must(a.AuthEnable(ctx, &pb.AuthEnableRequest{}))
	f.alice = f.token("alice")
	return f
}

func (f *authFixture) token(user string) string {
	f.t.Helper()
	resp, err := f.s.auth.Authenticate(ctxTimeout(f.t, 10*time.Second), &pb.AuthenticateRequest{Name: user, Password: user + "pw"})
	if err != nil {
		f.t.Fatalf("authenticate %s: %v", user, err)
	}
	return resp.GetToken()
}

// outcome is a call's result as compared across systems: "ok", or the
// gRPC code and message.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	st := status.Convert(err)
	return st.Code().String() + ": " + st.Message()
}

// bypassRow is one attempt of the bypass table (docs/security.md).
type bypassRow struct {
	name string
	call func(ctx context.Context, f *authFixture) error
}

func put(key string) *pb.PutRequest { return &pb.PutRequest{Key: []byte(key), Value: []byte("v")} }

func opPut(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: put(key)}}
}

// watchCreate opens a watch stream and returns the answer to one create.
func watchCreate(ctx context.Context, f *authFixture, token, key, end string) error {
	ctx, cancel := context.WithCancel(as(ctx, token))
	defer cancel()
	stream, err := f.s.watch.Watch(ctx)
	if err != nil {
		return err
	}
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
	if err := stream.Send(req); err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	if resp.GetCanceled() {
		return errors.New("watch canceled: " + resp.GetCancelReason())
	}
	return nil
}

var bypassRows = []bypassRow{
	{"wrong password", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "nope"})
		return err
	}},
	{"unknown user", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "mallory", Password: "x"})
		return err
	}},
	{"no token: put", func(ctx context.Context, f *authFixture) error { _, err := f.s.kv.Put(ctx, put("a1")); return err }},
	{"no token: range", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a1")})
		return err
	}},
	{"no token: serializable range", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("a1"), Serializable: true})
		return err
	}},
	{"no token: watch", func(ctx context.Context, f *authFixture) error { return watchCreate(ctx, f, "", "a", "") }},
	{"no token: lease grant", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
		return err
	}},
	{"no token: status", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.maintenance.Status(ctx, &pb.StatusRequest{})
		return err
	}},
	{"forged token", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Put(as(ctx, "abcdefghijklmnop.1"), put("a1"))
		return err
	}},
	{"forged token: range", func(ctx context.Context, f *authFixture) error {
		// A forged token naming a raft index already applied: etcd waits
		// for the index of a token it does not know before it refuses it.
		_, err := f.s.kv.Range(as(ctx, "abcdefghijklmnop.2"), &pb.RangeRequest{Key: []byte("a1"), Serializable: true})
		return err
	}},
	{"own key", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Put(as(ctx, f.alice), put("a1"))
		return err
	}},
	{"another user's key", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Put(as(ctx, f.alice), put("b1"))
		return err
	}},
	{"range within the permission", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Range(as(ctx, f.alice), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b")})
		return err
	}},
	{"range past the permission", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Range(as(ctx, f.alice), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b\x00")})
		return err
	}},
	{"from-key range", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Range(as(ctx, f.alice), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Serializable: true})
		return err
	}},
	{"delete past the permission", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.DeleteRange(as(ctx, f.alice), &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
		return err
	}},
	{"watch past the permission", func(ctx context.Context, f *authFixture) error { return watchCreate(ctx, f, f.alice, "a", "c") }},
	{"watch within the permission", func(ctx context.Context, f *authFixture) error { return watchCreate(ctx, f, f.alice, "a", "b") }},
	{"txn mixing allowed and denied", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Txn(as(ctx, f.alice), &pb.TxnRequest{Success: []*pb.RequestOp{opPut("a2")}, Failure: []*pb.RequestOp{opPut("b2")}})
		return err
	}},
	{"txn comparing a denied key", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Txn(as(ctx, f.alice), &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("b1"), Target: pb.Compare_VERSION,
			TargetUnion: &pb.Compare_Version{Version: 0}}},
			Success: []*pb.RequestOp{opPut("a2")}})
		return err
	}},
	{"lease revoke of another user's keys", func(ctx context.Context, f *authFixture) error {
		bob := f.token("bob")
		l, err := f.s.lease.LeaseGrant(as(ctx, bob), &pb.LeaseGrantRequest{TTL: 60})
		if err != nil {
			return err
		}
		if _, err := f.s.kv.Put(as(ctx, bob), &pb.PutRequest{Key: []byte("b3"), Lease: l.GetID()}); err != nil {
			return err
		}
		_, err = f.s.lease.LeaseRevoke(as(ctx, f.alice), &pb.LeaseRevokeRequest{ID: l.GetID()})
		return err
	}},
	{"compaction by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.kv.Compact(as(ctx, f.alice), &pb.CompactionRequest{Revision: 1})
		return err
	}},
	{"member add by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.cluster.MemberAdd(as(ctx, f.alice), &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:9"}})
		return err
	}},
	{"defragment by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.maintenance.Defragment(as(ctx, f.alice), &pb.DefragmentRequest{})
		return err
	}},
	{"hashkv by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.maintenance.HashKV(as(ctx, f.alice), &pb.HashKVRequest{})
		return err
	}},
	{"alarm disarm by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.maintenance.Alarm(as(ctx, f.alice), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE})
		return err
	}},
	{"user add by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.UserAdd(as(ctx, f.alice), &pb.AuthUserAddRequest{Name: "eve", Password: "e"})
		return err
	}},
	{"grant itself root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.UserGrantRole(as(ctx, f.alice), &pb.AuthUserGrantRoleRequest{User: "alice", Role: "root"})
		return err
	}},
	{"get another user", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.UserGet(as(ctx, f.alice), &pb.AuthUserGetRequest{Name: "bob"})
		return err
	}},
	{"get itself", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.auth.UserGet(as(ctx, f.alice), &pb.AuthUserGetRequest{Name: "alice"})
		return err
	}},
	{"status by non-root", func(ctx context.Context, f *authFixture) error {
		_, err := f.s.maintenance.Status(as(ctx, f.alice), &pb.StatusRequest{})
		return err
	}},
	{"role revoked while holding a token", func(ctx context.Context, f *authFixture) error {
		if _, err := f.s.auth.UserRevokeRole(as(ctx, f.token("root")), &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "ra"}); err != nil {
			return err
		}
		_, err := f.s.kv.Put(as(ctx, f.alice), put("a1"))
		return err
	}},
	{"deleted user's token", func(ctx context.Context, f *authFixture) error {
		bob := f.token("bob")
		if _, err := f.s.auth.UserDelete(as(ctx, f.token("root")), &pb.AuthUserDeleteRequest{Name: "bob"}); err != nil {
			return err
		}
		_, err := f.s.kv.Put(as(ctx, bob), put("b1"))
		return err
	}},
	{"expired token", func(ctx context.Context, f *authFixture) error {
		idle, used := f.token("root"), f.token("root")
		// Keep one token in use while the other ages past the TTL (etcd
		// checks expiry every second): the one in use stays valid.
		for range 2*authTokenTTLSeconds + 2 {
			time.Sleep(time.Second)
			if _, err := f.s.kv.Range(as(ctx, used), &pb.RangeRequest{Key: []byte("a")}); err != nil {
				return err
			}
		}
		_, err := f.s.kv.Put(as(ctx, idle), put("a1"))
		return err
	}},
}

// TestAuthBypassTable runs the bypass table (docs/security.md) against
// etcd and cairn, in order on one member each, and requires the same
// outcome for every row, code and message; it also pins the outcome
// expected of a few rows, so that both cannot agree on a hole.
func TestAuthBypassTable(t *testing.T) {
	subject := subjectKind(t)
	ref, sub := newAuthFixture(t, KindEtcd), newAuthFixture(t, subject)
	want := map[string]string{
		"no token: put":                       "InvalidArgument: etcdserver: user name is empty",
		"forged token":                        "Unauthenticated: etcdserver: invalid auth token",
		"wrong password":                      "InvalidArgument: etcdserver: authentication failed, invalid user ID or password",
		"another user's key":                  "PermissionDenied: etcdserver: permission denied",
		"txn mixing allowed and denied":       "PermissionDenied: etcdserver: permission denied",
		"lease revoke of another user's keys": "PermissionDenied: etcdserver: permission denied",
		"compaction by non-root":              "PermissionDenied: etcdserver: permission denied",
		"role revoked while holding a token":  "PermissionDenied: etcdserver: permission denied",
		"deleted user's token":                "Unauthenticated: etcdserver: invalid auth token",
		"expired token":                       "Unauthenticated: etcdserver: invalid auth token",
		"own key":                             "ok",
	}
	for _, row := range bypassRows {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got, expected := outcome(row.call(ctx, sub)), outcome(row.call(ctx, ref))
		cancel()
		if got != expected {
			t.Errorf("%s: %s %q, etcd %q", row.name, subject, got, expected)
		}
		if w, ok := want[row.name]; ok && got != w {
			t.Errorf("%s: got %q, want %q", row.name, got, w)
		}
	}
}

// TestAuthPeerPortReachedByClient: the peer port serves no KV, and the
// requests it serves for forwarding (lease, member) pass the core's checks
// like any other: without a token they are refused.
func TestAuthPeerPortReachedByClient(t *testing.T) {
	f := newAuthFixture(t, KindCairn)
	peer := dialStubs(t, strings.TrimPrefix(f.m.PeerURL, "http://"))
	ctx := ctxTimeout(t, 30*time.Second)
	if _, err := peer.kv.Put(ctx, put("a1")); status.Code(err) != codes.Unimplemented {
		t.Errorf("put on the peer port: %v, want Unimplemented", err)
	}
	if _, err := peer.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60}); outcome(err) != outcome(rpctypes.ErrGRPCUserEmpty) {
		t.Errorf("lease grant on the peer port: %v", err)
	}
	if _, err := peer.cluster.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:9"}}); outcome(err) != outcome(rpctypes.ErrGRPCUserEmpty) {
		t.Errorf("member add on the peer port: %v", err)
	}
	if _, err := peer.cluster.MemberAdd(as(ctx, f.alice), &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:9"}}); outcome(err) != outcome(rpctypes.ErrGRPCPermissionDenied) {
		t.Errorf("member add by alice on the peer port: %v", err)
	}
}

// TestAuthOfficialClient: the official client's Username/Password work,
// and it authenticates again by itself when its token is gone (the member
// restarted) or stale.
func TestAuthOfficialClient(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		f := newAuthFixture(t, kind)
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{f.m.ClientURL}, Username: "alice", Password: "alicepw",
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := ctxTimeout(t, 60*time.Second)
		if _, err := c.Put(ctx, "a1", "v1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "b1", "v1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("put outside the permission: %v", err)
		}
		// The member forgets its tokens when it restarts.
		f.m.Kill()
		f.m.Start()
		resp, err := c.Get(ctx, "a1")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
			t.Fatalf("get after a restart: %v %v", resp, err)
		}
		root, err := clientv3.New(clientv3.Config{Endpoints: []string{f.m.ClientURL}, Username: "root", Password: "rootpw",
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		if _, err := root.RoleGrantPermission(ctx, "ra", "b1", "", clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, "b1", "v2"); err != nil {
			t.Fatalf("put after the grant: %v", err)
		}
	})
}
