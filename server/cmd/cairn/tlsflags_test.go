package main

import (
	"crypto/tls"
	"reflect"
	"testing"
)

func TestParseFlagsTLS(t *testing.T) {
	cfg, err := parseConfig([]string{
		"--cert-file", "c.pem", "--key-file", "k.pem", "--trusted-ca-file", "ca.pem", "--client-cert-auth",
		"--client-crl-file", "crl.der", "--auto-tls", "--client-cert-file", "cc.pem", "--client-key-file", "ck.pem",
		"--client-cert-allowed-hostname", "a.example,b.example", "--peer-client-cert-file", "pcc.pem", "--peer-client-key-file", "pck.pem",
		"--peer-cert-file", "pc.pem", "--peer-key-file", "pk.pem", "--peer-trusted-ca-file", "pca.pem",
		"--peer-client-cert-auth", "--peer-crl-file", "pcrl.der", "--peer-auto-tls",
		"--peer-cert-allowed-cn", "m1,m2", "--self-signed-cert-validity", "3",
		"--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"--tls-max-version", "TLS1.3", "--peer-skip-client-san-verification",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, p := cfg.ClientTLS, cfg.PeerTLS
	if c.CertFile != "c.pem" || c.KeyFile != "k.pem" || c.TrustedCAFile != "ca.pem" || !c.ClientCertAuth || c.CRLFile != "crl.der" ||
		c.ClientCertFile != "cc.pem" || c.ClientKeyFile != "ck.pem" || !reflect.DeepEqual(c.AllowedHostnames, []string{"a.example", "b.example"}) {
		t.Errorf("client TLS %+v", c)
	}
	if p.CertFile != "pc.pem" || p.KeyFile != "pk.pem" || p.TrustedCAFile != "pca.pem" || !p.ClientCertAuth || p.CRLFile != "pcrl.der" ||
		p.ClientCertFile != "pcc.pem" || p.ClientKeyFile != "pck.pem" ||
		!reflect.DeepEqual(p.AllowedCNs, []string{"m1", "m2"}) || p.AllowedHostnames != nil {
		t.Errorf("peer TLS %+v", p)
	}
	suites := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	for _, x := range []struct {
		suites   []uint16
		min, max uint16
	}{{c.CipherSuites, c.MinVersion, c.MaxVersion}, {p.CipherSuites, p.MinVersion, p.MaxVersion}} {
		if !reflect.DeepEqual(x.suites, suites) || x.min != tls.VersionTLS12 || x.max != tls.VersionTLS13 {
			t.Errorf("shared settings %+v", x)
		}
	}
	if !cfg.ClientAutoTLS || !cfg.PeerAutoTLS || cfg.SelfSignedCertValidityYears != 3 || !cfg.PeerSkipClientSANVerification {
		t.Errorf("auto TLS %v %v %d", cfg.ClientAutoTLS, cfg.PeerAutoTLS, cfg.SelfSignedCertValidityYears)
	}

	defaults, err := parseConfig(nil)
	if err != nil || !defaults.ClientTLS.Empty() || !defaults.PeerTLS.Empty() || defaults.ClientTLS.MinVersion != tls.VersionTLS12 ||
		defaults.ClientTLS.MaxVersion != 0 || defaults.SelfSignedCertValidityYears != 1 {
		t.Errorf("defaults: %+v %v", defaults, err)
	}
}

// TestParseFlagsTLSErrors pins etcd 3.7.3's messages for the same flags.
func TestParseFlagsTLSErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-min-version", "TLS1.1"}, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-max-version", "TLS1.4"}, `unexpected TLS version "TLS1.4" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, "cipher suites cannot be configured when only TLS1.3 is enabled"},
		{[]string{"--cipher-suites", "FOO"}, `unexpected TLS cipher suite "FOO"`},
		{[]string{"--auto-tls", "--self-signed-cert-validity", "0"}, "selfSignedCertValidity is invalid,it should be greater than 0"},
	} {
		_, err := parseConfig(c.args)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
