package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"
)

// Server is the TLS side of a listening port.
type Server struct {
	cfg      Config
	keyPair  *watchedFiles[*tls.Certificate]
	ca       *watchedFiles[*x509.CertPool] // nil without TrustedCAFile
	crl      *watchedFiles[revokedSerials] // nil without CRLFile
	verifyCN func([][]byte, [][]*x509.Certificate) error
}

// NewServer loads the port's files once (an unreadable file is an error
// now, not at the first handshake).
func NewServer(cfg Config) (*Server, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, verifyCN: cfg.verifyAllowed()}
	var err error
	if s.keyPair, err = loadWatched("certificate", cfg.Logger, parseKeyPair, cfg.CertFile, cfg.KeyFile); err != nil {
		return nil, err
	}
	if cfg.ClientCertFile != "" {
		// Checked now, as etcd checks it, though only a Client uses it.
		if _, err := readAndParse([]string{cfg.ClientCertFile, cfg.ClientKeyFile}, parseKeyPair); err != nil {
			return nil, err
		}
	}
	if cfg.TrustedCAFile != "" {
		if s.ca, err = loadWatched("trusted CA", cfg.Logger, parseCertPool, cfg.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	if cfg.CRLFile != "" {
		if s.crl, err = loadWatched("CRL", cfg.Logger, parseCRL, cfg.CRLFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// TLSConfig is the server's configuration: every handshake gets one built
// from the files as they are now.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         s.cfg.MinVersion,
		MaxVersion:         s.cfg.MaxVersion,
		NextProtos:         []string{"h2", "http/1.1"},
		GetConfigForClient: s.configForClient,
	}
}

// configForClient builds one handshake's configuration.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	cfg := &tls.Config{
		Certificates:          []tls.Certificate{*s.keyPair.get()},
		MinVersion:            s.cfg.MinVersion,
		MaxVersion:            s.cfg.MaxVersion,
		CipherSuites:          s.cfg.CipherSuites,
		NextProtos:            []string{"h2", "http/1.1"},
		ClientAuth:            tls.NoClientCert,
		VerifyPeerCertificate: s.verifyCN,
	}
	if s.cfg.ClientCertAuth || s.ca != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if s.ca != nil {
		cfg.ClientCAs = s.ca.get()
	}
	var checks []func(tls.ConnectionState) error
	if s.crl != nil {
		revoked := s.crl.get()
		checks = append(checks, func(cs tls.ConnectionState) error { return revoked.check(cs.PeerCertificates) })
	}
	if s.cfg.CheckClientSAN && hello.Conn != nil {
		remote := hello.Conn.RemoteAddr().String()
		checks = append(checks, func(cs tls.ConnectionState) error { return checkClientSAN(cs, remote) })
	}
	if len(checks) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			for _, check := range checks {
				if err := check(cs); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return cfg, nil
}

// sanLookupTimeout bounds the DNS lookups of one SAN check.
const sanLookupTimeout = 5 * time.Second

// checkClientSAN refuses a client certificate with SANs none of which is
// the connection's remote IP: an IP SAN must equal it, or a DNS SAN
// resolve to it. A certificate without SANs passes, as in etcd.
func checkClientSAN(cs tls.ConnectionState, remoteAddr string) error {
	leaf := cs.PeerCertificates[0]
	if len(leaf.IPAddresses) == 0 && len(leaf.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return err
	}
	if leaf.VerifyHostname(host) == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sanLookupTimeout)
	defer cancel()
	for _, name := range leaf.DNSNames {
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err == nil && slices.Contains(addrs, host) {
			return nil
		}
	}
	return fmt.Errorf("tls: remote address %s is not among the certificate's SANs (IPs %v, DNS names %q)", host, leaf.IPAddresses, leaf.DNSNames)
}

// Listener wraps l so that its connections speak TLS. The handshake is
// left to the first read or to Credentials' ServerHandshake, so a slow
// client does not hold up Accept.
func (s *Server) Listener(l net.Listener) net.Listener {
	return &tlsListener{Listener: l, config: s.TLSConfig()}
}

type tlsListener struct {
	net.Listener
	config *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.config), nil
}
