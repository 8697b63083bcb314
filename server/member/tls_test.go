package member

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cairn-db/cairn/server/tlsutil/tlstest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestTLSStartErrors: https URLs without certificates are refused with
// etcd 3.7.3's messages (from running it with the same flags).
func TestTLSStartErrors(t *testing.T) {
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1:0"} },
			"TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:0 with HTTPS scheme"},
		{func(c *Config) { c.ListenPeerURLs = []string{"https://127.0.0.1:0"} },
			"cannot listen on TLS for 127.0.0.1:0: KeyFile and CertFile are not presented"},
		{func(c *Config) { c.ListenMetricsURLs = []string{"https://127.0.0.1:0"} },
			"client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url"},
		{func(c *Config) { c.ClientTLS.CertFile = "x.pem" },
			"client TLS: KeyFile and CertFile must both be present[key: , cert: x.pem]"},
		{func(c *Config) { c.ClientAutoTLS, c.SelfSignedCertValidityYears = true, 0; c.ClientTLS.CertFile = "" },
			""}, // 0 means the default, 1 year: starts
	} {
		cfg := testConfig(t.TempDir(), etcdapi.Limits{})
		c.change(&cfg)
		m, err := Start(cfg)
		if c.want == "" {
			if err != nil {
				t.Errorf("Start: %v", err)
			} else {
				m.Stop(time.Second)
			}
			continue
		}
		if err == nil {
			m.Stop(time.Second)
			t.Errorf("Start accepted a configuration etcd refuses with %q", c.want)
		} else if err.Error() != c.want {
			t.Errorf("Start: %v, want %q", err, c.want)
		}
	}
}

// TestTLSClientPortWithClientCertAuth serves the official client over
// https with client certificates, and refuses (and logs) a plain-text
// client and a client without a certificate on the same port.
func TestTLSClientPortWithClientCertAuth(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	server := ca.Issue(t, "m1", "127.0.0.1").Write(t, dir, "server", ca)
	client := ca.Issue(t, "client", "127.0.0.1")
	log := &tlstest.Log{}
	cfg := testConfig(filepath.Join(dir, "data"), etcdapi.Limits{})
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	cfg.ListenClientURLs = []string{"https://127.0.0.1:0", "http://127.0.0.1:0"}
	cfg.ClientTLS = tlsutil.Config{CertFile: server.Cert, KeyFile: server.Key, TrustedCAFile: server.CA, ClientCertAuth: true}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(time.Second)
	tlsAddr, plainAddr := m.listeners[0].Addr().String(), m.listeners[1].Addr().String()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
	if err := put(tlsAddr, withCert); err != nil {
		t.Fatalf("put over TLS with a client certificate: %v", err)
	}
	if err := put(plainAddr, nil); err != nil {
		t.Fatalf("put over the plain listener of the same member: %v", err)
	}
	if err := put(tlsAddr, nil); err == nil {
		t.Fatal("a plain-text client was served on the TLS port")
	}
	if err := put(tlsAddr, &tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("a client without a certificate was served under --client-cert-auth")
	}
	for _, want := range []string{"first record does not look like a TLS handshake", "didn't provide a certificate"} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(log.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("refusal %q not logged:\n%s", want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// put writes one key through the official client, with TLS if tlsConfig
// is set.
func put(addr string, tlsConfig *tls.Config) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, TLS: tlsConfig, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Put(ctx, "k", "v")
	return err
}

// TestTLSMetricsURL serves /health on an https metrics URL with the client
// port's certificate and client-certificate rule, as etcd does.
func TestTLSMetricsURL(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	server := ca.Issue(t, "m1", "127.0.0.1").Write(t, dir, "server", ca)
	client := ca.Issue(t, "client", "127.0.0.1")
	cfg := testConfig(filepath.Join(dir, "data"), etcdapi.Limits{})
	cfg.ListenMetricsURLs = []string{"https://127.0.0.1:0"}
	cfg.ClientTLS = tlsutil.Config{CertFile: server.Cert, KeyFile: server.Key, TrustedCAFile: server.CA, ClientCertAuth: true}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(time.Second)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + m.httpListeners[0].Addr().String() + "/health"
	get := func(cfg *tls.Config) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, err := get(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}})
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d, %v", url, code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := get(&tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("/health answered a client without a certificate under --client-cert-auth")
	}
}
