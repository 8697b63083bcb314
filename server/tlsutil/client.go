package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
)

// Client is the TLS side of dialling a port (a member dialling its peers).
type Client struct {
	cfg     Config
	keyPair *watchedFiles[*tls.Certificate] // nil without a certificate
	ca      *watchedFiles[*x509.CertPool]   // nil without TrustedCAFile: system roots
}

// NewClient loads the files once. An Empty config dials with the system's
// roots and no client certificate, as etcd does for an https peer URL
// without peer TLS flags.
func NewClient(cfg Config) (*Client, error) {
	cfg.ensureDefaults()
	c := &Client{cfg: cfg}
	var err error
	if !cfg.Empty() {
		if err := cfg.validate(); err != nil {
			return nil, err
		}
		certFile, keyFile := cfg.clientKeyPair()
		if c.keyPair, err = loadWatched("client certificate", cfg.Logger, parseKeyPair, certFile, keyFile); err != nil {
			return nil, err
		}
	}
	if cfg.TrustedCAFile != "" {
		if c.ca, err = loadWatched("trusted CA", cfg.Logger, parseCertPool, cfg.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// TLSConfig returns a configuration for one dial, with the trusted CA
// bundle as it is now; the client certificate is re-read per handshake.
func (c *Client) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:            c.cfg.MinVersion,
		MaxVersion:            c.cfg.MaxVersion,
		CipherSuites:          c.cfg.CipherSuites,
		InsecureSkipVerify:    c.cfg.SelfSigned,
		VerifyPeerCertificate: c.cfg.verifyAllowed(),
	}
	if c.ca != nil {
		cfg.RootCAs = c.ca.get()
	}
	if c.keyPair != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.keyPair.get(), nil
		}
	}
	return cfg
}
