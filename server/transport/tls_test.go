package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cairn-db/cairn/server/tlsutil/tlstest"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Two members' transports over mutual TLS, as --peer-client-cert-auth
// and --peer-cert-allowed-cn configure them: a member's certificate gets
// its messages delivered and the member list answered; a certificate of
// the same CA with another CN is refused, and the sender reports the peer
// unreachable.
func TestTransportOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "peer-ca")
	member := ca.Issue(t, "member", "127.0.0.1").Write(t, dir, "member", ca)
	intruder := ca.Issue(t, "intruder", "127.0.0.1").Write(t, dir, "intruder", ca)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	peerTLS := func(f tlstest.Files) tlsutil.Config {
		return tlsutil.Config{CertFile: f.Cert, KeyFile: f.Key, TrustedCAFile: f.CA, ClientCertAuth: true,
			AllowedCNs: []string{"member"}, CheckClientSAN: true, Logger: quiet}
	}

	delivered := make(chan *raftpb.Message, 1)
	receiver := New(Config{ClusterID: 7, MemberID: 2, Logger: quiet,
		Deliver:           func(m *raftpb.Message) { delivered <- m },
		ReportUnreachable: func(uint64) {}, ReportSnapshot: func(uint64, bool) {}})
	server, err := tlsutil.NewServer(peerTLS(member))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(receiver.ServerOptions(), grpc.Creds(tlsutil.Credentials(quiet)))...)
	receiver.Register(srv)
	go srv.Serve(server.Listener(l))
	defer srv.Stop()
	peerURL := "https://" + l.Addr().String()

	newSender := func(f tlstest.Files, unreachable chan<- uint64, logger *slog.Logger) *Transport {
		client, err := tlsutil.NewClient(peerTLS(f))
		if err != nil {
			t.Fatal(err)
		}
		s := New(Config{ClusterID: 7, MemberID: 1, TLS: client, Logger: logger,
			Deliver: func(*raftpb.Message) {}, ReportSnapshot: func(uint64, bool) {},
			ReportUnreachable: func(id uint64) {
				select {
				case unreachable <- id:
				default:
				}
			}})
		if err := s.AddPeer(2, []string{peerURL}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	heartbeat := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1)}

	refused := make(chan uint64, 1)
	var intruderLog tlstest.Log
	intruderSender := newSender(intruder, refused, slog.New(slog.NewTextHandler(&intruderLog, nil)))
	defer intruderSender.Stop()
	intruderSender.Send([]*raftpb.Message{heartbeat})
	select {
	case id := <-refused:
		if id != 2 {
			t.Fatalf("unreachable %x", id)
		}
	case m := <-delivered:
		t.Fatalf("a certificate outside the allowed CNs delivered %v", m)
	case <-time.After(10 * time.Second):
		t.Fatal("the refused sender never reported the peer unreachable")
	}

	// The refused sender says why, once, as a warning.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(intruderLog.String(), "cannot reach peer: TLS failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the refused sender did not warn; log:\n%s", intruderLog.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	memberSender := newSender(member, make(chan uint64, 1), quiet)
	defer memberSender.Stop()
	memberSender.Send([]*raftpb.Message{heartbeat})
	select {
	case m := <-delivered:
		if m.GetType() != raftpb.MsgHeartbeat || m.GetFrom() != 1 {
			t.Fatalf("delivered %v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a member's message was not delivered over TLS")
	}

	client, err := tlsutil.NewClient(peerTLS(member))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := FetchMembers(ctx, peerURL, client)
	if err != nil || resp.GetHeader().GetClusterId() != 7 {
		t.Fatalf("members over TLS: %v, %v", resp, err)
	}
	if _, err := FetchMembers(ctx, "http://"+l.Addr().String(), client); err == nil {
		t.Fatal("a plain-text dial of the TLS peer port was answered")
	}
}
