package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKeyFiles are key files by path, for NewJWT's readFile.
type testKeyFiles map[string][]byte

func (f testKeyFiles) read(path string) ([]byte, error) {
	b, ok := f[path]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

var (
	rsaKeysOnce sync.Once
	rsaKeys     [2]*rsa.PrivateKey
)

// testRSAKey is one of two RSA keys made once per test binary (2048
// bits: making one takes a while).
func testRSAKey(i int) *rsa.PrivateKey {
	rsaKeysOnce.Do(func() {
		for k := range rsaKeys {
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[k] = key
		}
	})
	return rsaKeys[i]
}

func pemOf(t testing.TB, typ string, der []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// testKeyPairs are the pairs testKeyPair made, by method and variant.
var testKeyPairs sync.Map

// testKeyPair returns a key pair for method, as PEM files (for HS*, the
// secret twice): the same for the same variant, different for another.
func testKeyPair(t testing.TB, method string, variant int) (private, public []byte) {
	t.Helper()
	key := fmt.Sprintf("%s/%d", method, variant)
	if pair, ok := testKeyPairs.Load(key); ok {
		p := pair.([2][]byte)
		return p[0], p[1]
	}
	private, public = makeKeyPair(t, method, variant)
	testKeyPairs.Store(key, [2][]byte{private, public})
	return private, public
}

func makeKeyPair(t testing.TB, method string, variant int) (private, public []byte) {
	t.Helper()
	var signer crypto.Signer
	switch {
	case strings.HasPrefix(method, "HS"):
		secret := fmt.Appendf(nil, "secret %d of %s", variant, method)
		return secret, secret
	case strings.HasPrefix(method, "RS"), strings.HasPrefix(method, "PS"):
		signer = testRSAKey(variant % 2)
	case strings.HasPrefix(method, "ES"):
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[method]
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
	case method == "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
	default:
		t.Fatalf("no test keys for %s", method)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	private = pemOf(t, "PRIVATE KEY", der, err)
	der, err = x509.MarshalPKIXPublicKey(signer.Public())
	return private, pemOf(t, "PUBLIC KEY", der, err)
}

// newTestJWT builds a JWT from options, with files holding the keys of
// method under "priv" and "pub".
func newTestJWT(t *testing.T, method string, variant int, opts string) *JWT {
	t.Helper()
	private, public := testKeyPair(t, method, variant)
	parsed, err := ParseTokenOptions("jwt,sign-method=" + method + opts)
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJWT(parsed.Options, testKeyFiles{"priv": private, "pub": public}.read)
	if err != nil {
		t.Fatalf("%s%s: %v", method, opts, err)
	}
	return j
}

func TestParseTokenOptions(t *testing.T) {
	got, err := ParseTokenOptions("jwt,sign-method=RS256,ttl=1m,colour=blue")
	if err != nil || got.Kind != TokenKindJWT || got.Options["sign-method"] != "RS256" || got.Options["ttl"] != "1m" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if unknown := got.UnknownJWTOptions(); len(unknown) != 1 || unknown[0] != "colour" {
		t.Fatalf("unknown options %v", unknown)
	}
	if got, err := ParseTokenOptions("simple"); err != nil || got.Kind != TokenKindSimple || len(got.Options) != 0 {
		t.Fatalf("simple: %+v, %v", got, err)
	}
	for _, bad := range []string{"jwt,sign-method", "jwt,a=b=c", "jwt,ttl=1m,ttl=2m", "jwt,", "simple,x"} {
		if _, err := ParseTokenOptions(bad); !errors.Is(err, ErrInvalidAuthOpts) {
			t.Errorf("%q: %v, want %v", bad, err, ErrInvalidAuthOpts)
		}
	}
}

// TestNewJWTErrors pins etcd's error for each kind of bad option or key.
func TestNewJWTErrors(t *testing.T) {
	rsaPrivate, rsaPublic := testKeyPair(t, "RS256", 0)
	_, otherRSAPublic := testKeyPair(t, "RS256", 1)
	ecPrivate, _ := testKeyPair(t, "ES256", 0)
	edPrivate, edPublic := testKeyPair(t, "EdDSA", 0)
	_, otherEdPublic := testKeyPair(t, "EdDSA", 1)
	files := testKeyFiles{"rsa": rsaPrivate, "rsa.pub": rsaPublic, "other.pub": otherRSAPublic, "ec": ecPrivate,
		"ed": edPrivate, "ed.pub": edPublic, "other-ed.pub": otherEdPublic, "junk": []byte("not a key")}
	for _, tc := range []struct {
		opts string
		want string
	}{
		{"", ErrInvalidAuthOpts.Error()},
		{"sign-method=XX256,priv-key=rsa", ErrInvalidAuthOpts.Error()},
		{"sign-method=RS256,priv-key=rsa,ttl=soon", ErrInvalidAuthOpts.Error()},
		{"sign-method=RS256,priv-key=missing", ErrInvalidAuthOpts.Error()},
		{"sign-method=RS256,pub-key=missing,priv-key=rsa", ErrInvalidAuthOpts.Error()},
		{"sign-method=RS256", ErrMissingKey.Error()},
		{"sign-method=HS256,pub-key=rsa.pub", ErrMissingKey.Error()},
		{"sign-method=EdDSA", ErrMissingKey.Error()},
		{"sign-method=RS256,priv-key=rsa,pub-key=other.pub", ErrKeyMismatch.Error()},
		{"sign-method=EdDSA,priv-key=ed,pub-key=other-ed.pub", ErrKeyMismatch.Error()},
		{"sign-method=RS256,priv-key=junk", jwt.ErrKeyMustBePEMEncoded.Error()},
		{"sign-method=ES256,priv-key=rsa", jwt.ErrNotECPrivateKey.Error()},
		{"sign-method=RS256,priv-key=ec", jwt.ErrNotRSAPrivateKey.Error()},
		{"sign-method=none,priv-key=rsa", "unsupported signing method: *jwt.signingMethodNone"},
	} {
		parsed, err := ParseTokenOptions("jwt," + tc.opts)
		if tc.opts == "" {
			parsed, err = ParseTokenOptions("jwt")
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewJWT(parsed.Options, files.read); err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// allMethods are the sign-methods etcd 3.7.3 accepts for JWT.
var allMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "EdDSA"}

// TestJWTSignVerify: a token verifies on a member with the same keys or
// only the public key, until its exp, and nowhere else; a member with only
// a public key cannot sign.
func TestJWTSignVerify(t *testing.T) {
	issued := time.Unix(1_700_000_000, 0)
	for _, method := range allMethods {
		t.Run(method, func(t *testing.T) {
			signer := newTestJWT(t, method, 0, ",priv-key=priv,ttl=10s")
			if !signer.CanSign() || signer.Method() != method || signer.TTL() != 10*time.Second {
				t.Fatalf("signer: can sign %v, method %s, ttl %v", signer.CanSign(), signer.Method(), signer.TTL())
			}
			claims := signer.ClaimsAt("alice", 7, issued)
			token, err := signer.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			verifiers := []*JWT{signer, newTestJWT(t, method, 0, ",priv-key=priv,pub-key=pub")}
			if method[:2] != "HS" {
				verifyOnly := newTestJWT(t, method, 0, ",pub-key=pub")
				if verifyOnly.CanSign() {
					t.Fatal("a member with only a public key can sign")
				}
				verifiers = append(verifiers, verifyOnly)
			}
			for i, v := range verifiers {
				if info, ok := v.Verify(token, issued.Add(9*time.Second)); !ok || info != (Info{User: "alice", Revision: 7}) {
					t.Fatalf("verifier %d: %+v %v", i, info, ok)
				}
				if _, ok := v.Verify(token, issued.Add(10*time.Second)); ok {
					t.Fatalf("verifier %d accepts the token at its exp", i)
				}
			}
			if _, ok := newTestJWT(t, method, 1, ",priv-key=priv").Verify(token, issued); ok {
				t.Fatal("a member with other keys accepts the token")
			}
		})
	}
}

// TestJWTVerifyRefusesForgeries: a token with a changed payload, signed
// by another method, unsigned, or without etcd's claims is refused.
func TestJWTVerifyRefusesForgeries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rs := newTestJWT(t, "RS256", 0, ",priv-key=priv")
	hs := newTestJWT(t, "HS256", 0, ",priv-key=priv")
	token, err := rs.Sign(rs.ClaimsAt("alice", 3, now))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1800000000,"revision":3,"username":"root"}`))
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"username": "root", "revision": 3}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	noRevision, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": "root"}).SignedString(hs.signingKey)
	if err != nil {
		t.Fatal(err)
	}
	numericUser, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": 1, "revision": 3}).SignedString(hs.signingKey)
	if err != nil {
		t.Fatal(err)
	}
	hsToken, err := hs.Sign(hs.ClaimsAt("alice", 3, now))
	if err != nil {
		t.Fatal(err)
	}
	for name, forged := range map[string]string{
		"changed payload": parts[0] + "." + payload + "." + parts[2],
		"unsigned":        unsigned,
		"truncated":       token[:len(token)-2],
		"simple token":    "abcdefghijklmnop.3",
	} {
		if info, ok := rs.Verify(forged, now); ok {
			t.Errorf("%s: accepted as %+v", name, info)
		}
	}
	if _, ok := rs.Verify(hsToken, now); ok {
		t.Error("an RS256 member accepts an HS256 token")
	}
	for name, forged := range map[string]string{"no revision": noRevision, "numeric user": numericUser} {
		if info, ok := hs.Verify(forged, now); ok {
			t.Errorf("%s: accepted as %+v", name, info)
		}
	}
	// A token without exp never expires, as in etcd.
	noExp, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": "bob", "revision": 4}).SignedString(hs.signingKey)
	if err != nil {
		t.Fatal(err)
	}
	if info, ok := hs.Verify(noExp, now.Add(1000*time.Hour)); !ok || info.User != "bob" {
		t.Errorf("a token without exp: %+v %v", info, ok)
	}
}

// TestJWTTokenShape: the header and claims are etcd's, and the
// deterministic methods sign the same claims the same way.
func TestJWTTokenShape(t *testing.T) {
	issued := time.Unix(1_700_000_000, 0)
	for _, method := range []string{"RS256", "HS256", "EdDSA"} {
		j := newTestJWT(t, method, 0, ",priv-key=priv,ttl=5m")
		c := j.ClaimsAt("alice", 12, issued)
		a, errA := j.Sign(c)
		b, errB := j.Sign(c)
		if errA != nil || errB != nil || a != b {
			t.Fatalf("%s: signed twice: %q %v, %q %v", method, a, errA, b, errB)
		}
		parts := strings.Split(a, ".")
		if len(parts) != 3 {
			t.Fatalf("%s: token %q", method, a)
		}
		var header map[string]any
		decodeSegment(t, parts[0], &header)
		if len(header) != 2 || header["alg"] != method || header["typ"] != "JWT" {
			t.Errorf("%s: header %v", method, header)
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"exp":%d,"revision":12,"username":"alice"}`, issued.Add(5*time.Minute).Unix())
		if string(payload) != want {
			t.Errorf("%s: payload %s, want %s", method, payload, want)
		}
	}
}

func decodeSegment(t *testing.T, seg string, into any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

func TestJWTSignPanicsWhenVerifyOnly(t *testing.T) {
	j := newTestJWT(t, "EdDSA", 0, ",pub-key=pub")
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	_, _ = j.Sign(JWTClaims{User: "u", Revision: 1})
}

// TestJWTVerifiedTokensDecideAsTheLibrary: a JWT that remembers verified
// tokens answers, at every time around exp, as one that verifies each
// time with the library (a fresh JWT with the same keys); a token with
// claims beyond etcd's is never remembered; the memory is bounded.
func TestJWTVerifiedTokensDecideAsTheLibrary(t *testing.T) {
	issued := time.Unix(1_700_000_000, 0)
	warm := newTestJWT(t, "HS256", 0, ",priv-key=priv,ttl=10s")
	token, err := warm.Sign(warm.ClaimsAt("alice", 5, issued))
	if err != nil {
		t.Fatal(err)
	}
	withNbf, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"username": "bob", "revision": 5,
		"exp": issued.Add(time.Hour).Unix(), "nbf": issued.Add(time.Minute).Unix()}).SignedString(warm.signingKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := warm.Verify(withNbf, issued.Add(2*time.Minute)); !ok {
		t.Fatal("a token with nbf in the past refused")
	}
	for _, offset := range []time.Duration{0, 9 * time.Second, 9999 * time.Millisecond, 10 * time.Second, time.Hour, -time.Hour, 30 * time.Second} {
		now := issued.Add(offset)
		cold := newTestJWT(t, "HS256", 0, ",priv-key=priv,ttl=10s")
		for _, tok := range []string{token, withNbf} {
			wantInfo, wantOK := cold.Verify(tok, now)
			gotInfo, gotOK := warm.Verify(tok, now)
			if gotInfo != wantInfo || gotOK != wantOK {
				t.Errorf("at %v: remembered %+v %v, verified %+v %v", offset, gotInfo, gotOK, wantInfo, wantOK)
			}
		}
	}
	if m := warm.verified.Load(); m == nil || len(*m) != 1 {
		t.Fatalf("remembered tokens: %v", m)
	}
	for i := range verifiedTokensMax + 1 {
		tok, err := warm.Sign(JWTClaims{User: fmt.Sprintf("u%d", i), Revision: 1, ExpiresAtUnix: issued.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := warm.Verify(tok, issued); !ok {
			t.Fatalf("token %d refused", i)
		}
	}
	if n := len(*warm.verified.Load()); n > verifiedTokensMax {
		t.Fatalf("%d tokens remembered, bound %d", n, verifiedTokensMax)
	}
}

// BenchmarkJWTVerify measures a token's check per request: the signature
// (cold: a fresh JWT each time, as without the memory of verified
// tokens) against a remembered token (warm).
func BenchmarkJWTVerify(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	for _, method := range []string{"RS256", "ES256", "HS256", "EdDSA"} {
		private, public := testKeyPair(b, method, 0)
		files := testKeyFiles{"priv": private, "pub": public}
		newJWT := func() *JWT {
			j, err := NewJWT(map[string]string{"sign-method": method, "priv-key": "priv", "pub-key": "pub"}, files.read)
			if err != nil {
				b.Fatal(err)
			}
			return j
		}
		signer := newJWT()
		token, err := signer.Sign(signer.ClaimsAt("alice", 3, now))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(method+"/cold", func(b *testing.B) {
			cold := newJWT()
			for b.Loop() {
				cold.verified.Store(nil)
				if _, ok := cold.Verify(token, now); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(method+"/warm", func(b *testing.B) {
			for b.Loop() {
				if _, ok := signer.Verify(token, now); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// TestJWTVerifyConcurrently: readers on many goroutines verify and
// remember tokens at once (run under -race by make test-race); each gets
// its own token's claims.
func TestJWTVerifyConcurrently(t *testing.T) {
	const goroutines, tokensEach = 8, 50
	now := time.Unix(1_700_000_000, 0)
	j := newTestJWT(t, "HS256", 0, ",priv-key=priv,ttl=1h")
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range tokensEach {
				user := fmt.Sprintf("u%d-%d", g, i)
				token, err := j.Sign(j.ClaimsAt(user, 1, now))
				if err != nil {
					errs <- err
					return
				}
				for range 3 {
					if info, ok := j.Verify(token, now); !ok || info.User != user {
						errs <- fmt.Errorf("%s: %+v %v", user, info, ok)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
