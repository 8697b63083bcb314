package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Token kinds of --auth-token, the word before its first comma.
const (
	TokenKindSimple = "simple"
	TokenKindJWT    = "jwt"
)

// DefaultJWTTTL is how long a JSON Web Token is valid after it is issued
// when --auth-token gives no ttl option: etcd's default.
const DefaultJWTTTL = 5 * time.Minute

// The errors of a bad --auth-token, with etcd 3.7.3's texts. etcd reports
// every error of the option string itself (its shape, a ttl that is not a
// duration, a key file it cannot read, an unknown sign-method) as
// ErrInvalidAuthOpts; the others come from the keys.
var (
	ErrInvalidAuthOpts = errors.New("auth: invalid auth options")
	ErrMissingKey      = errors.New("auth: missing key data")
	ErrKeyMismatch     = errors.New("auth: public and private keys don't match")
)

// ErrGRPCVerifyOnly is what Authenticate answers on a member given only
// a public key: it verifies tokens but cannot sign one. etcd returns its
// auth store's error, which has no gRPC code of its own, so the client
// sees code Unknown with the error's text.
var ErrGRPCVerifyOnly = status.Error(codes.Unknown, "auth: token signing attempted with verify-only key")

// The options of "jwt,...": etcd's names.
const (
	jwtOptionSignMethod = "sign-method"
	jwtOptionPublicKey  = "pub-key"
	jwtOptionPrivateKey = "priv-key"
	jwtOptionTTL        = "ttl"
)

// The claims of a token, etcd's names.
const (
	claimUsername  = "username"
	claimRevision  = "revision"
	claimExpiresAt = "exp"
)

// TokenOptions is a parsed --auth-token: the kind and its options.
type TokenOptions struct {
	Kind    string
	Options map[string]string
}

// ParseTokenOptions splits an --auth-token value as etcd does: the kind,
// then comma-separated name=value options, each name at most once. The
// options are not checked here: simple tokens ignore them, JWT checks
// them in NewJWT.
func ParseTokenOptions(s string) (TokenOptions, error) {
	parts := strings.Split(s, ",")
	opts := TokenOptions{Kind: parts[0], Options: map[string]string{}}
	for _, part := range parts[1:] {
		pair := strings.Split(part, "=")
		if len(pair) != 2 {
			return TokenOptions{}, ErrInvalidAuthOpts
		}
		if _, dup := opts.Options[pair[0]]; dup {
			return TokenOptions{}, ErrInvalidAuthOpts
		}
		opts.Options[pair[0]] = pair[1]
	}
	return opts, nil
}

// UnknownJWTOptions lists, sorted, the options JWT does not know (etcd
// warns about them and goes on).
func (o TokenOptions) UnknownJWTOptions() []string {
	var unknown []string
	for name := range o.Options {
		switch name {
		case jwtOptionSignMethod, jwtOptionPublicKey, jwtOptionPrivateKey, jwtOptionTTL:
		default:
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

// JWT issues and verifies etcd's JSON Web Tokens: claims username,
// revision (the auth revision the token was issued at) and exp (Unix
// seconds), signed with one of the methods of github.com/golang-jwt/jwt/v5
// (RS*, PS*, ES*, HS*, EdDSA). Members given the same keys accept each
// other's tokens. A JWT is safe for concurrent use: its keys never change,
// and the claims of the tokens it verified are remembered lock-free.
//
// Nothing here reads a clock: the caller passes the time a token is
// issued and the time it is checked at, the node's clock input. Signing
// with ES* and PS* draws randomness inside the crypto library, so their
// signatures differ between runs; RS*, HS* and EdDSA sign
// deterministically (the simulator uses those).
type JWT struct {
	method jwt.SigningMethod
	// signingKey is the private key (for HS*, the secret); nil on a
	// member given only a public key.
	signingKey any
	// verifyingKey checks signatures: the public key (for HS*, the
	// secret).
	verifyingKey any
	// ttl is how long a token is valid after it is issued.
	ttl time.Duration
	// verified are the claims of tokens whose signature checked out, so
	// that a token in use costs one signature check (tens of microseconds
	// for RSA and ECDSA) rather than one per request. Only tokens with
	// exactly etcd's three claims are kept, so a hit decides as the
	// library would: valid while the time is before exp. The map is
	// never changed once stored: a new token replaces it by a copy
	// (compare-and-swap; a lost race only forgets the token).
	// Invariant: at most verifiedTokensMax entries.
	verified atomic.Pointer[map[string]verifiedToken]
}

// verifiedTokensMax bounds the tokens a JWT remembers as verified; one
// more starts the memory afresh. Tokens are issued at bcrypt's pace (one
// password check each), so copying the map on each is cheap.
const verifiedTokensMax = 4096

// verifiedToken is a token whose signature checked out, and what it says.
type verifiedToken struct {
	info          Info
	expiresAtUnix int64
}

// NewJWT builds JWT from the options of "jwt,...", reading key files
// with readFile, with etcd's checks in etcd's order and its errors.
func NewJWT(opts map[string]string, readFile func(path string) ([]byte, error)) (*JWT, error) {
	ttl := DefaultJWTTTL
	if s := opts[jwtOptionTTL]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, ErrInvalidAuthOpts
		}
		ttl = d
	}
	var publicPEM, privatePEM []byte
	for _, f := range []struct {
		option string
		into   *[]byte
	}{{jwtOptionPublicKey, &publicPEM}, {jwtOptionPrivateKey, &privatePEM}} {
		if path := opts[f.option]; path != "" {
			b, err := readFile(path)
			if err != nil {
				return nil, ErrInvalidAuthOpts
			}
			*f.into = b
		}
	}
	method := jwt.GetSigningMethod(opts[jwtOptionSignMethod])
	if method == nil {
		return nil, ErrInvalidAuthOpts
	}
	return newJWT(method, publicPEM, privatePEM, ttl)
}

// newJWT parses the keys for method.
func newJWT(method jwt.SigningMethod, publicPEM, privatePEM []byte, ttl time.Duration) (*JWT, error) {
	j := &JWT{method: method, ttl: ttl}
	var private crypto.Signer
	var public crypto.PublicKey
	var err error
	switch method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(privatePEM) == 0 {
			return nil, ErrMissingKey
		}
		// The secret is the file's bytes, as they are.
		j.signingKey, j.verifyingKey = privatePEM, privatePEM
		return j, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		private, public, err = parseKeys(privatePEM, publicPEM, jwt.ParseRSAPrivateKeyFromPEM, jwt.ParseRSAPublicKeyFromPEM)
	case *jwt.SigningMethodECDSA:
		private, public, err = parseKeys(privatePEM, publicPEM, jwt.ParseECPrivateKeyFromPEM, jwt.ParseECPublicKeyFromPEM)
	case *jwt.SigningMethodEd25519:
		private, public, err = parseKeys(privatePEM, publicPEM, parseEdPrivateKey, parseEdPublicKey)
	default:
		return nil, fmt.Errorf("unsupported signing method: %T", method)
	}
	if err != nil {
		return nil, err
	}
	j.verifyingKey = public
	if private != nil {
		j.signingKey, j.verifyingKey = private, private.Public()
	}
	return j, nil
}

// parseKeys parses the keys given, requires one at least and, with both,
// that they are a pair.
func parseKeys[Private crypto.Signer, Public crypto.PublicKey](privatePEM, publicPEM []byte,
	parsePrivate func([]byte) (Private, error), parsePublic func([]byte) (Public, error)) (crypto.Signer, crypto.PublicKey, error) {
	var private crypto.Signer
	var public crypto.PublicKey
	if len(privatePEM) > 0 {
		k, err := parsePrivate(privatePEM)
		if err != nil {
			return nil, nil, err
		}
		private = k
	}
	if len(publicPEM) > 0 {
		k, err := parsePublic(publicPEM)
		if err != nil {
			return nil, nil, err
		}
		public = k
	}
	switch {
	case private == nil && public == nil:
		return nil, nil, ErrMissingKey
	case private != nil && public != nil && !publicKeysEqual(public, private.Public()):
		return nil, nil, ErrKeyMismatch
	}
	return private, public, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func parseEdPrivateKey(b []byte) (ed25519.PrivateKey, error) {
	k, err := jwt.ParseEdPrivateKeyFromPEM(b)
	if err != nil {
		return nil, err
	}
	return k.(ed25519.PrivateKey), nil
}

func parseEdPublicKey(b []byte) (ed25519.PublicKey, error) {
	k, err := jwt.ParseEdPublicKeyFromPEM(b)
	if err != nil {
		return nil, err
	}
	return k.(ed25519.PublicKey), nil
}

// Method is the sign-method, e.g. "RS256".
func (j *JWT) Method() string { return j.method.Alg() }

// TTL is how long a token is valid after it is issued.
func (j *JWT) TTL() time.Duration { return j.ttl }

// CanSign reports whether the member has the key to issue tokens; one
// given only a public key verifies the tokens of the others.
func (j *JWT) CanSign() bool { return j.signingKey != nil }

// JWTClaims are what a token says, decided by the core when the
// Authenticate entry applies.
type JWTClaims struct {
	User string
	// Revision is the auth revision the token was issued at: requests
	// made with it after a later change of the auth state fail with
	// "revision of auth store is old".
	Revision uint64
	// ExpiresAtUnix is the exp claim, in seconds since the Unix epoch.
	ExpiresAtUnix int64
}

// ClaimsAt are the claims of a token issued to user at auth revision
// revision, at time now.
func (j *JWT) ClaimsAt(user string, revision uint64, now time.Time) JWTClaims {
	return JWTClaims{User: user, Revision: revision, ExpiresAtUnix: now.Add(j.ttl).Unix()}
}

// Sign returns the token for c. It panics on a member that cannot sign:
// the core checks CanSign when the entry applies.
func (j *JWT) Sign(c JWTClaims) (string, error) {
	if !j.CanSign() {
		panic("auth: Sign on a verify-only JWT: the apply of Authenticate must refuse it first")
	}
	token := jwt.NewWithClaims(j.method, jwt.MapClaims{
		claimUsername:  c.User,
		claimRevision:  c.Revision,
		claimExpiresAt: c.ExpiresAtUnix,
	})
	return token.SignedString(j.signingKey)
}

// Verify checks token at time now, as etcd does: signed by this method
// with this member's key, not expired (exp after now, if it has one), a
// string username and a numeric revision. It returns who the token names,
// at the revision it was issued at.
func (j *JWT) Verify(token string, now time.Time) (Info, bool) {
	if m := j.verified.Load(); m != nil {
		if v, ok := (*m)[token]; ok {
			if !now.Before(time.Unix(v.expiresAtUnix, 0)) {
				return Info{}, false
			}
			return v.info, true
		}
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{j.method.Alg()}), jwt.WithTimeFunc(func() time.Time { return now }))
	parsed, err := parser.Parse(token, func(*jwt.Token) (any, error) { return j.verifyingKey, nil })
	if err != nil || !parsed.Valid {
		return Info{}, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !ok {
		return Info{}, false
	}
	user, ok := claims[claimUsername].(string)
	if !ok {
		return Info{}, false
	}
	revision, ok := claims[claimRevision].(float64)
	if !ok {
		return Info{}, false
	}
	info := Info{User: user, Revision: uint64(revision)}
	if exp, ok := claims[claimExpiresAt].(float64); ok && len(claims) == 3 && exp == float64(int64(exp)) {
		j.remember(token, verifiedToken{info: info, expiresAtUnix: int64(exp)})
	}
	return info, true
}

// remember adds a verified token to j.verified.
func (j *JWT) remember(token string, v verifiedToken) {
	old := j.verified.Load()
	next := map[string]verifiedToken{token: v}
	if old != nil && len(*old) < verifiedTokensMax {
		next = maps.Clone(*old)
		next[token] = v
	}
	j.verified.CompareAndSwap(old, &next)
}

// Compile-time checks that the key types are signers.
var (
	_ crypto.Signer = (*rsa.PrivateKey)(nil)
	_ crypto.Signer = (*ecdsa.PrivateKey)(nil)
	_ crypto.Signer = ed25519.PrivateKey(nil)
)
