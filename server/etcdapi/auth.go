package etcdapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
func (s *Auth) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return serveAuth[*pb.AuthEnableResponse](ctx, s, node.AuthRequests{AuthEnable: r})
}

// authenticateAttemptsMax bounds how often Authenticate checks a password
// again because the auth state changed between the check and the token's
// issue ("revision of auth store is old"); etcd retries without a bound.
const authenticateAttemptsMax = 8

// Authenticate implements etcdserverpb.AuthServer: the core checks the
// password on this goroutine (bcrypt is costly) against its published auth
// state, then issues a token through raft if that state is unchanged; if it
// changed, the password is checked again, as etcd does.
func (s *Auth) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	var err error
	for range authenticateAttemptsMax {
		var req node.Request
		if req, err = s.d.Node().PrepareAuthenticate(r); err != nil {
			if !errors.Is(err, rpctypes.ErrGRPCAuthNotEnabled) {
				s.logger.Warn("invalid authentication was requested", "user", r.GetName(), "error", err)
			}
			return nil, err
		}
		var resp *pb.AuthenticateResponse
		resp, err = serve[*pb.AuthenticateResponse](ctx, s.d, req)
		if !errors.Is(err, rpctypes.ErrGRPCAuthOldRevision) {
			return resp, err
		}
	}
	return nil, err
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
