package node

import (
	"fmt"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// AuthRequests are the Auth service's requests as the core takes them;
// Request embeds them, and at most one field of a Request is set. Like
// etcd, every one of them, reads included, goes through raft and is
// answered when applied, so a member answers from the cluster's latest
// auth state. A password arrives already hashed (HashedPassword, base64
// of a bcrypt hash): hashing salts with randomness, which apply must not
// use.
type AuthRequests struct {
	AuthEnable               *pb.AuthEnableRequest
	AuthDisable              *pb.AuthDisableRequest
	AuthStatus               *pb.AuthStatusRequest
	AuthUserAdd              *pb.AuthUserAddRequest
	AuthUserDelete           *pb.AuthUserDeleteRequest
	AuthUserChangePassword   *pb.AuthUserChangePasswordRequest
	AuthUserGrantRole        *pb.AuthUserGrantRoleRequest
	AuthUserGet              *pb.AuthUserGetRequest
	AuthUserRevokeRole       *pb.AuthUserRevokeRoleRequest
	AuthUserList             *pb.AuthUserListRequest
	AuthRoleAdd              *pb.AuthRoleAddRequest
	AuthRoleDelete           *pb.AuthRoleDeleteRequest
	AuthRoleGet              *pb.AuthRoleGetRequest
	AuthRoleList             *pb.AuthRoleListRequest
	AuthRoleGrantPermission  *pb.AuthRoleGrantPermissionRequest
	AuthRoleRevokePermission *pb.AuthRoleRevokePermissionRequest
}

// addTo sets the auth request, if any, in the request raft replicates.
func (a AuthRequests) addTo(ir *pb.InternalRaftRequest) {
	ir.AuthEnable, ir.AuthDisable, ir.AuthStatus = a.AuthEnable, a.AuthDisable, a.AuthStatus
	ir.AuthUserAdd, ir.AuthUserDelete = a.AuthUserAdd, a.AuthUserDelete
	ir.AuthUserChangePassword, ir.AuthUserGrantRole = a.AuthUserChangePassword, a.AuthUserGrantRole
	ir.AuthUserGet, ir.AuthUserRevokeRole, ir.AuthUserList = a.AuthUserGet, a.AuthUserRevokeRole, a.AuthUserList
	ir.AuthRoleAdd, ir.AuthRoleDelete = a.AuthRoleAdd, a.AuthRoleDelete
	ir.AuthRoleGet, ir.AuthRoleList = a.AuthRoleGet, a.AuthRoleList
	ir.AuthRoleGrantPermission, ir.AuthRoleRevokePermission = a.AuthRoleGrantPermission, a.AuthRoleRevokePermission
}

// loadAuth reads the auth state of the live database.
func (n *Node) loadAuth() error {
	s, err := auth.Load(n.db)
	if err != nil {
		return fmt.Errorf("load auth state: %w", err)
	}
	n.authStore = s
	if n.tokens == nil {
		n.tokens = auth.NewTokens()
		n.authNowNanos.Store(n.now().UnixNano())
	}
	n.publishAuth(true)
	return nil
}

// applyAuth applies an auth request and records its completion. Its error
// is a failure of the member, not of the request.
func (n *Node) applyAuth(b *pebble.Batch, w *mvcc.Writer, req *pb.InternalRaftRequest, out *Output) error {
	c := Completion{ID: req.GetHeader().GetID()}
	info := auth.Info{User: req.GetHeader().GetUsername(), Revision: req.GetHeader().GetAuthRevision()}
	if c.Err = n.authStore.CheckManagement(info, req); c.Err != nil {
		out.Done = append(out.Done, c)
		return nil
	}
	var err error
	c.Response, c.Err, err = n.authStore.Apply(b, req, &pb.ResponseHeader{Revision: w.Rev()})
	if err != nil {
		return fmt.Errorf("apply auth request: %w", err)
	}
	if c.Err == nil {
		n.completeHeader(c.Response)
		n.authChanged = true
		if user, ok := auth.InvalidatesTokens(req); ok {
			n.tokens = n.tokens.WithoutUser(user)
		}
		if req.AuthDisable != nil {
			n.tokens = auth.NewTokens()
		}
	}
	out.Done = append(out.Done, c)
	return nil
}

// applyAuthenticate issues a simple token when an Authenticate entry at
// index applies, if the auth state is still the one its password was
// checked against; every member registers it, and the member that
// proposed it answers.
func (n *Node) applyAuthenticate(w *mvcc.Writer, index uint64, req *pb.InternalRaftRequest, out *Output) {
	c := Completion{ID: req.GetHeader().GetID()}
	a := req.GetAuthenticate()
	if c.Err = n.authStore.CheckAuthenticate(a.GetName(), req.GetHeader().GetAuthRevision()); c.Err == nil {
		token := auth.SimpleToken(a.GetSimpleToken(), index)
		n.tokens = n.tokens.With(token, a.GetName(), n.now().UnixNano()+n.cfg.AuthTokenTTL.Nanoseconds())
		n.tokensChanged = true
		resp := &pb.AuthenticateResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}, Token: token}
		n.completeHeader(resp)
		c.Response = resp
	}
	out.Done = append(out.Done, c)
}

// AuthEnabled reports whether auth is enabled, as of the last applied
// entry. Only the driver's loop may call it.
func (n *Node) AuthEnabled() bool { return n.authStore.Enabled() }

// AuthRevision is the auth revision as of the last applied entry. Only the
// driver's loop may call it.
func (n *Node) AuthRevision() uint64 { return n.authStore.Revision() }
