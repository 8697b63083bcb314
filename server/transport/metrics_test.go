package transport

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// metricsWait bounds the waits for messages and probes in the tests.
const metricsWait = 10 * time.Second

// sample returns the value of metric name with label value, as the
// transport's collectors export it: a counter's value or a histogram's
// sample count; -1 if there is no such sample.
func sample(t *testing.T, tr *Transport, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tr.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() != label {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// Bytes sent and received are counted per peer, in etcd's metrics with
// etcd's labels; the round trip to a peer is measured while its stream is
// up; messages that find the queue to an unreachable peer full count as
// send failures.
func TestPeerMetrics(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	delivered := make(chan *raftpb.Message, 16)
	receiver := New(Config{ClusterID: 7, MemberID: 2, Logger: quiet,
		Deliver:           func(m *raftpb.Message) { delivered <- m },
		ReportUnreachable: func(uint64) {}, ReportSnapshot: func(uint64, bool) {}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(receiver.ServerOptions()...)
	receiver.Register(srv)
	go srv.Serve(l)
	defer srv.Stop()

	sender := New(Config{ClusterID: 7, MemberID: 1, Logger: quiet, ProbeInterval: 20 * time.Millisecond, QueueLength: 1,
		Deliver: func(*raftpb.Message) {}, ReportUnreachable: func(uint64) {}, ReportSnapshot: func(uint64, bool) {}})
	defer sender.Stop()
	if err := sender.AddPeer(2, []string{"http://" + l.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	wantBytes := 0
	for i := range 3 {
		m := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(uint64(i + 1))}
		wantBytes += proto.Size(m)
		sender.Send([]*raftpb.Message{m})
		select {
		case <-delivered:
		case <-time.After(metricsWait):
			t.Fatalf("message %d was not delivered", i)
		}
	}
	if got := sample(t, sender, "etcd_network_peer_sent_bytes_total", "2"); got != float64(wantBytes) {
		t.Fatalf("sent bytes to 2: %v, want %d", got, wantBytes)
	}
	if got := sample(t, receiver, "etcd_network_peer_received_bytes_total", "1"); got != float64(wantBytes) {
		t.Fatalf("received bytes from 1: %v, want %d", got, wantBytes)
	}
	deadline := time.Now().Add(metricsWait)
	for sample(t, sender, "etcd_network_peer_round_trip_time_seconds", "2") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no round trips to peer 2 measured")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A peer nobody listens at: its queue holds one message, the others
	// fail.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddress := dead.Addr().String()
	dead.Close()
	if err := sender.AddPeer(3, []string{"http://" + deadAddress}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		sender.Send([]*raftpb.Message{{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(3), Term: proto.Uint64(uint64(i + 1))}})
	}
	if got := sample(t, sender, "etcd_network_peer_sent_failures_total", "3"); got < 3 {
		t.Fatalf("send failures to 3: %v, want at least 3 of 5 with a queue of 1", got)
	}
	if got := sample(t, sender, "etcd_network_peer_sent_failures_total", "2"); got != 0 {
		t.Fatalf("send failures to the live peer 2: %v", got)
	}
}
