package sim

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cairn-db/cairn/node/auth"
)

// The auth workload's tokens (Options.AuthToken). Half the auth seeds run
// etcd's simple tokens, the others JSON Web Tokens (--auth-token jwt,...)
// signed with a method that signs deterministically, so the trace stays
// the same byte for byte: HS256 with a secret drawn from the seed, or
// EdDSA with a key derived from it. With EdDSA, one seed in two makes one
// founding member verify-only (the public key alone): Authenticate through
// it fails and the client tries another member, and the tokens of the
// others work on it. The TTL is short, so tokens expire during a run and
// clients authenticate again; every change of the auth state makes the
// tokens issued before it stale ("revision of auth store is old").
//
// These draws come from their own stream of the seed, so the runs of
// seeds with simple tokens are the ones they were before JWT.

// AuthToken kinds.
const (
	AuthTokenSimple   = "simple"
	AuthTokenJWTHS256 = "jwt-HS256"
	AuthTokenJWTEdDSA = "jwt-EdDSA"
)

// AuthTokens are the auth workload's token kinds, for -auth-token.
var AuthTokens = []string{AuthTokenSimple, AuthTokenJWTHS256, AuthTokenJWTEdDSA}

const (
	// authTokenStream names the token draws' random stream of a seed.
	authTokenStream = 0x6a7774 // "jwt"
	// jwtTTLMinMillis and jwtTTLSpanMillis bound the JWT TTL drawn:
	// shorter than a run, so tokens expire in it.
	jwtTTLMinMillis  = 1000
	jwtTTLSpanMillis = 5000
	// verifyOnlyOneIn: one EdDSA seed in verifyOnlyOneIn has a verify-only
	// member.
	verifyOnlyOneIn = 2
)

// authTokenWorld is how the members of a run issue and verify tokens.
type authTokenWorld struct {
	kind string
	// signer is every member's JWT (nil: simple tokens), but
	// verifyOnlyID's, which gets verifier.
	signer, verifier *auth.JWT
	// verifyOnlyID is the founding member given only the public key (0:
	// none).
	verifyOnlyID uint64
}

// drawAuthToken resolves Options.AuthToken from the seed when it is empty.
func drawAuthToken(seed uint64) string {
	rng := authTokenRand(seed)
	switch rng.IntN(4) {
	case 0:
		return AuthTokenJWTHS256
	case 1:
		return AuthTokenJWTEdDSA
	}
	return AuthTokenSimple
}

func authTokenRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed*seedSpread, authTokenStream))
}

// ValidateAuthToken checks an Options.AuthToken value.
func ValidateAuthToken(kind string) error {
	if kind != "" && !slices.Contains(AuthTokens, kind) {
		return fmt.Errorf("unknown auth token kind %q (known: %s)", kind, strings.Join(AuthTokens, ", "))
	}
	return nil
}

// newAuthTokenWorld makes the keys of the run's token kind. It goes
// through --auth-token's own parsing (auth.ParseTokenOptions, auth.NewJWT)
// with the key files in memory.
func newAuthTokenWorld(opts Options) (authTokenWorld, error) {
	t := authTokenWorld{kind: opts.AuthToken}
	if !opts.Auth || t.kind == AuthTokenSimple {
		return t, nil
	}
	rng := authTokenRand(opts.Seed)
	rng.IntN(4) // the draw of the kind
	ttl := time.Duration(jwtTTLMinMillis+rng.IntN(jwtTTLSpanMillis)) * time.Millisecond
	var files map[string][]byte
	var method string
	switch t.kind {
	case AuthTokenJWTHS256:
		method = "HS256"
		secret := make([]byte, 32)
		for i := range secret {
			secret[i] = byte(rng.Uint32())
		}
		files = map[string][]byte{"priv": secret}
	case AuthTokenJWTEdDSA:
		method = "EdDSA"
		seed := make([]byte, ed25519.SeedSize)
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		var err error
		if files, err = ed25519Files(ed25519.NewKeyFromSeed(seed)); err != nil {
			return t, err
		}
		if rng.IntN(verifyOnlyOneIn) == 0 {
			t.verifyOnlyID = uint64(1 + rng.IntN(opts.Members))
		}
	default:
		return t, ValidateAuthToken(t.kind)
	}
	readFile := func(path string) ([]byte, error) {
		if b, ok := files[path]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	newJWT := func(keys string) (*auth.JWT, error) {
		parsed, err := auth.ParseTokenOptions(fmt.Sprintf("jwt,sign-method=%s,%s,ttl=%s", method, keys, ttl))
		if err != nil {
			return nil, err
		}
		return auth.NewJWT(parsed.Options, readFile)
	}
	var err error
	if t.signer, err = newJWT("priv-key=priv"); err != nil {
		return t, err
	}
	if t.verifyOnlyID != 0 {
		t.verifier, err = newJWT("pub-key=pub")
	}
	return t, err
}

func ed25519Files(key ed25519.PrivateKey) (map[string][]byte, error) {
	private, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	public, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"priv": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: private}),
		"pub":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: public}),
	}, nil
}

// jwtFor is member id's JWT (nil: simple tokens).
func (t *authTokenWorld) jwtFor(id uint64) *auth.JWT {
	if id == t.verifyOnlyID && t.verifier != nil {
		return t.verifier
	}
	return t.signer
}

// String describes the tokens for the trace.
func (t *authTokenWorld) String() string {
	if t.signer == nil {
		return "auth tokens: " + t.kind
	}
	s := fmt.Sprintf("auth tokens: %s ttl=%v", t.kind, t.signer.TTL())
	if t.verifyOnlyID != 0 {
		s += fmt.Sprintf(" verify-only=n%d", t.verifyOnlyID)
	}
	return s
}
