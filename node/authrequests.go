package node

import (
	"fmt"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// applyAuthenticate issues a token when an Authenticate entry at index
// applies, if the auth state is still the one its password was checked
// against. A simple token is registered by every member, and the member
// that proposed the entry answers. A JSON Web Token's claims are decided
// here, from the entry and the member's clock (every member decides
// them; the proposer's are the ones its client gets), and signed by
// Result on the caller's goroutine: the answer depends on nothing else,
// and signing costs the loop nothing.
func (n *Node) applyAuthenticate(w *mvcc.Writer, index uint64, req *pb.InternalRaftRequest, out *Output) {
	c := Completion{ID: req.GetHeader().GetID()}
	a := req.GetAuthenticate()
	if c.Err = n.authStore.CheckAuthenticate(a.GetName(), req.GetHeader().GetAuthRevision()); c.Err == nil {
		resp := &pb.AuthenticateResponse{Header: &pb.ResponseHeader{Revision: w.Rev()}}
		n.completeHeader(resp)
		c.Response = resp
		switch j := n.cfg.AuthJWT; {
		case j == nil:
			resp.Token = auth.SimpleToken(a.GetSimpleToken(), index)
			n.tokens = n.tokens.With(resp.Token, a.GetName(), n.now().UnixNano()+n.cfg.AuthTokenTTL.Nanoseconds())
			n.tokensChanged = true
		case !j.CanSign():
			c.Response, c.Err = nil, auth.ErrGRPCVerifyOnly
		default:
			c.jwt = &issuedJWT{signer: j, claims: j.ClaimsAt(a.GetName(), n.authStore.Revision(), n.now())}
		}
	}
	out.Done = append(out.Done, c)
}

// simpleTokenPrefix is the random part of the simple token an
// Authenticate will issue, drawn when it is proposed; none with JSON Web
// Tokens, as in etcd.
func (n *Node) simpleTokenPrefix() string {
	if n.cfg.AuthJWT != nil {
		return ""
	}
	return auth.TokenPrefix(n.cfg.Rand.Uint64)
}

// issuedJWT is a JSON Web Token the core issued, to be signed by
// Completion.Result.
type issuedJWT struct {
	signer *auth.JWT
	claims auth.JWTClaims
}

// sign returns resp with the signed token. A key that cannot sign with
// its method (an ECDSA key of another curve) fails as in etcd: the
// library's error, with gRPC code Unknown.
func (t *issuedJWT) sign(resp *pb.AuthenticateResponse) (*pb.AuthenticateResponse, error) {
	token, err := t.signer.Sign(t.claims)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &pb.AuthenticateResponse{Header: resp.GetHeader(), Token: token}, nil
}

// AuthEnabled reports whether auth is enabled, as of the last applied
// entry. Only the driver's loop may call it.
func (n *Node) AuthEnabled() bool { return n.authStore.Enabled() }

// AuthRevision is the auth revision as of the last applied entry. Only the
// driver's loop may call it.
func (n *Node) AuthRevision() uint64 { return n.authStore.Revision() }
