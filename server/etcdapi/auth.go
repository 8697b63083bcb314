package etcdapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

// Auth implements etcdserverpb.AuthServer by carrying each request to the
// core (node.AuthRequests), which applies it through raft. The one thing
// done here is hashing a new password with bcrypt, as etcd does before
// proposing: the hash is salted with randomness, which the core's apply
// must not draw, and it costs tens of milliseconds, which the driver's
// loop must not spend.
type Auth struct {
	pb.UnimplementedAuthServer
	d *driver.Driver
	// bcryptCost is --bcrypt-cost.
	bcryptCost int
	logger     *slog.Logger
}

// NewAuth returns the Auth service of the member d drives, hashing
// passwords at bcryptCost (bcrypt.MinCost to bcrypt.MaxCost).
func NewAuth(d *driver.Driver, bcryptCost int, logger *slog.Logger) *Auth {
	return &Auth{d: d, bcryptCost: bcryptCost, logger: logger}
}

// ValidateBcryptCost checks a --bcrypt-cost value as etcd does.
func ValidateBcryptCost(cost int) error {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return fmt.Errorf("invalid bcrypt-cost: %d is outside [%d, %d]", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

func (s *Auth) hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.bcryptCost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

func serveAuth[R any](ctx context.Context, s *Auth, req node.AuthRequests) (R, error) {
	return serve[R](ctx, s.d, node.Request{AuthRequests: req})
}

// AuthEnable implements etcdserverpb.AuthServer.
// Permissions are not enforced yet: the operator is told, every time.
func (s *Auth) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	resp, err := serveAuth[*pb.AuthEnableResponse](ctx, s, node.AuthRequests{AuthEnable: r})
	if err == nil {
		s.logger.Warn("auth enabled, but cairn does not check tokens or permissions yet: every client may still read and write everything (docs/security.md)")
	}
	return resp, err
}

// AuthDisable implements etcdserverpb.AuthServer.
func (s *Auth) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return serveAuth[*pb.AuthDisableResponse](ctx, s, node.AuthRequests{AuthDisable: r})
}

// AuthStatus implements etcdserverpb.AuthServer.
func (s *Auth) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return serveAuth[*pb.AuthStatusResponse](ctx, s, node.AuthRequests{AuthStatus: r})
}

// UserAdd implements etcdserverpb.AuthServer. Unless the user has no
// password, the password is replaced by its hash before it is proposed.
func (s *Auth) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if !r.GetOptions().GetNoPassword() {
		h, err := s.hash(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return serveAuth[*pb.AuthUserAddResponse](ctx, s, node.AuthRequests{AuthUserAdd: r})
}

// UserDelete implements etcdserverpb.AuthServer.
func (s *Auth) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return serveAuth[*pb.AuthUserDeleteResponse](ctx, s, node.AuthRequests{AuthUserDelete: r})
}

// UserChangePassword implements etcdserverpb.AuthServer. A password given
// in clear is replaced by its hash before it is proposed.
func (s *Auth) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	if r.Password != "" {
		h, err := s.hash(r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return serveAuth[*pb.AuthUserChangePasswordResponse](ctx, s, node.AuthRequests{AuthUserChangePassword: r})
}

// UserGrantRole implements etcdserverpb.AuthServer.
func (s *Auth) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return serveAuth[*pb.AuthUserGrantRoleResponse](ctx, s, node.AuthRequests{AuthUserGrantRole: r})
}

// UserGet implements etcdserverpb.AuthServer.
func (s *Auth) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return serveAuth[*pb.AuthUserGetResponse](ctx, s, node.AuthRequests{AuthUserGet: r})
}

// UserList implements etcdserverpb.AuthServer.
func (s *Auth) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return serveAuth[*pb.AuthUserListResponse](ctx, s, node.AuthRequests{AuthUserList: r})
}

// UserRevokeRole implements etcdserverpb.AuthServer.
func (s *Auth) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return serveAuth[*pb.AuthUserRevokeRoleResponse](ctx, s, node.AuthRequests{AuthUserRevokeRole: r})
}

// RoleAdd implements etcdserverpb.AuthServer.
func (s *Auth) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return serveAuth[*pb.AuthRoleAddResponse](ctx, s, node.AuthRequests{AuthRoleAdd: r})
}

// RoleDelete implements etcdserverpb.AuthServer.
func (s *Auth) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return serveAuth[*pb.AuthRoleDeleteResponse](ctx, s, node.AuthRequests{AuthRoleDelete: r})
}

// RoleGet implements etcdserverpb.AuthServer.
func (s *Auth) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return serveAuth[*pb.AuthRoleGetResponse](ctx, s, node.AuthRequests{AuthRoleGet: r})
}

// RoleList implements etcdserverpb.AuthServer.
func (s *Auth) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return serveAuth[*pb.AuthRoleListResponse](ctx, s, node.AuthRequests{AuthRoleList: r})
}

// RoleGrantPermission implements etcdserverpb.AuthServer.
func (s *Auth) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return serveAuth[*pb.AuthRoleGrantPermissionResponse](ctx, s, node.AuthRequests{AuthRoleGrantPermission: r})
}

// RoleRevokePermission implements etcdserverpb.AuthServer.
func (s *Auth) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return serveAuth[*pb.AuthRoleRevokePermissionResponse](ctx, s, node.AuthRequests{AuthRoleRevokePermission: r})
}
