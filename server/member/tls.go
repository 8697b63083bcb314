package member

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"

	"github.com/cairn-db/cairn/server/tlsutil"
)

// memberTLS is the TLS of a member's two ports, built from Config before
// anything listens or dials.
type memberTLS struct {
	// client serves https client (and metrics) URLs; nil without
	// --cert-file/--key-file or --auto-tls.
	client *tlsutil.Server
	// peer serves https peer URLs; nil without peer certificates.
	peer *tlsutil.Server
	// peerDial dials peers' https URLs; never nil.
	peerDial *tlsutil.Client
}

// setUpTLS makes auto-TLS certificates if asked, refuses https URLs without
// certificates (checkSchemes) and loads the files.
func (m *Member) setUpTLS() error {
	cfg := &m.cfg
	logger := cfg.Logger.With("component", "tls")
	var err error
	if err = m.autoTLS(&cfg.PeerTLS, cfg.PeerAutoTLS, "peer", cfg.ListenPeerURLs); err != nil {
		return err
	}
	if err = m.autoTLS(&cfg.ClientTLS, cfg.ClientAutoTLS, "client", cfg.ListenClientURLs); err != nil {
		return err
	}
	cfg.PeerTLS.Logger = logger.With("port", "peer")
	cfg.ClientTLS.Logger = logger.With("port", "client")
	if err := checkSchemes(cfg, logger); err != nil {
		return err
	}
	if !cfg.PeerTLS.Empty() {
		peer := cfg.PeerTLS
		peer.CheckClientSAN = !cfg.PeerSkipClientSANVerification // etcd's peer listener checks it
		if m.tls.peer, err = tlsutil.NewServer(peer); err != nil {
			return fmt.Errorf("peer TLS: %w", err)
		}
		logger.Info("starting with peer TLS", "cert-file", peer.CertFile, "key-file", peer.KeyFile,
			"trusted-ca-file", peer.TrustedCAFile, "client-cert-auth", peer.ClientCertAuth, "crl-file", peer.CRLFile,
			"allowed-cns", peer.AllowedCNs, "allowed-hostnames", peer.AllowedHostnames)
	}
	if m.tls.peerDial, err = tlsutil.NewClient(cfg.PeerTLS); err != nil {
		return fmt.Errorf("peer TLS: %w", err)
	}
	if !cfg.ClientTLS.Empty() {
		if m.tls.client, err = tlsutil.NewServer(cfg.ClientTLS); err != nil {
			return fmt.Errorf("client TLS: %w", err)
		}
		logger.Info("starting with client TLS", "cert-file", cfg.ClientTLS.CertFile, "key-file", cfg.ClientTLS.KeyFile,
			"trusted-ca-file", cfg.ClientTLS.TrustedCAFile, "client-cert-auth", cfg.ClientTLS.ClientCertAuth, "crl-file", cfg.ClientTLS.CRLFile)
	}
	return nil
}

// autoTLS fills an empty port's certificate with a self-signed one in
// <data-dir>/fixtures/<port>, for the hosts it listens on (--auto-tls,
// --peer-auto-tls). Given certificates win, as in etcd.
func (m *Member) autoTLS(c *tlsutil.Config, auto bool, port string, listenURLs []string) error {
	if !auto {
		return nil
	}
	if !c.Empty() {
		m.cfg.Logger.Warn("ignoring " + port + " auto TLS since certs given")
		return nil
	}
	var hosts []string
	for _, raw := range listenURLs {
		if u, err := url.Parse(raw); err == nil {
			hosts = append(hosts, u.Host)
		}
	}
	certFile, keyFile, err := tlsutil.SelfCert(m.cfg.FS, filepath.Join(m.cfg.DataDir, "fixtures", port), hosts, m.cfg.SelfSignedCertValidityYears)
	if err != nil {
		return fmt.Errorf("failed to get %s self-signed certs: %w", port, err)
	}
	m.cfg.Logger.Warn("automatically generated a self-signed certificate", "port", port, "cert-file", certFile,
		"validity-years", m.cfg.SelfSignedCertValidityYears)
	c.CertFile, c.KeyFile, c.SelfSigned = certFile, keyFile, true
	return nil
}

// checkSchemes refuses https URLs of a port without certificates, with
// etcd's messages (the peer port's first, as etcd checks it first), and
// warns of certificates that http URLs ignore.
func checkSchemes(cfg *Config, logger *slog.Logger) error {
	for _, raw := range cfg.ListenPeerURLs {
		u, err := url.Parse(raw)
		if err != nil {
			continue // listen refuses it
		}
		if u.Scheme == "https" && cfg.PeerTLS.Empty() {
			return fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented", u.Host)
		}
		if u.Scheme == "http" && !cfg.PeerTLS.Empty() {
			logger.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", "peer-url", raw)
		}
	}
	for _, raw := range cfg.ListenClientURLs {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if u.Scheme == "https" && cfg.ClientTLS.Empty() {
			return fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", raw)
		}
		if u.Scheme == "http" && !cfg.ClientTLS.Empty() {
			logger.Warn("scheme is http while key and cert files are present; ignoring key and cert files", "client-url", raw)
		}
	}
	return nil
}
