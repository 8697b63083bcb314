//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/tlsutil/tlstest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// tlsWriters and tlsPutsPerWriter size the TLS cluster's workload.
	tlsWriters       = 4
	tlsPutsPerWriter = 50
	// tlsLogTimeout bounds the wait for a member to log a refusal.
	tlsLogTimeout = 5 * time.Second
	// tlsRefusalTimeout bounds one refused etcdctl command; etcdctl's own
	// dial and command timeouts are shorter.
	tlsRefusalTimeout = 20 * time.Second
)

// tlsPKI is a throw-away CA with the certificates of the TLS tests: one
// certificate all members share (CN "member"), an authorised client's, and
// the bad ones (another CA's, a revoked one, a CN that is not "member", a
// member's for another address).
type tlsPKI struct {
	ca                                          *tlstest.CA
	member, client, stranger, revoked, intruder tlstest.Files
	crl                                         string
	// elsewhere is a member's certificate for another address.
	elsewhere tlstest.Files
}

func newTLSPKI(t *testing.T) *tlsPKI {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "cairn-e2e-ca")
	other := tlstest.NewCA(t, "another-ca")
	revoked := ca.Issue(t, "client", "127.0.0.1")
	p := &tlsPKI{
		ca:        ca,
		member:    ca.Issue(t, "member", "127.0.0.1", "localhost").Write(t, dir, "member", ca),
		client:    ca.Issue(t, "client", "127.0.0.1").Write(t, dir, "client", ca),
		stranger:  other.Issue(t, "client", "127.0.0.1").Write(t, dir, "stranger", other),
		revoked:   revoked.Write(t, dir, "revoked", ca),
		intruder:  ca.Issue(t, "intruder", "127.0.0.1").Write(t, dir, "intruder", ca),
		elsewhere: ca.Issue(t, "member", "10.9.9.9").Write(t, dir, "elsewhere", ca),
		crl:       filepath.Join(dir, "crl.der"),
	}
	tlstest.WriteFile(t, p.crl, ca.CRL(t, revoked))
	return p
}

// flags gives both ports mutual TLS, CRLs, and peers the CN "member" only.
func (p *tlsPKI) flags() []string {
	m := p.member
	return []string{
		"--cert-file", m.Cert, "--key-file", m.Key, "--trusted-ca-file", m.CA, "--client-cert-auth", "--client-crl-file", p.crl,
		"--peer-cert-file", m.Cert, "--peer-key-file", m.Key, "--peer-trusted-ca-file", m.CA, "--peer-client-cert-auth",
		"--peer-crl-file", p.crl, "--peer-cert-allowed-cn", "member",
	}
}

// clientTLS is what a client holding files dials with: the CA of the
// members, and the files' certificate, presented whatever CA the server
// asks for.
func (p *tlsPKI) clientTLS(t *testing.T, f tlstest.Files) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.PEM)
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}
}

// TestClusterTLS runs a 3-member cluster with mutual TLS on both ports, a
// workload through the official client and etcdctl, a fourth member
// joining over TLS, and a peer outside --peer-cert-allowed-cn; against
// etcd too, so the test itself is checked.
func TestClusterTLS(t *testing.T) {
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		t.Run(string(kind), func(t *testing.T) { testClusterTLS(t, kind) })
	}
}

func testClusterTLS(t *testing.T, kind Kind) {
	p := newTLSPKI(t)
	c := launchCluster(&Cluster{t: t, Kind: kind, Token: "e2e-tls-" + string(kind), extra: p.flags(), tls: p.clientTLS(t, p.client)}, 3)
	cli := c.Client()
	tlsWorkload(t, cli)
	for _, m := range c.Members {
		waitTLSCount(t, m, "tls/", tlsWriters*tlsPutsPerWriter)
	}

	ctl := func(args ...string) string {
		t.Helper()
		var endpoints []string
		for _, m := range c.Running() {
			endpoints = append(endpoints, m.ClientURL)
		}
		out, errOut, code := runCtlTLS(t, strings.Join(endpoints, ","), p.client, args...)
		if code != 0 {
			t.Fatalf("etcdctl %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	ctl("put", "tls/ctl", "through-etcdctl")
	if got := ctl("get", "tls/ctl", "--print-value-only"); got != "through-etcdctl\n" {
		t.Errorf("etcdctl get: %q", got)
	}
	if got := ctl("get", "tls/", "--prefix", "--count-only", "-w", "fields"); !strings.Contains(got, fmt.Sprintf("\"Count\" : %d", tlsWriters*tlsPutsPerWriter+1)) {
		t.Errorf("etcdctl count: %q", got)
	}
	if got := ctl("member", "list"); strings.Count(got, "https://127.0.0.1:") != 6 {
		t.Errorf("member list does not show 3 https peer and client URLs:\n%s", got)
	}
	ctl("endpoint", "status") // (endpoint health needs Alarm, which cairn lacks)

	// A fourth member joins over TLS and catches up through its peers.
	m4, _ := c.AddMember(cli, "m4", false)
	m4.Start()
	waitTLSCount(t, m4, "tls/", tlsWriters*tlsPutsPerWriter+1)

	// A peer with a good CA but the wrong CN is refused by the peer port.
	if err := dialPeer(p.clientTLS(t, p.intruder), c.Members[0]); err == nil {
		t.Error("the peer port served a certificate outside --peer-cert-allowed-cn")
	}
	if err := dialPeer(p.clientTLS(t, p.member), c.Members[0]); err != nil {
		t.Errorf("the peer port refused a member's certificate: %v", err)
	}
	// A member's certificate for another address is refused too (etcd's
	// peer SAN check, on by default).
	if err := dialPeer(p.clientTLS(t, p.elsewhere), c.Members[0]); err == nil {
		t.Error("the peer port served a certificate that does not name the address it came from")
	}
	if kind == KindCairn {
		waitLog(t, c.Members[0], "client certificate authentication failed")
		waitLog(t, c.Members[0], "is not among the certificate's SANs")
	}
}

// tlsWorkload writes tlsWriters*tlsPutsPerWriter keys concurrently, then
// checks them with a linearizable range.
func tlsWorkload(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, tlsWriters)
	for w := range tlsWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tlsPutsPerWriter {
				ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
				_, err := cli.Put(ctx, fmt.Sprintf("tls/%d/%03d", w, i), "v")
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put over TLS: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("tls/0/000"), "=", 1)).
		Then(clientv3.OpGet("tls/", clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	if err != nil || !resp.Succeeded || resp.Responses[0].GetResponseRange().Count != tlsWriters*tlsPutsPerWriter {
		t.Fatalf("txn over TLS: %+v, %v", resp, err)
	}
}

// waitTLSCount waits until member m serves count keys under prefix from its
// own copy (a serializable read), which it got through the peer port.
func waitTLSCount(t *testing.T, m *Member, prefix string, count int64) {
	t.Helper()
	cli := m.Client()
	deadline := time.Now().Add(clusterLeaderTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		cancel()
		got := int64(-1)
		if err == nil {
			got = resp.Count
		}
		if got == count {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d keys under %q, want %d (%v)", m.Name, got, prefix, count, err)
		}
		time.Sleep(clusterPollInterval)
	}
}

// dialPeer makes a TLS handshake with m's peer port and one read, which a
// refused certificate fails (under TLS 1.3 the server's refusal arrives
// after the client's side of the handshake is done).
func dialPeer(cfg *tls.Config, m *Member) error {
	conn, err := tls.Dial("tcp", strings.TrimPrefix(m.PeerURL, "https://"), cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A peer port speaks HTTP/2 (gRPC) or HTTP/1 (etcd); an HTTP/2 preface
	// gets an answer from both, a refused connection gets an alert.
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(clusterRequestTimeout))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func waitLog(t *testing.T, m *Member, text string) {
	t.Helper()
	deadline := time.Now().Add(tlsLogTimeout)
	for !logHas(m, text) {
		if time.Now().After(deadline) {
			t.Errorf("%s %s: log has no %q", m.Kind, m.Name, text)
			return
		}
		time.Sleep(clusterPollInterval)
	}
}

// runCtlTLS runs etcdctl against endpoints with the CA of the members and,
// unless f is empty, f's certificate; it returns stdout, stderr and the
// exit code.
func runCtlTLS(t *testing.T, endpoints string, f tlstest.Files, args ...string) (string, string, int) {
	t.Helper()
	bin := requireBin(t, "ETCDCTL_BIN")
	full := []string{"--endpoints", endpoints, "--dial-timeout", "2s", "--command-timeout", "3s"}
	if f.CA != "" {
		full = append(full, "--cacert", f.CA)
	}
	if f.Cert != "" {
		full = append(full, "--cert", f.Cert, "--key", f.Key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tlsRefusalTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(full, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && !isExitError(err) {
		t.Fatalf("etcdctl %v: %v", full, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}
