package etcdapi

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"

	"github.com/cairn-db/cairn/server/watch"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestPutThroughTheCodec: puts decoded by the core from their wire bytes
// store what the client sent, whatever the value's size, and answer with
// etcd's response.
func TestPutThroughTheCodec(t *testing.T) {
	m := startMember(t, watch.Config{}, Limits{})
	kv := pb.NewKVClient(m.conn)
	for _, size := range []int{0, 1, 100 << 10, 1 << 20} {
		value := bytes.Repeat([]byte{byte(size)}, size)
		resp, err := kv.Put(ctx(t), &pb.PutRequest{Key: []byte("k"), Value: value, PrevKv: true})
		if err != nil {
			t.Fatalf("put of %d bytes: %v", size, err)
		}
		got, err := m.client.Get(ctx(t), "k")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Kvs) != 1 || !bytes.Equal(got.Kvs[0].Value, value) || got.Kvs[0].ModRevision != resp.GetHeader().GetRevision() {
			t.Fatalf("put of %d bytes: stored %v, response revision %d", size, got.Kvs, resp.GetHeader().GetRevision())
		}
	}
}

// rawCodec sends a *[]byte as the message's bytes, whatever they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// TestMalformedPutFailsAsWithTheProtoCodec: bytes that are not a
// PutRequest fail with the code and message gRPC's own codec gives them.
func TestMalformedPutFailsAsWithTheProtoCodec(t *testing.T) {
	m := startMember(t, watch.Config{}, Limits{})
	plain := grpc.NewServer()
	pb.RegisterKVServer(plain, NewKV(nil))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(l)
	t.Cleanup(plain.Stop)
	call := func(addr string, msg []byte) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var out []byte
		return conn.Invoke(ctx(t), pb.KV_Put_FullMethodName, &msg, &out)
	}
	valid, err := proto.Marshal(&pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	for name, msg := range map[string][]byte{
		"cut short":         valid[:len(valid)-1],
		"bad tag":           {0x00},
		"length past end":   {0x12, 0x7f, 'v'},
		"overlong varint":   {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"invalid wire type": {0x0f},
	} {
		got, want := call(m.addr, msg), call(l.Addr().String(), msg)
		if got == nil || want == nil {
			t.Fatalf("%s: error %v, proto codec's %v", name, got, want)
		}
		if gs, ws := status.Convert(got), status.Convert(want); gs.Code() != ws.Code() || gs.Message() != ws.Message() {
			t.Errorf("%s: %v, proto codec's %v", name, got, want)
		}
	}
	// A message the fast decoder leaves to the protobuf library (an
	// unknown field) still puts.
	withUnknown := append(append([]byte(nil), valid...), 0x78, 0x01) // field 15, varint 1
	if err := call(m.addr, withUnknown); err != nil {
		t.Fatalf("put with an unknown field: %v", err)
	}
	if got, err := m.client.Get(ctx(t), "k"); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("after a put with an unknown field: %v, %v", got, err)
	}
}

// TestPutsReachTheCoreEncoded: the KV service's Put handler decodes into
// a wirePutRequest, and the codec makes of the received bytes (in as many
// pieces as gRPC hands it) a core request that carries them, so the put is
// not encoded again.
func TestPutsReachTheCoreEncoded(t *testing.T) {
	var handler grpc.MethodHandler
	for _, m := range KVServiceDesc().Methods {
		if m.MethodName == "Put" {
			handler = m.Handler
		}
	}
	var into any
	stop := errors.New("stop")
	if _, err := handler(&KV{}, context.Background(), func(v any) error { into = v; return stop }, nil); err != stop {
		t.Fatalf("handler: %v", err)
	}
	w, ok := into.(*wirePutRequest)
	if !ok {
		t.Fatalf("the Put handler decodes into %T, not a wirePutRequest", into)
	}
	want := &pb.PutRequest{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100), Lease: 5}
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewCodec(nil).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:7]), mem.SliceBuffer(b[7:])}, w); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(w.req.Put, want) || !w.req.Encoded() {
		t.Fatalf("codec made %v (encoded: %v), want %v carried encoded", w.req.Put, w.req.Encoded(), want)
	}
}
