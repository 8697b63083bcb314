//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// authCall is one request to the Auth service through its raw gRPC stub,
// so requests etcdctl never sends (an empty name, no permission, a
// client-chosen hash) are covered too.
type authCall struct {
	name string
	call func(ctx context.Context, c pb.AuthClient) (proto.Message, error)
}

func authOp[Req any, Resp proto.Message](name string, f func(pb.AuthClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) authCall {
	return authCall{name: name, call: func(ctx context.Context, c pb.AuthClient) (proto.Message, error) {
		return f(c, ctx, req)
	}}
}

func perm(typ authpb.Permission_Type, key, end string) *authpb.Permission {
	return &authpb.Permission{PermType: typ, Key: []byte(key), RangeEnd: []byte(end)}
}

var authCalls = []authCall{
	authOp("status", pb.AuthClient.AuthStatus, &pb.AuthStatusRequest{}),
	authOp("enable without root", pb.AuthClient.AuthEnable, &pb.AuthEnableRequest{}),
	authOp("disable while disabled", pb.AuthClient.AuthDisable, &pb.AuthDisableRequest{}),
	authOp("user add empty", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{}),
	authOp("user add", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{Name: "u1", Password: "p"}),
	authOp("user add with a client's hash", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{Name: "u2", HashedPassword: "not base64 %%"}),
	authOp("user add no password", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{Name: "u3", Options: &authpb.UserAddOptions{NoPassword: true}}),
	authOp("user add again", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{Name: "u1", Password: "q"}),
	authOp("change password with a bad hash", pb.AuthClient.UserChangePassword, &pb.AuthUserChangePasswordRequest{Name: "u1", HashedPassword: "%%"}),
	authOp("change password of a no-password user", pb.AuthClient.UserChangePassword, &pb.AuthUserChangePasswordRequest{Name: "u3", HashedPassword: "%%"}),
	authOp("change password", pb.AuthClient.UserChangePassword, &pb.AuthUserChangePasswordRequest{Name: "u1", Password: "p2"}),
	authOp("user list", pb.AuthClient.UserList, &pb.AuthUserListRequest{}),
	authOp("role add empty", pb.AuthClient.RoleAdd, &pb.AuthRoleAddRequest{}),
	authOp("role add", pb.AuthClient.RoleAdd, &pb.AuthRoleAddRequest{Name: "r"}),
	authOp("grant no permission", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r"}),
	authOp("grant empty key", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READ, "", "")}),
	authOp("grant reversed range", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READ, "b", "a")}),
	authOp("grant equal bounds", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READ, "b", "b")}),
	authOp("grant from key", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.WRITE, "m", "\x00")}),
	authOp("grant range", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READ, "a", "c")}),
	authOp("grant same key, other end", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READ, "a", "b")}),
	authOp("grant same key, other end, again", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READWRITE, "a", "b")}),
	authOp("grant key", pb.AuthClient.RoleGrantPermission, &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: perm(authpb.READWRITE, "k", "")}),
	authOp("role get", pb.AuthClient.RoleGet, &pb.AuthRoleGetRequest{Role: "r"}),
	authOp("revoke with the wrong end", pb.AuthClient.RoleRevokePermission, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("m")}),
	authOp("revoke", pb.AuthClient.RoleRevokePermission, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("m"), RangeEnd: []byte{0}}),
	authOp("grant root to a user", pb.AuthClient.UserGrantRole, &pb.AuthUserGrantRoleRequest{User: "u1", Role: "root"}),
	authOp("grant r", pb.AuthClient.UserGrantRole, &pb.AuthUserGrantRoleRequest{User: "u1", Role: "r"}),
	authOp("user get", pb.AuthClient.UserGet, &pb.AuthUserGetRequest{Name: "u1"}),
	authOp("role get root before it exists", pb.AuthClient.RoleGet, &pb.AuthRoleGetRequest{Role: "root"}),
	authOp("role delete r", pb.AuthClient.RoleDelete, &pb.AuthRoleDeleteRequest{Role: "r"}),
	authOp("user get after the role went", pb.AuthClient.UserGet, &pb.AuthUserGetRequest{Name: "u1"}),
	authOp("user add root", pb.AuthClient.UserAdd, &pb.AuthUserAddRequest{Name: "root", Password: "r"}),
	authOp("enable without the root role", pb.AuthClient.AuthEnable, &pb.AuthEnableRequest{}),
	authOp("grant root root", pb.AuthClient.UserGrantRole, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}),
	authOp("role list", pb.AuthClient.RoleList, &pb.AuthRoleListRequest{}),
	authOp("enable", pb.AuthClient.AuthEnable, &pb.AuthEnableRequest{}),
	authOp("status enabled", pb.AuthClient.AuthStatus, &pb.AuthStatusRequest{}),
}

// TestAuthClientDifferential sends the same Auth requests to a fresh etcd
// and a fresh subject and requires the same responses (headers' ids
// aside) and the same errors, code and message.
func TestAuthClientDifferential(t *testing.T) {
	subject := subjectKind(t)
	ref := StartMember(t, KindEtcd, "--bcrypt-cost=4")
	sub := StartMember(t, subject, "--bcrypt-cost=4")
	refAuth, subAuth := ref.authClient(), sub.authClient()
	for i, c := range authCalls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		want := authOutcome(c.call(ctx, refAuth))
		got := authOutcome(c.call(ctx, subAuth))
		cancel()
		if !sameOutcome(want, got) {
			t.Errorf("call %d (%s): %s differs from etcd\n etcd: %v\n %s: %v", i, c.name, subject, want, subject, got)
		}
	}
}

func authOutcome(resp proto.Message, err error) diffOutcome {
	if err != nil {
		st := status.Convert(err)
		return diffOutcome{code: st.Code().String(), msg: st.Message()}
	}
	return diffOutcome{resp: normalizeHeaders(resp)}
}

func (m *Member) authClient() pb.AuthClient {
	m.t.Helper()
	conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatalf("grpc.NewClient(%s): %v", m.Endpoint(), err)
	}
	m.t.Cleanup(func() { conn.Close() })
	return pb.NewAuthClient(conn)
}
