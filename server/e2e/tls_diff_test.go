//go:build e2e

package e2e

import (
	"crypto/tls"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/server/tlsutil/tlstest"
)

// tlsClientCase is one client of TestTLSRefusalsDiff: how etcdctl dials,
// and what cairn must log when it refuses it ("" for a client it serves).
type tlsClientCase struct {
	name      string
	plainText bool // dial http:// at the https port
	files     func(p *tlsPKI) tlstest.Files
	logged    string
}

var tlsClientCases = []tlsClientCase{
	{"good client", false, func(p *tlsPKI) tlstest.Files { return p.client }, ""},
	{"plain text on the TLS port", true, func(p *tlsPKI) tlstest.Files { return tlstest.Files{} }, "first record does not look like a TLS handshake"},
	{"no client certificate", false, func(p *tlsPKI) tlstest.Files { return tlstest.Files{CA: p.client.CA} }, "didn't provide a certificate"},
	// etcdctl (Go's TLS) does not send a certificate the server's CA list
	// does not name, so this refusal reads as the one above.
	{"certificate of another CA", false, func(p *tlsPKI) tlstest.Files {
		return tlstest.Files{CA: p.client.CA, Cert: p.stranger.Cert, Key: p.stranger.Key}
	}, "didn't provide a certificate"},
	{"revoked certificate", false, func(p *tlsPKI) tlstest.Files {
		return tlstest.Files{CA: p.client.CA, Cert: p.revoked.Cert, Key: p.revoked.Key}
	}, "revoked"},
}

// TestTLSRefusalsDiff runs etcdctl put with each client of tlsClientCases
// against a member of etcd and of cairn with the same flags (mutual TLS
// and a CRL on the client port): both must serve the good client and
// refuse the others with the same exit code and error; cairn must log why.
func TestTLSRefusalsDiff(t *testing.T) {
	p := newTLSPKI(t)
	members := map[Kind]*Member{}
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		c := launchCluster(&Cluster{t: t, Kind: kind, Token: "e2e-tls-diff", extra: p.flags(), tls: p.clientTLS(t, p.client)}, 1)
		members[kind] = c.Members[0]
	}
	for _, tc := range tlsClientCases {
		t.Run(tc.name, func(t *testing.T) {
			results := map[Kind]string{}
			for kind, m := range members {
				endpoint := m.ClientURL
				if tc.plainText {
					endpoint = strings.Replace(endpoint, "https://", "http://", 1)
				}
				stdout, stderr, code := runCtlTLS(t, endpoint, tc.files(p), "put", "tls-diff", "v")
				results[kind] = summarizeCtl(stdout, stderr, code)
			}
			t.Logf("etcdctl: %s", results[KindCairn])
			if results[KindEtcd] != results[KindCairn] {
				t.Errorf("etcdctl differs:\netcd:  %s\ncairn: %s", results[KindEtcd], results[KindCairn])
			}
			if tc.logged == "" {
				if results[KindCairn] != "exit 0: OK" {
					t.Errorf("the good client was not served: %s", results[KindCairn])
				}
				return
			}
			if strings.HasPrefix(results[KindCairn], "exit 0") {
				t.Errorf("cairn served a bad client")
			}
			waitLog(t, members[KindCairn], tc.logged)
		})
	}
}

// ctlErrorLine is the line etcdctl ends a failure with.
var ctlErrorLine = regexp.MustCompile(`(?m)^Error: .*$`)

// summarizeCtl reduces an etcdctl run to its exit code and its result:
// stdout on success, the final "Error:" line on failure (its retry logs
// name addresses and times that differ by run).
func summarizeCtl(stdout, stderr string, code int) string {
	if code == 0 {
		return "exit 0: " + strings.TrimSpace(stdout)
	}
	return "exit " + strconv.Itoa(code) + ": " + ctlErrorLine.FindString(stderr)
}

// TestTLSCertificateRotation replaces a running member's certificate and
// key on disk: the next connection gets the new certificate, with no
// restart, from etcd and cairn alike; clients keep working throughout.
func TestTLSCertificateRotation(t *testing.T) {
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		t.Run(string(kind), func(t *testing.T) {
			p := newTLSPKI(t)
			c := launchCluster(&Cluster{t: t, Kind: kind, Token: "e2e-tls-rotation", extra: p.flags(), tls: p.clientTLS(t, p.client)}, 1)
			m := c.Members[0]
			if cn := servedCN(t, p, m); cn != "member" {
				t.Fatalf("served CN %q before the rotation", cn)
			}
			rotated := p.ca.Issue(t, "member-rotated", "127.0.0.1")
			tlstest.WriteFile(t, p.member.Key, rotated.KeyPEM)
			tlstest.WriteFile(t, p.member.Cert, rotated.CertPEM)
			if cn := servedCN(t, p, m); cn != "member-rotated" {
				t.Fatalf("served CN %q after the rotation, want member-rotated", cn)
			}
			stdout, stderr, code := runCtlTLS(t, m.ClientURL, p.client, "put", "after-rotation", "v")
			if code != 0 || strings.TrimSpace(stdout) != "OK" {
				t.Fatalf("etcdctl put after the rotation: exit %d %s %s", code, stdout, stderr)
			}
		})
	}
}

// servedCN is the CN of the certificate m's client port presents now.
func servedCN(t *testing.T, p *tlsPKI, m *Member) string {
	t.Helper()
	conn, err := tls.Dial("tcp", m.Endpoint(), p.clientTLS(t, p.client))
	if err != nil {
		t.Fatalf("TLS dial %s: %v", m.Endpoint(), err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}
