//go:build e2e

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// jwtKeyFiles are an RSA key pair in PEM files, and a public key of
// another pair.
type jwtKeyFiles struct {
	private, public, otherPublic, junk string
}

func writeJWTKeys(t *testing.T) jwtKeyFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	publicDER := func(k *rsa.PrivateKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return jwtKeyFiles{
		private:     write("key.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(keys[0])),
		public:      write("key.pub.pem", "PUBLIC KEY", publicDER(keys[0])),
		otherPublic: write("other.pub.pem", "PUBLIC KEY", publicDER(keys[1])),
		junk:        junk,
	}
}

// jwtStartTimeout bounds the wait for a member refusing its --auth-token
// to exit.
const jwtStartTimeout = 20 * time.Second

// TestJWTBadOptionsRefused: a bad --auth-token stops etcd and cairn at
// start, with the same error. etcd exits with status 1 once it has
// created its data directory; cairn with status 2 before, as for every
// bad flag.
func TestJWTBadOptionsRefused(t *testing.T) {
	keys := writeJWTKeys(t)
	cases := []struct{ opts, wantErr string }{
		{"jwt", "auth: invalid auth options"},
		{"jwt,sign-method=RS256,priv-key", "auth: invalid auth options"},
		{"jwt,sign-method=XS256,priv-key=" + keys.private, "auth: invalid auth options"},
		{"jwt,sign-method=RS256,priv-key=/nonexistent.pem", "auth: invalid auth options"},
		{"jwt,sign-method=RS256,priv-key=" + keys.private + ",ttl=later", "auth: invalid auth options"},
		{"jwt,sign-method=RS256", "auth: missing key data"},
		{"jwt,sign-method=HS256,pub-key=" + keys.public, "auth: missing key data"},
		{"jwt,sign-method=RS256,priv-key=" + keys.private + ",pub-key=" + keys.otherPublic, "auth: public and private keys don't match"},
		{"jwt,sign-method=RS256,priv-key=" + keys.junk, "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key"},
		{"jwt,sign-method=ES256,priv-key=" + keys.private, "x509: failed to parse private key"},
		{"bearer", "auth: invalid auth options"},
	}
	for _, kind := range []Kind{KindEtcd, subjectKind(t)} {
		for _, tc := range cases {
			m := newStoppedMember(t, kind, "--auth-token", tc.opts)
			m.Launch()
			exited, err := m.WaitExit(jwtStartTimeout)
			if !exited || err == nil {
				m.Kill()
				t.Errorf("%s with --auth-token %s: exited %v, %v; want a refusal", kind, tc.opts, exited, err)
				continue
			}
			m.proc = nil
			if log := m.LogTail(logTailLines); !strings.Contains(log, tc.wantErr) {
				t.Errorf("%s with --auth-token %s: log lacks %q:\n%s", kind, tc.opts, tc.wantErr, log)
			}
		}
	}
}

// newStoppedMember is StartMember without the start.
func newStoppedMember(t *testing.T, kind Kind, extra ...string) *Member {
	t.Helper()
	dir := t.TempDir()
	m := &Member{t: t, Kind: kind, Bin: requireBin(t, binEnv[kind]), Name: "m0", DataDir: filepath.Join(dir, "data"),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		Extra: extra, LogPath: filepath.Join(dir, string(kind)+".stderr.log")}
	t.Cleanup(m.Kill)
	return m
}

// jwtTTL is the tokens' ttl in the tests: long enough for a few steps,
// short enough to wait out.
const jwtTTL = 3 * time.Second

// setUpJWTAuth adds root and alice (read-write on app/), and enables auth.
func setUpJWTAuth(t *testing.T, m *Member) {
	t.Helper()
	c := m.Client()
	ctx := ctxTimeout(t, 20*time.Second)
	steps := []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := c.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "app", "app/", clientv3.GetPrefixRangeEnd("app/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserGrantRole(ctx, "alice", "app"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("set-up step %d: %v", i, err)
		}
	}
}

// authenticate returns a token from the raw Auth service.
func authenticate(t *testing.T, m *Member, user, password string) (string, error) {
	t.Helper()
	resp, err := m.authClient().Authenticate(ctxTimeout(t, 10*time.Second), &pb.AuthenticateRequest{Name: user, Password: password})
	return resp.GetToken(), err
}

// putWithToken puts through the raw KV stub with token, so the client
// library does not authenticate again.
func putWithToken(t *testing.T, m *Member, token, key string) error {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 10*time.Second), rpctypes.TokenFieldNameGRPC, token)
	_, err := m.KV().Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("v")})
	return err
}

// errText is an error as a client sees it: gRPC code and message.
func errText(err error) string {
	if err == nil {
		return "ok"
	}
	st := status.Convert(err)
	return st.Code().String() + ": " + st.Message()
}

// TestJWTTokens: with --auth-token jwt, etcd and cairn issue tokens of the
// same shape and claims, etcdctl gives the same output, they refuse a stale
// token and an expired one with the same errors, and the official client
// authenticates again after either;
// a member with only the public key refuses to issue a token with etcd's
// error and accepts the tokens of one with the private key.
func TestJWTTokens(t *testing.T) {
	ctlBin := requireBin(t, "ETCDCTL_BIN")
	keys := writeJWTKeys(t)
	signing := fmt.Sprintf("jwt,sign-method=RS256,priv-key=%s,pub-key=%s,ttl=%s", keys.private, keys.public, jwtTTL)
	verifying := fmt.Sprintf("jwt,sign-method=RS256,pub-key=%s,ttl=%s", keys.public, jwtTTL)
	outcomes := map[Kind][]string{}
	kinds := []Kind{KindEtcd, subjectKind(t)}
	for _, kind := range kinds {
		m := StartMember(t, kind, "--bcrypt-cost=4", "--auth-token", signing)
		setUpJWTAuth(t, m)
		var got []string
		record := func(what string, err error) { got = append(got, what+": "+errText(err)) }

		token, err := authenticate(t, m, "alice", "alicepw")
		record("authenticate", err)
		got = append(got, "claims: "+jwtClaimsShape(t, token, jwtTTL))
		record("put with the token", putWithToken(t, m, token, "app/1"))
		record("put outside the permission", putWithToken(t, m, token, "other"))
		for _, args := range [][]string{
			{"--user", "alice:alicepw", "put", "app/ctl", "v"},
			{"--user", "alice:alicepw", "get", "app/ctl"},
			{"--user", "alice:alicepw", "put", "other", "v"},
			{"--user", "alice:wrong", "get", "app/ctl"},
			{"--user", "root:rootpw", "auth", "status"},
		} {
			got = append(got, fmt.Sprintf("etcdctl %q: %+v", args, normalizeCtl(runCtl(t, ctlBin, m, "", args...))))
		}

		// The official client, holding a token, across a change of the auth
		// state and across the token's expiry.
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, Username: "alice", Password: "alicepw",
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		_, err = cli.Put(ctxTimeout(t, 10*time.Second), "app/client", "1")
		record("client put", err)
		rootCli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, Username: "root", Password: "rootpw",
			DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rootCli.Close() })
		_, err = rootCli.RoleAdd(ctxTimeout(t, 10*time.Second), "unrelated")
		record("role add", err)
		record("put with the stale token", putWithToken(t, m, token, "app/1"))
		_, err = cli.Put(ctxTimeout(t, 10*time.Second), "app/client", "2")
		record("client put after the change", err)
		time.Sleep(jwtTTL + time.Second)
		fresh, err := authenticate(t, m, "alice", "alicepw")
		record("authenticate again", err)
		time.Sleep(jwtTTL + time.Second)
		record("put with the expired token", putWithToken(t, m, fresh, "app/1"))
		_, err = cli.Put(ctxTimeout(t, 10*time.Second), "app/client", "3")
		record("client put after the expiry", err)

		// A member with only the public key, with the same users, verifies
		// the tokens of the signing member and cannot sign. (Its auth
		// revision is lower: a token of a later revision is not stale.)
		v := StartMember(t, kind, "--bcrypt-cost=4", "--auth-token", verifying)
		setUpJWTAuth(t, v)
		_, err = authenticate(t, v, "alice", "alicepw")
		record("authenticate on a verify-only member", err)
		issued, err := authenticate(t, m, "alice", "alicepw")
		record("authenticate on the signing member", err)
		record("put on the verify-only member", putWithToken(t, v, issued, "app/v"))
		outcomes[kind] = got
	}
	want, got := outcomes[KindEtcd], outcomes[kinds[1]]
	for _, line := range want {
		t.Logf("etcd: %s", line)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s differs from etcd:\n etcd: %q\n %s: %q", kinds[1], want, kinds[1], got)
	}
	for _, line := range []string{
		"put with the stale token: " + errText(rpctypes.ErrGRPCAuthOldRevision),
		"put with the expired token: " + errText(rpctypes.ErrGRPCInvalidAuthToken),
	} {
		if !slices.Contains(want, line) {
			t.Errorf("harness check: etcd's outcomes lack %q", line)
		}
	}
}

// jwtClaimsShape describes a token: its header, its claims' names, and
// whether exp is about ttl from now, with the values that differ between
// systems (the signature, the time) left out.
func jwtClaimsShape(t *testing.T, token string, ttl time.Duration) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Sprintf("not a JWT: %q", token)
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range claims {
		names = append(names, name)
	}
	slices.Sort(names)
	exp, _ := claims["exp"].(float64)
	left := time.Until(time.Unix(int64(exp), 0))
	return fmt.Sprintf("header %s claims %v username %v revision %v exp in ttl %v", header, names, claims["username"], claims["revision"],
		left > ttl-2*time.Second && left <= ttl)
}
