package tlsutil_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cairn-db/cairn/server/tlsutil/tlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// callTimeout bounds one probe of the test server.
const callTimeout = 3 * time.Second

// logWaitTimeout bounds the wait for the server to log a refusal.
const logWaitTimeout = 5 * time.Second

// testServer is a gRPC health server on a TLS listener built by tlsutil,
// with its log.
type testServer struct {
	addr string
	log  *tlstest.Log
}

func startServer(t *testing.T, cfg tlsutil.Config) *testServer {
	t.Helper()
	log := &tlstest.Log{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	s, err := tlsutil.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(tlsutil.Credentials(cfg.Logger)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(s.Listener(l))
	t.Cleanup(srv.Stop)
	return &testServer{addr: l.Addr().String(), log: log}
}

// call makes one health check with the given credentials and returns the
// server certificate's CN it saw.
func (s *testServer) call(t *testing.T, creds credentials.TransportCredentials) (string, error) {
	t.Helper()
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return "", err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", nil
	}
	return info.State.PeerCertificates[0].Subject.CommonName, nil
}

func (s *testServer) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(logWaitTimeout)
	for !strings.Contains(s.log.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not log %q; log:\n%s", text, s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pki is a CA with a server certificate and client certificates.
type pki struct {
	dir    string
	ca     *tlstest.CA
	server tlstest.Files
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test-ca")
	return &pki{dir: dir, ca: ca, server: ca.Issue(t, "server", "127.0.0.1").Write(t, dir, "server", ca)}
}

func (p *pki) clientCreds(t *testing.T, leaf *tlstest.Leaf) credentials.TransportCredentials {
	t.Helper()
	pool := newPool(t, p.ca.PEM)
	cfg := &tls.Config{RootCAs: pool}
	if leaf != nil {
		pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Presented whatever CAs the server names: Go's client would
		// otherwise send no certificate to a server of another CA.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return credentials.NewTLS(cfg)
}

func TestRefusalsAreRefusedAndLogged(t *testing.T) {
	p := newPKI(t)
	good := p.ca.Issue(t, "good", "127.0.0.1")
	revoked := p.ca.Issue(t, "revoked", "127.0.0.1")
	other := tlstest.NewCA(t, "other-ca").Issue(t, "good", "127.0.0.1")
	wrongCN := p.ca.Issue(t, "intruder", "127.0.0.1")
	elsewhere := p.ca.Issue(t, "good", "10.9.9.9")
	crl := filepath.Join(p.dir, "crl.der")
	tlstest.WriteFile(t, crl, p.ca.CRL(t, revoked))
	base := tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.CA, ClientCertAuth: true}

	withCRL := base
	withCRL.CRLFile = crl
	withCN := base
	withCN.AllowedCNs = []string{"good", "also-good"}
	withHost := base
	withHost.AllowedHostnames = []string{"127.0.0.1"}
	withSAN := base
	withSAN.CheckClientSAN = true

	cases := []struct {
		name   string
		cfg    tlsutil.Config
		creds  credentials.TransportCredentials
		reason string // in the server's log; "" means the call succeeds
	}{
		{"good client", base, p.clientCreds(t, good), ""},
		{"plain text on a TLS port", base, insecure.NewCredentials(), "first record does not look like a TLS handshake"},
		{"no client certificate", base, p.clientCreds(t, nil), "didn't provide a certificate"},
		{"certificate from another CA", base, p.clientCreds(t, other), "certificate signed by unknown authority"},
		{"revoked certificate", withCRL, p.clientCreds(t, revoked), "revoked"},
		{"unrevoked certificate under a CRL", withCRL, p.clientCreds(t, good), ""},
		{"CN outside the allowed CNs", withCN, p.clientCreds(t, wrongCN), "client certificate authentication failed"},
		{"CN among the allowed CNs", withCN, p.clientCreds(t, good), ""},
		{"host outside the allowed host names", withHost, p.clientCreds(t, elsewhere), "client certificate authentication failed"},
		{"host among the allowed host names", withHost, p.clientCreds(t, good), ""},
		{"certificate not naming the remote address", withSAN, p.clientCreds(t, elsewhere), "is not among the certificate's SANs"},
		{"certificate naming the remote address", withSAN, p.clientCreds(t, good), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startServer(t, c.cfg)
			cn, err := s.call(t, c.creds)
			if c.reason == "" {
				if err != nil || cn != "server" {
					t.Fatalf("call: %v (server CN %q); log:\n%s", err, cn, s.log.String())
				}
				if strings.Contains(s.log.String(), "refused") {
					t.Fatalf("a good client was refused:\n%s", s.log.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("the call succeeded; want a refusal for %q", c.reason)
			}
			s.waitLog(t, "refused a TLS connection")
			s.waitLog(t, c.reason)
		})
	}
}

// TestTrustedCAImpliesClientCerts pins etcd's rule: a trusted CA file alone
// (without --client-cert-auth) already requires client certificates.
func TestTrustedCAImpliesClientCerts(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.CA})
	if _, err := s.call(t, p.clientCreds(t, nil)); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	s.waitLog(t, "didn't provide a certificate")
	noCA := startServer(t, tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key})
	if _, err := noCA.call(t, p.clientCreds(t, nil)); err != nil {
		t.Fatalf("without a trusted CA, a client without a certificate was refused: %v", err)
	}
}

func TestCertificatesAreReloadedWhenTheyChange(t *testing.T) {
	p := newPKI(t)
	client := p.ca.Issue(t, "client", "127.0.0.1")
	s := startServer(t, tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.CA})
	if cn, err := s.call(t, p.clientCreds(t, client)); err != nil || cn != "server" {
		t.Fatalf("before rotation: CN %q, %v", cn, err)
	}

	// Rotate the server certificate: the next handshake presents it.
	p.ca.Issue(t, "server-rotated", "127.0.0.1").Write(t, p.dir, "server", p.ca)
	if cn, err := s.call(t, p.clientCreds(t, client)); err != nil || cn != "server-rotated" {
		t.Fatalf("after rotation: CN %q, %v; log:\n%s", cn, err, s.log.String())
	}
	s.waitLog(t, "reloaded changed TLS file")

	// A half-written key is logged and the last good pair kept.
	tlstest.WriteFile(t, p.server.Key, []byte("not a key"))
	if cn, err := s.call(t, p.clientCreds(t, client)); err != nil || cn != "server-rotated" {
		t.Fatalf("after a broken key: CN %q, %v", cn, err)
	}
	s.waitLog(t, "cannot load changed TLS file")

	// Rotate the trusted CA: clients of the new CA get in, the old CA's
	// do not.
	newCA := tlstest.NewCA(t, "new-ca")
	leaf := newCA.Issue(t, "server-new-ca", "127.0.0.1")
	tlstest.WriteFile(t, p.server.Cert, leaf.CertPEM)
	tlstest.WriteFile(t, p.server.Key, leaf.KeyPEM)
	tlstest.WriteFile(t, p.server.CA, newCA.PEM)
	newClient := newCA.Issue(t, "client", "127.0.0.1")
	newCreds := credentials.NewTLS(&tls.Config{RootCAs: newPool(t, newCA.PEM), Certificates: []tls.Certificate{pair(t, newClient)}})
	if cn, err := s.call(t, newCreds); err != nil || cn != "server-new-ca" {
		t.Fatalf("after CA rotation: CN %q, %v; log:\n%s", cn, err, s.log.String())
	}
	oldPair := pair(t, client)
	oldClientNewRoots := credentials.NewTLS(&tls.Config{RootCAs: newPool(t, newCA.PEM),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &oldPair, nil }})
	if _, err := s.call(t, oldClientNewRoots); err == nil {
		t.Fatal("a client of the old CA was served after the CA rotation")
	}
	s.waitLog(t, "certificate signed by unknown authority")
}

// TestClientChecksAllowedCN: a member dialling a peer applies
// --peer-cert-allowed-cn to the peer's server certificate, as etcd does.
func TestClientChecksAllowedCN(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.CA})
	own := p.ca.Issue(t, "member", "127.0.0.1").Write(t, p.dir, "member", p.ca)
	for _, c := range []struct {
		allowed []string
		ok      bool
	}{{[]string{"server"}, true}, {[]string{"someone-else"}, false}} {
		cl, err := tlsutil.NewClient(tlsutil.Config{CertFile: own.Cert, KeyFile: own.Key, TrustedCAFile: own.CA, AllowedCNs: c.allowed})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.call(t, credentials.NewTLS(cl.TLSConfig()))
		if (err == nil) != c.ok {
			t.Errorf("allowed CNs %v: %v, want ok=%v", c.allowed, err, c.ok)
		}
	}
}

// TestClientPresentsClientCertFile: --peer-client-cert-file replaces the
// peer certificate when a member dials.
func TestClientPresentsClientCertFile(t *testing.T) {
	p := newPKI(t)
	s := startServer(t, tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.CA,
		AllowedCNs: []string{"peer-client"}})
	own := p.ca.Issue(t, "member", "127.0.0.1").Write(t, p.dir, "member", p.ca)
	dialing := p.ca.Issue(t, "peer-client", "127.0.0.1").Write(t, p.dir, "peer-client", p.ca)
	for _, c := range []struct {
		cfg tlsutil.Config
		ok  bool
	}{
		{tlsutil.Config{CertFile: own.Cert, KeyFile: own.Key, TrustedCAFile: own.CA}, false},
		{tlsutil.Config{CertFile: own.Cert, KeyFile: own.Key, ClientCertFile: dialing.Cert, ClientKeyFile: dialing.Key, TrustedCAFile: own.CA}, true},
	} {
		cl, err := tlsutil.NewClient(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.call(t, credentials.NewTLS(cl.TLSConfig())); (err == nil) != c.ok {
			t.Errorf("client cert file %q: %v, want ok=%v", c.cfg.ClientCertFile, err, c.ok)
		}
	}
}

func TestNewServerRefusesIncompleteConfig(t *testing.T) {
	p := newPKI(t)
	for _, c := range []struct {
		cfg  tlsutil.Config
		want string
	}{
		{tlsutil.Config{CertFile: "x.pem"}, "KeyFile and CertFile must both be present[key: , cert: x.pem]"},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, AllowedCNs: []string{"a"}, AllowedHostnames: []string{"b"}},
			`AllowedCNs and AllowedHostnames are mutually exclusive (cns=["a"], hostnames=["b"])`},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: filepath.Join(p.dir, "missing.pem")}, "no such file or directory"},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, TrustedCAFile: p.server.Key}, "no certificate in the trusted CA file"},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, CRLFile: p.server.Cert}, "parse CRL"},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, ClientCertFile: p.server.Cert},
			"ClientKeyFile and ClientCertFile must both be present or both absent: key: , cert: " + p.server.Cert + "]"},
		{tlsutil.Config{CertFile: p.server.Cert, KeyFile: p.server.Key, ClientCertFile: p.server.Cert, ClientKeyFile: p.server.CA}, "tls:"},
	} {
		_, err := tlsutil.NewServer(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewServer(%+v): %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestPlainConnectionsOnTheSameServer(t *testing.T) {
	log := &tlstest.Log{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(tlsutil.Credentials(slog.New(slog.NewTextHandler(log, nil)))))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	s := &testServer{addr: l.Addr().String(), log: log}
	if _, err := s.call(t, insecure.NewCredentials()); err != nil {
		t.Fatalf("plain client on a plain listener: %v", err)
	}
}

func newPool(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("bad CA PEM")
	}
	return pool
}

func pair(t *testing.T, l *tlstest.Leaf) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
