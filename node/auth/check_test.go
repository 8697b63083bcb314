package auth

import (
	"encoding/base64"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
)

// enabledFixture has root, alice (read on [a, b)) and nopw (no password),
// with auth enabled.
func enabledFixture(t *testing.T) *fixture {
	f := newFixture(t)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hashed := base64.StdEncoding.EncodeToString(h)
	for _, ir := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: hashed}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: hashed}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "nopw", Options: &authpb.UserAddOptions{NoPassword: true}}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{PermType: authpb.READ, Key: []byte("a"), RangeEnd: []byte("b")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		f.must(ir)
	}
	return f
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) && !(got == nil && want == nil) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func TestCheckOp(t *testing.T) {
	f := enabledFixture(t)
	rev := f.s.Revision()
	alice := Info{User: "alice", Revision: rev}
	wantErr(t, "read in", f.s.CheckOp(alice, []byte("a1"), nil, authpb.READ), nil)
	wantErr(t, "write in", f.s.CheckOp(alice, []byte("a1"), nil, authpb.WRITE), rpctypes.ErrGRPCPermissionDenied)
	wantErr(t, "read past", f.s.CheckOp(alice, []byte("a"), []byte("c"), authpb.READ), rpctypes.ErrGRPCPermissionDenied)
	wantErr(t, "no user", f.s.CheckOp(Info{}, []byte("a1"), nil, authpb.READ), rpctypes.ErrGRPCUserEmpty)
	wantErr(t, "stale", f.s.CheckOp(Info{User: "alice", Revision: rev - 1}, []byte("a1"), nil, authpb.READ), rpctypes.ErrGRPCAuthOldRevision)
	wantErr(t, "unknown user", f.s.CheckOp(Info{User: "eve", Revision: rev}, []byte("a1"), nil, authpb.READ), rpctypes.ErrGRPCPermissionDenied)
	wantErr(t, "root, every key", f.s.CheckOp(Info{User: "root", Revision: rev}, nil, []byte{0}, authpb.WRITE), nil)
	wantErr(t, "everything from the start", f.s.CheckOp(alice, nil, []byte{0}, authpb.READ), rpctypes.ErrGRPCPermissionDenied)
	f.must(&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	wantErr(t, "disabled", f.s.CheckOp(Info{}, []byte("z"), nil, authpb.WRITE), nil)
}

func TestCheckAdminAndManagement(t *testing.T) {
	f := enabledFixture(t)
	rev := f.s.Revision()
	alice, root := Info{User: "alice", Revision: rev}, Info{User: "root", Revision: rev}
	wantErr(t, "root", f.s.CheckAdmin(root), nil)
	wantErr(t, "alice", f.s.CheckAdmin(alice), rpctypes.ErrGRPCPermissionDenied)
	wantErr(t, "nobody", f.s.CheckAdmin(Info{}), rpctypes.ErrGRPCUserEmpty)
	wantErr(t, "unknown", f.s.CheckAdmin(Info{User: "eve", Revision: rev}), rpctypes.ErrGRPCUserNotFound)
	for _, tc := range []struct {
		what string
		ir   *pb.InternalRaftRequest
		want error
	}{
		{"own user", &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}, nil},
		{"other user", &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "root"}}, rpctypes.ErrGRPCPermissionDenied},
		{"own role", &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}, nil},
		{"other role", &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}, rpctypes.ErrGRPCPermissionDenied},
		{"status", &pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}, nil},
		{"user list", &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}, rpctypes.ErrGRPCPermissionDenied},
		{"role add", &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "x"}}, rpctypes.ErrGRPCPermissionDenied},
		{"disable", &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}}, rpctypes.ErrGRPCPermissionDenied},
	} {
		wantErr(t, tc.what, f.s.CheckManagement(alice, tc.ir), tc.want)
		wantErr(t, tc.what+" by root", f.s.CheckManagement(root, tc.ir), nil)
	}
}

func TestCheckPasswordAndAuthenticate(t *testing.T) {
	f := enabledFixture(t)
	rev, err := f.s.CheckPassword("alice", "pw")
	if err != nil || rev != f.s.Revision() {
		t.Fatalf("right password: %d %v", rev, err)
	}
	_, err = f.s.CheckPassword("alice", "wrong")
	wantErr(t, "wrong password", err, rpctypes.ErrGRPCAuthFailed)
	_, err = f.s.CheckPassword("eve", "pw")
	wantErr(t, "unknown user", err, rpctypes.ErrGRPCAuthFailed)
	_, err = f.s.CheckPassword("nopw", "")
	wantErr(t, "no-password user", err, ErrNoPasswordUser)
	wantErr(t, "authenticate", f.s.CheckAuthenticate("alice", rev), nil)
	wantErr(t, "stale check", f.s.CheckAuthenticate("alice", rev-1), rpctypes.ErrGRPCAuthOldRevision)
	wantErr(t, "no-password user", f.s.CheckAuthenticate("nopw", rev), rpctypes.ErrGRPCAuthFailed)
	f.must(&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	_, err = f.s.CheckPassword("alice", "pw")
	wantErr(t, "disabled", err, rpctypes.ErrGRPCAuthNotEnabled)
	wantErr(t, "disabled", f.s.CheckAuthenticate("alice", f.s.Revision()), rpctypes.ErrGRPCAuthNotEnabled)
}

func TestCloneIsIndependent(t *testing.T) {
	f := enabledFixture(t)
	c := f.s.Clone()
	f.must(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "r"}})
	if !c.Permitted("alice", []byte("a1"), nil, authpb.READ) || f.s.Permitted("alice", []byte("a1"), nil, authpb.READ) {
		t.Fatal("a change to the store reached its clone, or did not apply")
	}
	if c.Revision() == f.s.Revision() {
		t.Fatal("the clone's revision moved")
	}
}
