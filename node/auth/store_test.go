package auth

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// fixture applies requests to a store backed by an in-memory Pebble.
type fixture struct {
	t  *testing.T
	db *pebble.DB
	s  *Store
}

func newFixture(t *testing.T) *fixture {
	db, err := pebble.Open("auth", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Load(db)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: db, s: s}
}

// apply applies ir in one committed batch, as the node does.
func (f *fixture) apply(ir *pb.InternalRaftRequest) (proto.Message, error) {
	f.t.Helper()
	b := f.db.NewBatch()
	defer b.Close()
	resp, reqErr, err := f.s.Apply(b, ir, &pb.ResponseHeader{Revision: 7})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		f.t.Fatal(err)
	}
	return resp, reqErr
}

// must applies ir, which must succeed.
func (f *fixture) must(ir *pb.InternalRaftRequest) proto.Message {
	f.t.Helper()
	resp, err := f.apply(ir)
	if err != nil {
		f.t.Fatalf("%v: %v", ir, err)
	}
	return resp
}

// fails applies ir, which must fail with want and leave the revision.
func (f *fixture) fails(ir *pb.InternalRaftRequest, want error) {
	f.t.Helper()
	rev := f.s.Revision()
	if _, err := f.apply(ir); !errors.Is(err, want) {
		f.t.Fatalf("%v: got error %v, want %v", ir, err, want)
	}
	if f.s.Revision() != rev {
		f.t.Fatalf("%v: failed, yet moved the revision from %d to %d", ir, rev, f.s.Revision())
	}
}

func hashed(password string) string {
	return base64.StdEncoding.EncodeToString([]byte("h:" + password))
}

func userAdd(name string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: name, HashedPassword: hashed(name)}}
}
func grantRole(user, role string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: user, Role: role}}
}
func roleAdd(name string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: name}}
}
func grantPerm(role, key, end string, typ authpb.Permission_Type) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: role,
		Perm: &authpb.Permission{Key: []byte(key), RangeEnd: []byte(end), PermType: typ}}}
}
func authStatus(f *fixture) *pb.AuthStatusResponse {
	return f.must(&pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}).(*pb.AuthStatusResponse)
}

var (
	enable  = &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}
	disable = &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}}
)

func TestEnableNeedsRootWithRootRole(t *testing.T) {
	f := newFixture(t)
	if st := authStatus(f); st.Enabled || st.AuthRevision != 1 {
		t.Fatalf("new store: %v, want disabled at revision 1", st)
	}
	f.fails(enable, rpctypes.ErrGRPCRootUserNotExist)
	f.must(userAdd("root"))
	f.fails(enable, rpctypes.ErrGRPCRootRoleNotExist)
	f.must(grantRole("root", "root")) // the root role needs no RoleAdd
	f.must(enable)
	// Enabling does not move the revision; a second enable is a no-op.
	if st := authStatus(f); !st.Enabled || st.AuthRevision != 3 {
		t.Fatalf("after enable: %v, want enabled at revision 3", st)
	}
	f.must(enable)
	// While enabled, root and its role are protected.
	f.fails(&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}}, rpctypes.ErrGRPCInvalidAuthMgmt)
	f.fails(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}}, rpctypes.ErrGRPCInvalidAuthMgmt)
	f.fails(&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}}, rpctypes.ErrGRPCInvalidAuthMgmt)
	f.must(disable)
	if st := authStatus(f); st.Enabled || st.AuthRevision != 4 {
		t.Fatalf("after disable: %v, want disabled at revision 4", st)
	}
	f.must(disable) // disabled already: nothing changes
	if st := authStatus(f); st.AuthRevision != 4 {
		t.Fatalf("second disable moved the revision to %d", st.AuthRevision)
	}
	// Disabled, root may lose its role and go.
	f.must(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}})
	f.must(&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}})
}

func TestUserAndRoleErrors(t *testing.T) {
	f := newFixture(t)
	f.fails(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{}}, rpctypes.ErrGRPCUserEmpty)
	f.must(userAdd("alice"))
	f.fails(userAdd("alice"), rpctypes.ErrGRPCUserAlreadyExist)
	f.fails(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bad", HashedPassword: "%%%"}}, ErrNoPasswordUser)
	f.fails(grantRole("bob", "r"), rpctypes.ErrGRPCUserNotFound)
	f.fails(grantRole("alice", "r"), rpctypes.ErrGRPCRoleNotFound)
	f.fails(roleAdd(""), rpctypes.ErrGRPCRoleEmpty)
	f.must(roleAdd("r"))
	f.fails(roleAdd("r"), rpctypes.ErrGRPCRoleAlreadyExist)
	f.must(grantRole("alice", "r"))
	rev := f.s.Revision()
	f.must(grantRole("alice", "r")) // granted already: success, no change
	if f.s.Revision() != rev {
		t.Fatalf("a repeated grant moved the revision")
	}
	f.fails(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "x"}}, rpctypes.ErrGRPCRoleNotGranted)
	f.fails(&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}, rpctypes.ErrGRPCUserNotFound)
	f.fails(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "x"}}, rpctypes.ErrGRPCRoleNotFound)
	f.fails(&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "x"}}, rpctypes.ErrGRPCRoleNotFound)
	f.fails(&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "bob"}}, rpctypes.ErrGRPCUserNotFound)
	f.fails(&pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "bob"}}, rpctypes.ErrGRPCUserNotFound)
	f.fails(&pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r"}}, rpctypes.ErrGRPCPermissionNotGiven)
	f.fails(grantPerm("x", "a", "", authpb.READ), rpctypes.ErrGRPCRoleNotFound)
	f.fails(grantPerm("r", "", "", authpb.READ), rpctypes.ErrGRPCInvalidAuthMgmt)
	f.fails(grantPerm("r", "b", "a", authpb.READ), rpctypes.ErrGRPCInvalidAuthMgmt)
	f.fails(&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("a")}}, rpctypes.ErrGRPCPermissionNotGranted)
	f.fails(&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "x", Key: []byte("a")}}, rpctypes.ErrGRPCRoleNotFound)
}

func TestPermissionsSortedAndUpdated(t *testing.T) {
	f := newFixture(t)
	f.must(roleAdd("r"))
	f.must(grantPerm("r", "m", "n", authpb.READ))
	f.must(grantPerm("r", "a", "\x00", authpb.WRITE))
	f.must(grantPerm("r", "m", "n", authpb.READWRITE)) // same range: its type changes
	got := f.must(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}).(*pb.AuthRoleGetResponse).Perm
	want := []*authpb.Permission{
		{Key: []byte("a"), RangeEnd: []byte{0}, PermType: authpb.WRITE},
		{Key: []byte("m"), RangeEnd: []byte("n"), PermType: authpb.READWRITE},
	}
	if len(got) != len(want) || !proto.Equal(got[0], want[0]) || !proto.Equal(got[1], want[1]) {
		t.Fatalf("permissions %v, want %v", got, want)
	}
	f.must(&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("a"), RangeEnd: []byte{0}}})
	got = f.must(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}).(*pb.AuthRoleGetResponse).Perm
	if len(got) != 1 || string(got[0].Key) != "m" {
		t.Fatalf("after revoke: %v", got)
	}
	// The root role reports read-write on every key.
	f.must(roleAdd("root"))
	got = f.must(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}).(*pb.AuthRoleGetResponse).Perm
	if len(got) != 1 || !proto.Equal(got[0], rootPermission()) {
		t.Fatalf("root role: %v", got)
	}
}

func TestRoleDeleteTakesItFromUsers(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"carol", "alice", "bob"} {
		f.must(userAdd(name))
	}
	f.must(roleAdd("r"))
	f.must(roleAdd("s"))
	f.must(grantRole("alice", "s"))
	f.must(grantRole("alice", "r"))
	f.must(grantRole("bob", "r"))
	f.must(&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r"}})
	roles := f.must(&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}).(*pb.AuthUserGetResponse).Roles
	if !slices.Equal(roles, []string{"s"}) {
		t.Fatalf("alice's roles %v, want [s]", roles)
	}
	users := f.must(&pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}).(*pb.AuthUserListResponse).Users
	if !slices.Equal(users, []string{"alice", "bob", "carol"}) {
		t.Fatalf("users %v, want sorted", users)
	}
}

// TestLoadRestoresWhatApplyWrote checks that the stored state, read back,
// is the state in memory.
func TestLoadRestoresWhatApplyWrote(t *testing.T) {
	f := newFixture(t)
	f.must(userAdd("root"))
	f.must(grantRole("root", "root"))
	f.must(userAdd("alice"))
	f.must(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "nopass", Options: &authpb.UserAddOptions{NoPassword: true}}})
	f.must(roleAdd("r"))
	f.must(grantPerm("r", "a", "b", authpb.READ))
	f.must(grantRole("alice", "r"))
	f.must(&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "nopass"}})
	f.must(enable)
	loaded, err := Load(f.db)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.enabled != f.s.enabled || loaded.revision != f.s.revision {
		t.Fatalf("loaded enabled=%v revision=%d, in memory %v %d", loaded.enabled, loaded.revision, f.s.enabled, f.s.revision)
	}
	if len(loaded.users) != len(f.s.users) || len(loaded.roles) != len(f.s.roles) {
		t.Fatalf("loaded %d users %d roles, in memory %d %d", len(loaded.users), len(loaded.roles), len(f.s.users), len(f.s.roles))
	}
	for name, u := range f.s.users {
		if !proto.Equal(loaded.users[name], u) {
			t.Fatalf("user %s loaded as %v, in memory %v", name, loaded.users[name], u)
		}
	}
	for name, r := range f.s.roles {
		if !proto.Equal(loaded.roles[name], r) {
			t.Fatalf("role %s loaded as %v, in memory %v", name, loaded.roles[name], r)
		}
	}
}
