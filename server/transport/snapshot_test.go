package transport

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// A snapshot streamed between two transports arrives staged on the
// receiver's filesystem, byte for byte, and only then is its MsgSnap
// delivered, naming the staged copy.
func TestSnapshotStreamStagesOnTheReceiversFS(t *testing.T) {
	const index = 42
	files := map[string][]byte{
		"000001.log": bytes.Repeat([]byte("wal"), 700_000), // more than one chunk
		"MANIFEST":   []byte("manifest"),
		"empty":      nil,
	}
	senderFS, receiverFS := vfs.NewMem(), vfs.NewMem()
	checkpoint := fmt.Sprintf("m1/snap/%016x", index)
	if err := senderFS.MkdirAll(checkpoint, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		f, err := senderFS.Create(checkpoint+"/"+name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		// A copy: with Pebble's invariants on (the race detector) the
		// in-memory filesystem scrambles the buffers it is given.
		f.Write(bytes.Clone(b))
		f.Close()
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	delivered := make(chan *raftpb.Message, 1)
	receiver := New(Config{ClusterID: 7, MemberID: 2, MemberDir: "m2", FS: receiverFS, Logger: quiet,
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

	reported := make(chan bool, 1)
	sender := New(Config{ClusterID: 7, MemberID: 1, MemberDir: "m1", FS: senderFS, Logger: quiet,
		Deliver:           func(*raftpb.Message) {},
		ReportUnreachable: func(uint64) {}, ReportSnapshot: func(_ uint64, ok bool) { reported <- ok }})
	defer sender.Stop()
	if err := sender.AddPeer(2, []string{"http://" + l.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	msg := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
		Snapshot: &raftpb.Snapshot{Data: []byte(fmt.Sprintf("snap/%016x", index)),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(3)}}}
	sender.Send([]*raftpb.Message{msg})

	var got *raftpb.Message
	select {
	case got = <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot was not delivered")
	}
	if ok := <-reported; !ok {
		t.Fatal("the sender was told the snapshot did not arrive")
	}
	staged := fmt.Sprintf("incoming/%016x", index)
	if string(got.GetSnapshot().GetData()) != staged || got.GetSnapshot().GetMetadata().GetTerm() != 3 {
		t.Fatalf("delivered %v", got)
	}
	names, err := receiverFS.List("m2/" + staged)
	if err != nil || len(names) != len(files) {
		t.Fatalf("staged %v, %v", names, err)
	}
	for name, want := range files {
		f, err := receiverFS.Open("m2/" + staged + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(b, want) {
			t.Fatalf("%s: %d bytes staged, %d sent", name, len(b), len(want))
		}
	}
}
