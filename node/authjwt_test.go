package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node/auth"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// jwtTTLForTest is the JWT TTL of the tests: a few dozen ticks.
const jwtTTLForTest = 3 * time.Second

// testJWT makes an EdDSA JWT from a key derived from seed, with both
// keys or, verifyOnly, the public key alone.
func testJWT(t *testing.T, seed byte, verifyOnly bool) *auth.JWT {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	privateDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	publicDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"priv": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privateDER}),
		"pub":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicDER}),
	}
	opts := "jwt,sign-method=EdDSA,pub-key=pub,ttl=" + jwtTTLForTest.String()
	if !verifyOnly {
		opts += ",priv-key=priv"
	}
	parsed, err := auth.ParseTokenOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	j, err := auth.NewJWT(parsed.Options, func(path string) ([]byte, error) {
		if b, ok := files[path]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// newJWTAuthCluster is newAuthCluster with JSON Web Tokens; member
// verifyOnly (0: none) has only the public key.
func newJWTAuthCluster(t *testing.T, verifyOnly uint64) *authCluster {
	t.Helper()
	return newAuthClusterWith(t, func(c *Config) { c.AuthJWT = testJWT(t, 1, c.ID == verifyOnly) })
}

// TestJWTAuthenticate: a JSON Web Token issued through one member names
// its user and the auth revision, and every member with the key accepts
// it, for writes, linearizable and serializable reads and watches.
func TestJWTAuthenticate(t *testing.T) {
	c := newJWTAuthCluster(t, 0)
	token := c.token(c.follower, "alice", "alicepw")
	if strings.Count(token, ".") != 2 {
		t.Fatalf("token %q is not a JWT", token)
	}
	info, ok := testJWT(t, 1, true).Verify(token, time.Unix(0, c.node(c.leader).authNowNanos.Load()))
	if !ok || info != (auth.Info{User: "alice", Revision: c.node(c.leader).AuthRevision()}) {
		t.Fatalf("claims %+v %v, want alice at revision %d", info, ok, c.node(c.leader).AuthRevision())
	}
	for _, id := range c.ids {
		c.wantErr(id, putAs(token, "a1"), nil)
		c.wantErr(id, rangeAs(token, "a1", "", false), nil)
		c.wantLocal(id, rangeAs(token, "a1", "", true), nil)
		c.wantErr(id, putAs(token, "b1"), rpctypes.ErrGRPCPermissionDenied)
		if err := c.node(id).CheckWatch(Credentials{Token: token}, []byte("a"), []byte("b")); err != nil {
			t.Fatalf("watch on %d: %v", id, err)
		}
	}
	// A token signed with another key, or a simple token, is refused.
	forged, err := testJWT(t, 2, false).Sign(auth.JWTClaims{User: "root", Revision: c.node(c.leader).AuthRevision(), ExpiresAtUnix: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{forged, "abcdefghijklmnop.12", token + "x"} {
		c.wantErr(c.leader, putAs(bad, "a1"), rpctypes.ErrGRPCInvalidAuthToken)
		c.wantLocal(c.follower, rangeAs(bad, "a1", "", true), rpctypes.ErrGRPCInvalidAuthToken)
	}
}

// TestJWTStaleRevision: a change of the auth state makes the tokens issued
// before it stale, on every request, as in etcd (simple tokens follow the
// change instead); a new token works; a deleted user's token is stale too.
func TestJWTStaleRevision(t *testing.T) {
	c := newJWTAuthCluster(t, 0)
	root := c.token(c.leader, "root", "rootpw")
	alice := c.token(c.follower, "alice", "alicepw")
	c.wantErr(c.leader, withToken(Request{AuthRequests: AuthRequests{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "unrelated"}}}, root), nil)
	for _, id := range c.ids {
		c.wantErr(id, putAs(alice, "a1"), rpctypes.ErrGRPCAuthOldRevision)
		c.wantErr(id, rangeAs(alice, "a1", "", false), rpctypes.ErrGRPCAuthOldRevision)
		c.wantLocal(id, rangeAs(alice, "a1", "", true), rpctypes.ErrGRPCAuthOldRevision)
		if err := c.node(id).CheckWatch(Credentials{Token: alice}, []byte("a"), nil); !errors.Is(err, rpctypes.ErrGRPCAuthOldRevision) {
			t.Fatalf("watch with a stale token on %d: %v", id, err)
		}
	}
	alice = c.token(c.follower, "alice", "alicepw")
	c.wantErr(c.leader, putAs(alice, "a1"), nil)
	root = c.token(c.leader, "root", "rootpw")
	c.wantErr(c.leader, withToken(Request{AuthRequests: AuthRequests{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "alice"}}}, root), nil)
	c.wantErr(c.follower, putAs(alice, "a1"), rpctypes.ErrGRPCAuthOldRevision)
	if _, err := c.node(c.follower).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "alice", Password: "alicepw"}); !errors.Is(err, rpctypes.ErrGRPCAuthFailed) {
		t.Fatalf("authenticate a deleted user: %v", err)
	}
}

// TestJWTWriteAdmittedBeforeRevocation: a write admitted with a token
// before a revocation, applied after it, is refused as stale.
func TestJWTWriteAdmittedBeforeRevocation(t *testing.T) {
	c := newJWTAuthCluster(t, 0)
	root := c.token(c.leader, "root", "rootpw")
	alice := c.token(c.follower, "alice", "alicepw")
	revoke := c.node(c.leader).Start(withToken(Request{AuthRequests: AuthRequests{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "ra"}}}, root))
	put := c.node(c.leader).Start(putAs(alice, "a2"))
	c.settle()
	if d := c.mustComplete(c.leader, revoke); d.Err != nil {
		t.Fatal(d.Err)
	}
	if err := c.mustComplete(c.leader, put).Err; !errors.Is(err, rpctypes.ErrGRPCAuthOldRevision) {
		t.Fatalf("put admitted before the revocation: %v", err)
	}
	if _, found := c.get(c.leader, "a2"); found {
		t.Fatal("a write without permission was applied")
	}
}

// TestJWTExpiry: a token expires at its exp by each member's clock,
// however often it is used (unlike a simple token).
func TestJWTExpiry(t *testing.T) {
	c := newJWTAuthCluster(t, 0)
	token := c.token(c.leader, "alice", "alicepw")
	ttlTicks := int(jwtTTLForTest / (100 * time.Millisecond))
	for range ttlTicks / 2 {
		c.tick()
	}
	c.wantErr(c.leader, putAs(token, "a1"), nil)
	for range ttlTicks + 10 {
		c.tick()
	}
	for _, id := range c.ids {
		c.wantErr(id, putAs(token, "a1"), rpctypes.ErrGRPCInvalidAuthToken)
		c.wantLocal(id, rangeAs(token, "a1", "", true), rpctypes.ErrGRPCInvalidAuthToken)
	}
	c.wantErr(c.leader, putAs(c.token(c.leader, "alice", "alicepw"), "a1"), nil)
}

// TestJWTVerifyOnlyMember: a member given only the public key refuses to
// issue a token, with etcd's error, and accepts those of the others.
func TestJWTVerifyOnlyMember(t *testing.T) {
	const verifyOnly = 3
	c := newJWTAuthCluster(t, verifyOnly)
	req, err := c.node(verifyOnly).PrepareAuthenticate(&pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.serve(verifyOnly, req); !errors.Is(err, auth.ErrGRPCVerifyOnly) {
		t.Fatalf("authenticate on a verify-only member: %v, want %v", err, auth.ErrGRPCVerifyOnly)
	}
	other := uint64(1)
	token := c.token(other, "alice", "alicepw")
	c.wantErr(verifyOnly, putAs(token, "a1"), nil)
	c.wantLocal(verifyOnly, rangeAs(token, "a1", "", true), nil)
}

// TestJWTIssuesNoSimpleToken: with JSON Web Tokens no member keeps a token
// table, and the Authenticate entry carries no random prefix.
func TestJWTIssuesNoSimpleToken(t *testing.T) {
	c := newJWTAuthCluster(t, 0)
	c.token(c.leader, "alice", "alicepw")
	for _, id := range c.ids {
		if n := c.node(id).tokens.Len(); n != 0 {
			t.Fatalf("member %d holds %d simple tokens", id, n)
		}
	}
	if p := c.node(c.leader).simpleTokenPrefix(); p != "" {
		t.Fatalf("prefix %q", p)
	}
}
