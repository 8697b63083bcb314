package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Config is one port's TLS settings: the client port's (--cert-file,
// --key-file, --trusted-ca-file, --client-cert-auth, --client-crl-file) or
// the peer port's (--peer-cert-file, ..., --peer-cert-allowed-cn,
// --peer-cert-allowed-hostname), with the settings both share
// (--cipher-suites, --tls-min-version, --tls-max-version).
type Config struct {
	// CertFile and KeyFile are this member's PEM certificate chain and
	// key; both or neither. Neither means the port has no TLS (Empty).
	CertFile string
	KeyFile  string
	// ClientCertFile and ClientKeyFile, both or neither, are the
	// certificate a Client presents instead of CertFile and KeyFile
	// (--peer-client-cert-file, --peer-client-key-file).
	ClientCertFile string
	ClientKeyFile  string
	// TrustedCAFile is a PEM bundle verifying the other side's
	// certificates. On a server, setting it also requires client
	// certificates, as in etcd.
	TrustedCAFile string
	// ClientCertAuth requires and verifies client certificates.
	ClientCertAuth bool
	// CRLFile lists revoked certificates (DER, as etcd reads it, or PEM);
	// a connection presenting one is refused.
	CRLFile string
	// AllowedCNs and AllowedHostnames, at most one of them set, restrict
	// the verified certificates of the other side to these common names,
	// or to these host names or IPs among its SANs.
	AllowedCNs       []string
	AllowedHostnames []string
	// CheckClientSAN makes a server refuse a client certificate that has
	// SANs none of which is the connection's remote address (etcd checks
	// this on its peer port).
	CheckClientSAN bool
	// SelfSigned is set for certificates made by --auto-tls or
	// --peer-auto-tls: a Client then skips verifying the server, as etcd
	// does, since nothing could verify it.
	SelfSigned bool
	// CipherSuites in order of preference; empty lets Go choose.
	CipherSuites []uint16
	// MinVersion defaults to TLS 1.2; MaxVersion 0 lets Go choose.
	MinVersion uint16
	MaxVersion uint16
	// Logger gets refusals and reloads. Default slog.Default().
	Logger *slog.Logger
}

// Empty reports whether the port has no certificate, hence no TLS.
func (c *Config) Empty() bool { return c.CertFile == "" && c.KeyFile == "" }

func (c *Config) ensureDefaults() {
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate refuses what etcd refuses, with its messages.
func (c *Config) validate() error {
	if c.CertFile == "" || c.KeyFile == "" {
		return fmt.Errorf("KeyFile and CertFile must both be present[key: %v, cert: %v]", c.KeyFile, c.CertFile)
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		return fmt.Errorf("ClientKeyFile and ClientCertFile must both be present or both absent: key: %v, cert: %v]", c.ClientKeyFile, c.ClientCertFile)
	}
	if len(c.AllowedCNs) > 0 && len(c.AllowedHostnames) > 0 {
		return fmt.Errorf("AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", c.AllowedCNs, c.AllowedHostnames)
	}
	return nil
}

// clientKeyPair is the certificate a Client presents.
func (c *Config) clientKeyPair() (certFile, keyFile string) {
	if c.ClientCertFile != "" {
		return c.ClientCertFile, c.ClientKeyFile
	}
	return c.CertFile, c.KeyFile
}

// errNotAllowed is etcd's refusal of a certificate outside the allowed CNs
// or host names.
var errNotAllowed = errors.New("client certificate authentication failed")

// verifyAllowed returns a VerifyPeerCertificate callback enforcing
// AllowedCNs or AllowedHostnames, or nil if neither is set. It looks at
// the leaf of each verified chain, so it passes nothing when the other
// side's certificate was not verified.
func (c *Config) verifyAllowed() func([][]byte, [][]*x509.Certificate) error {
	var allowed func(*x509.Certificate) bool
	switch {
	case len(c.AllowedCNs) > 0:
		allowed = func(cert *x509.Certificate) bool { return slices.Contains(c.AllowedCNs, cert.Subject.CommonName) }
	case len(c.AllowedHostnames) > 0:
		allowed = func(cert *x509.Certificate) bool {
			return slices.ContainsFunc(c.AllowedHostnames, func(h string) bool { return cert.VerifyHostname(h) == nil })
		}
	default:
		return nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, chain := range chains {
			if len(chain) > 0 && allowed(chain[0]) {
				return nil
			}
		}
		return errNotAllowed
	}
}
