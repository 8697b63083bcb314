package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestVersionsAndCipherSuitesAsEtcd(t *testing.T) {
	ids, err := tlsutil.ParseCipherSuites([]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_RSA_WITH_RC4_128_SHA"})
	if err != nil || !reflect.DeepEqual(ids, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_RSA_WITH_RC4_128_SHA}) {
		t.Fatalf("suites: %v, %v", ids, err)
	}
	// etcd 3.7.3's messages, from running it with these flags.
	for _, c := range []struct {
		minName, maxName string
		suites           []string
		want             string
	}{
		{"TLS1.1", "", nil, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{"TLS1.2", "TLS1.4", nil, `unexpected TLS version "TLS1.4" (must be one of: TLS1.2, TLS1.3)`},
		{"TLS1.3", "TLS1.2", nil, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{"TLS1.3", "", []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, "cipher suites cannot be configured when only TLS1.3 is enabled"},
		{"TLS1.2", "", []string{"FOO"}, `unexpected TLS cipher suite "FOO"`},
	} {
		suites, err := tlsutil.ParseCipherSuites(c.suites)
		if err == nil {
			_, _, err = tlsutil.Versions(c.minName, c.maxName, suites)
		}
		if err == nil || err.Error() != c.want {
			t.Errorf("%s..%s %v: %v, want %q", c.minName, c.maxName, c.suites, err, c.want)
		}
	}
	minVersion, maxVersion, err := tlsutil.Versions(tlsutil.DefaultMinVersion, "", nil)
	if err != nil || minVersion != tls.VersionTLS12 || maxVersion != 0 {
		t.Fatalf("defaults: %x %x %v", minVersion, maxVersion, err)
	}
}

func TestSelfCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fixtures", "client")
	if _, _, err := tlsutil.SelfCert(vfs.Default, dir, nil, 0); err == nil || err.Error() != "selfSignedCertValidity is invalid,it should be greater than 0" {
		t.Fatalf("validity 0: %v", err)
	}
	certFile, keyFile, err := tlsutil.SelfCert(vfs.Default, dir, []string{"127.0.0.1:2379", "localhost:2379"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.VerifyHostname("127.0.0.1") != nil || cert.VerifyHostname("localhost") != nil {
		t.Errorf("SANs %v %v", cert.IPAddresses, cert.DNSNames)
	}
	if years := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24 / 365; years != 2 {
		t.Errorf("validity %v years, want 2", years)
	}
	before, _ := os.ReadFile(certFile)
	if _, _, err := tlsutil.SelfCert(vfs.Default, dir, nil, 1); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(certFile); string(after) != string(before) {
		t.Error("a restart made a new certificate instead of reusing the existing one")
	}
	s, err := tlsutil.NewServer(tlsutil.Config{CertFile: certFile, KeyFile: keyFile, SelfSigned: true})
	if err != nil || s == nil {
		t.Fatalf("serve the self-signed certificate: %v", err)
	}
}
