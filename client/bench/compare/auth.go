package compare

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-db/cairn/client/bench/workload"
)

// The auth cases run with auth enabled: after the cluster starts, a root
// user (with the root role) is added and auth is enabled, and the load's
// clients authenticate as root with its password, as an application
// holding credentials does (the client library authenticates once per
// connection and sends the token with every request). Root is the user
// whose permission checks are the cheapest on both systems: what is
// measured is the cost of tokens and of the checks' entry, not of
// evaluating many permissions. Both systems get the same flags: the
// default --auth-token simple, or --auth-token jwt with RS256 and the
// same 2048-bit key files, made for the run.

// Token kinds of the auth cases.
const (
	authTokenSimple = "simple"
	authTokenJWT    = "jwt"
)

// authCaseTokens are the auth cases' token kinds, by case name.
var authCaseTokens = map[string]string{
	"put-auth": authTokenSimple, "range-auth": authTokenSimple,
	"put-jwt": authTokenJWT, "range-jwt": authTokenJWT,
}

const (
	benchRootUser     = "root"
	benchRootPassword = "bench-root-password"
	// jwtRSABits is the size of the JWT cases' RSA key.
	jwtRSABits = 2048
	// authSetupTimeout bounds the set-up of auth on a started cluster.
	authSetupTimeout = 30 * time.Second
)

// asRoot makes the load's clients authenticate as the root user.
func asRoot(o *workload.Options) { o.Username, o.Password = benchRootUser, benchRootPassword }

// authFlags are the members' flags for token kind, with key files made
// under dir for JWT.
func authFlags(kind, dir string) ([]string, error) {
	if kind != authTokenJWT {
		return []string{"--auth-token", authTokenSimple}, nil
	}
	private, public, err := writeJWTKeys(filepath.Join(dir, "jwt-keys"))
	if err != nil {
		return nil, err
	}
	return []string{"--auth-token", fmt.Sprintf("jwt,pub-key=%s,priv-key=%s,sign-method=RS256,ttl=10m", public, private)}, nil
}

// writeJWTKeys writes a new RSA key pair as PEM files in dir.
func writeJWTKeys(dir string) (private, public string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	key, err := rsa.GenerateKey(rand.Reader, jwtRSABits)
	if err != nil {
		return "", "", err
	}
	publicDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	private, public = filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	if err := os.WriteFile(private, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicDER}), 0o600); err != nil {
		return "", "", err
	}
	return private, public, nil
}

// enableAuth adds the root user and enables auth on a started cluster.
func (c *Cluster) enableAuth(ctx context.Context) error {
	clis, err := workload.DialTLS(c.Endpoints, 1, c.System.clientTLS())
	if err != nil {
		return err
	}
	defer workload.CloseAll(clis)
	ctx, cancel := context.WithTimeout(ctx, authSetupTimeout)
	defer cancel()
	cli := clis[0]
	if _, err := cli.UserAdd(ctx, benchRootUser, benchRootPassword); err != nil {
		return fmt.Errorf("add the root user: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, benchRootUser, benchRootUser); err != nil {
		return fmt.Errorf("grant the root role: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	// Every member serves as root once auth is on (a follower may apply
	// the enable a moment later; the first request of the load must not
	// fail for that).
	rootClis, err := workload.DialAs(c.Endpoints, 1, c.System.clientTLS(), benchRootUser, benchRootPassword)
	if err != nil {
		return fmt.Errorf("authenticate as root: %w", err)
	}
	defer workload.CloseAll(rootClis)
	for _, ep := range c.Endpoints {
		if _, err := rootClis[0].Status(ctx, ep); err != nil {
			return fmt.Errorf("status of %s as root: %w", ep, err)
		}
	}
	if _, err := rootClis[0].Put(ctx, "bench-auth-ready", "x"); err != nil {
		return fmt.Errorf("put as root: %w", err)
	}
	return nil
}
