package member

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// peerProbeIntervalTest makes the round trip to peers measured often
// enough for a test to see it.
const peerProbeIntervalTest = 20 * time.Millisecond

// holdPeerPorts listens on n loopback ports for members' peer URLs, which
// every member must know before any starts. The members serve these
// sockets (Config.PeerListeners): a port closed and listened on again
// later could be taken in between, by any socket on the machine.
func holdPeerPorts(t *testing.T, n int) ([]string, []net.Listener) {
	t.Helper()
	var urls []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		urls = append(urls, "http://"+l.Addr().String())
		ls = append(ls, l)
	}
	return urls, ls
}

// startPairWithMetrics starts a two-member cluster whose first member
// serves /metrics, and returns a client of the first member and its
// metrics URL. Cleanup stops both.
func startPairWithMetrics(t *testing.T) (*clientv3.Client, string) {
	t.Helper()
	peerURLs, peerListeners := holdPeerPorts(t, 2)
	initial := "m1=" + peerURLs[0] + ",m2=" + peerURLs[1]
	var members []*Member
	for i, name := range []string{"m1", "m2"} {
		cfg := testConfig(t.TempDir(), etcdapi.Limits{})
		cfg.Name = name
		cfg.ListenPeerURLs = []string{peerURLs[i]}
		cfg.InitialAdvertisePeerURLs = []string{peerURLs[i]}
		cfg.PeerListeners = peerListeners[i : i+1]
		cfg.InitialCluster = initial
		cfg.PeerProbeInterval = peerProbeIntervalTest
		if i == 0 {
			cfg.ListenMetricsURLs = []string{"http://127.0.0.1:0"}
		}
		m, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Stop(0) })
		members = append(members, m)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{members[0].listeners[0].Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Put(ctxT(t), "a", "1"); err != nil { // a quorum of two: both are up
		t.Fatal(err)
	}
	return c, "http://" + members[0].httpListeners[0].Addr().String()
}

// The peer network metrics of a member with a peer: bytes both ways, no
// send failures, round trips measured.
func TestPeerMetricsExported(t *testing.T) {
	_, base := startPairWithMetrics(t)
	body := scrapeUntil(t, base, "etcd_network_peer_round_trip_time_seconds_count")
	for _, name := range []string{
		"etcd_network_peer_sent_bytes_total", "etcd_network_peer_received_bytes_total",
		"etcd_network_peer_sent_failures_total", "etcd_network_peer_round_trip_time_seconds_count",
	} {
		v := metricValue(body, name)
		if v == "" {
			t.Fatalf("%s not exported:\n%s", name, grepLines(body, "etcd_network_peer"))
		}
		if name == "etcd_network_peer_sent_failures_total" && v != "0" {
			t.Errorf("%s = %s with a healthy peer", name, v)
		}
		if name != "etcd_network_peer_sent_failures_total" && v == "0" {
			t.Errorf("%s = 0", name)
		}
	}
}

func grepLines(body, substr string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// scrapeUntil reads base's /metrics until it has a sample of name (the
// first peer probe has to come back) or 10 s have passed, and returns the
// last page read.
func scrapeUntil(t *testing.T, base, name string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpGet(t, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		if metricValue(body, name) != "" || time.Now().After(deadline) {
			return body
		}
		time.Sleep(peerProbeIntervalTest)
	}
}
