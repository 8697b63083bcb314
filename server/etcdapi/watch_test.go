package etcdapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	"github.com/cairn-db/cairn/server/watch"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type seqRand struct{ n uint64 }

func (r *seqRand) Uint64() uint64 { r.n++; return r.n }

// testMember is one in-process member wired as member.go wires it: node,
// driver feeding the hub through OnEvents, KV and Watch over gRPC.
type testMember struct {
	client *clientv3.Client
	conn   *grpc.ClientConn
	hub    *watch.Hub
	addr   string
}

func startMember(t *testing.T, hubCfg watch.Config, limits Limits, watchOpts ...func(*Watch)) *testMember {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.Open(node.Config{
		ID: 1, InitialVoters: []uint64{1}, FS: vfs.NewMem(), Dir: "node",
		Rand: &seqRand{}, CacheBytes: 1 << 20, MemTableBytes: 1 << 20,
		ClusterID: 11, Limits: limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := watch.New(watch.NodeStore(n.Store()), hubCfg, quiet)
	d := driver.Start(n, driver.Config{TickInterval: 5 * time.Millisecond, Logger: quiet, OnEvents: hub.Notify})
	id := Identity{ClusterID: 11, MemberID: 1}
	if limits.MaxTxnOps == 0 {
		limits.MaxTxnOps = DefaultLimits.MaxTxnOps
	}
	if limits.MaxRequestBytes == 0 {
		limits.MaxRequestBytes = DefaultLimits.MaxRequestBytes
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(NewCodec(nil)))
	srv.RegisterService(KVServiceDesc(), NewKV(d))
	w := NewWatch(hub, id, func() uint64 { return n.Status().Term }, limits)
	for _, opt := range watchOpts {
		opt(w)
	}
	pb.RegisterWatchServer(srv, w)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		srv.Stop()
		d.Stop()
		hub.Close()
		n.Close()
	})
	return &testMember{client: c, conn: conn, hub: hub, addr: l.Addr().String()}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func (m *testMember) put(t *testing.T, key, value string) int64 {
	t.Helper()
	resp, err := m.client.Put(ctx(t), key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func evString(evs []*clientv3.Event) string {
	var out []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
		if ev.PrevKv != nil {
			s += fmt.Sprintf(" prev=%s", ev.PrevKv.Value)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// next returns the next response of a watch channel, failing after a while.
func next(t *testing.T, ch clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no watch response")
	}
	return clientv3.WatchResponse{}
}

func TestWatchWithOfficialClient(t *testing.T) {
	m := startMember(t, watch.Config{}, Limits{})
	m.put(t, "a/1", "1") // 2
	m.put(t, "a/2", "1") // 3
	m.put(t, "b", "1")   // 4
	if _, err := m.client.Delete(ctx(t), "a/1"); err != nil {
		t.Fatal(err) // 5
	}
	// History with prev_kv, then live events.
	ch := m.client.Watch(ctx(t), "a/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
	r := next(t, ch)
	if got, want := evString(r.Events), "PUT a/1=1@2; PUT a/2=1@3; DELETE a/1=@5 prev=1"; got != want {
		t.Fatalf("history: %s, want %s", got, want)
	}
	if r.Header.ClusterId != 11 || r.Header.MemberId != 1 || r.Header.RaftTerm == 0 {
		t.Fatalf("header %v", r.Header)
	}
	m.put(t, "a/2", "2")
	if got, want := evString(next(t, ch).Events), "PUT a/2=2@6 prev=1"; got != want {
		t.Fatalf("live: %s, want %s", got, want)
	}
	// Filter puts; watch from now.
	dels := m.client.Watch(ctx(t), "a/", clientv3.WithPrefix(), clientv3.WithFilterPut())
	m.put(t, "a/3", "1")
	if _, err := m.client.Delete(ctx(t), "a/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if got, want := evString(next(t, dels).Events), "DELETE a/2=@8; DELETE a/3=@8"; got != want {
		t.Fatalf("filtered: %s, want %s", got, want)
	}
	// RequestProgress on the client's stream.
	if err := m.client.RequestProgress(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for {
		r := next(t, dels)
		if r.IsProgressNotify() {
			if r.Header.Revision != 8 {
				t.Fatalf("progress at %d, want 8", r.Header.Revision)
			}
			break
		}
	}
}

func TestWatchCompactedCancels(t *testing.T) {
	m := startMember(t, watch.Config{}, Limits{})
	for i := range 4 {
		m.put(t, "k", fmt.Sprint(i)) // 2..5
	}
	if _, err := m.client.Compact(ctx(t), 4); err != nil {
		t.Fatal(err)
	}
	r := next(t, m.client.Watch(ctx(t), "k", clientv3.WithRev(3)))
	if !r.Canceled || r.CompactRevision != 4 || r.Err() != rpctypes.ErrCompacted {
		t.Fatalf("watch from compacted revision: canceled %v compact %d err %v", r.Canceled, r.CompactRevision, r.Err())
	}
	if got := evString(next(t, m.client.Watch(ctx(t), "k", clientv3.WithRev(4))).Events); got != "PUT k=2@4; PUT k=3@5" {
		t.Fatalf("watch from the compacted revision: %s", got)
	}
}

func TestWatchProgressNotify(t *testing.T) {
	m := startMember(t, watch.Config{ProgressNotifyInterval: 20 * time.Millisecond}, Limits{})
	m.put(t, "k", "1")
	ch := m.client.Watch(ctx(t), "k", clientv3.WithProgressNotify())
	r := next(t, ch)
	if !r.IsProgressNotify() || r.Header.Revision != 2 {
		t.Fatalf("want a progress notification at 2, got %+v", r)
	}
}

// TestWatchFragments: a revision larger than the request limit reaches a
// watcher that asked for fragments in several messages, and the client
// puts it back together; without fragment it comes in one.
func TestWatchFragments(t *testing.T) {
	m := startMember(t, watch.Config{}, Limits{MaxRequestBytes: 4096})
	// Each key written alone, then all in one txn: with prev_kv, that
	// revision's events are twice the request limit.
	var ops []clientv3.Op
	for i := range 10 {
		key, value := fmt.Sprintf("f/%d", i), strings.Repeat("x", 300)
		m.put(t, key, value)
		ops = append(ops, clientv3.OpPut(key, value))
	}
	txn, err := m.client.Txn(ctx(t)).Then(ops...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	rev := txn.Header.Revision
	r := next(t, m.client.Watch(ctx(t), "f/", clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithPrevKV(), clientv3.WithFragment()))
	if len(r.Events) != 10 {
		t.Fatalf("reassembled %d events, want 10", len(r.Events))
	}
	// The raw stream shows the fragments.
	stream, err := pb.NewWatchClient(m.conn).Watch(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	create := &pb.WatchCreateRequest{Key: []byte("f/"), RangeEnd: []byte("f0"), StartRevision: rev, PrevKv: true, Fragment: true}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || !resp.Created {
		t.Fatalf("created: %v %v", resp, err)
	}
	var fragments, events int
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		fragments++
		events += len(resp.Events)
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT || ev.Kv.ModRevision != rev || ev.PrevKv == nil {
				t.Fatalf("event %v", ev)
			}
		}
		if !resp.Fragment {
			break
		}
	}
	if fragments < 2 || events != 10 {
		t.Fatalf("%d fragments with %d events", fragments, events)
	}
}

// TestWatchStalledConsumer: a client that never reads its watch does not
// hold up writes, and a reader that then starts gets every event.
//
// The work is bounded by bytes and events, not by a deadline: ≈5 MB of
// events (past gRPC's flow-control windows and its 4 MiB message limit)
// in stalledWrites puts of 64 KiB, far more than the hub's buffer of
// stalledBufferEventsMax, so the watcher falls behind and is caught up.
// The stream's context is only a hang guard, far above what the test
// needs even on a loaded machine (it used to be 1200 puts of 4 KiB under
// a 10 s deadline, which a full `make test` sometimes exceeded).
func TestWatchStalledConsumer(t *testing.T) {
	const (
		stalledWrites          = 80
		stalledValueBytes      = 64 << 10
		stalledBufferEventsMax = 8
		stalledHangGuard       = 2 * time.Minute
	)
	m := startMember(t, watch.Config{BufferEventsMax: stalledBufferEventsMax, ResyncInterval: time.Millisecond}, Limits{})
	streamCtx, cancel := context.WithTimeout(context.Background(), stalledHangGuard)
	t.Cleanup(cancel)
	stalled, err := pb.NewWatchClient(m.conn).Watch(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	create := &pb.WatchCreateRequest{Key: []byte("s")}
	if err := stalled.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("v", stalledValueBytes)
	for range stalledWrites {
		m.put(t, "s", value)
	}
	got, receivedBytes := 0, 0
	for got < stalledWrites {
		resp, err := stalled.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			if want := int64(got + 2); ev.Kv.ModRevision != want || len(ev.Kv.Value) != stalledValueBytes {
				t.Fatalf("event at %d with %d bytes, want %d with %d", ev.Kv.ModRevision, len(ev.Kv.Value), want, stalledValueBytes)
			}
			got++
			receivedBytes += len(ev.Kv.Value)
		}
	}
	if receivedBytes < 5_000_000 {
		t.Fatalf("received %d bytes of values, want ≥ 5 MB", receivedBytes)
	}
}

// openWatchers opens n watchers of key on one raw stream and reads their
// created responses.
func openWatchers(t *testing.T, m *testMember, key string, n int) pb.Watch_WatchClient {
	t.Helper()
	stream, err := pb.NewWatchClient(m.conn).Watch(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		create := &pb.WatchCreateRequest{Key: []byte(key)}
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if resp, err := stream.Recv(); err != nil || !resp.Created {
			t.Fatalf("created: %v %v", resp, err)
		}
	}
	return stream
}

// putAndWaitForHub puts key=value and waits until the hub was notified of
// the put, so its events are queued before the caller goes on.
func (m *testMember) putAndWaitForHub(t *testing.T, key, value string) int64 {
	t.Helper()
	rev := m.put(t, key, value)
	for m.hub.Rev() < rev {
		select {
		case <-ctx(t).Done():
			t.Fatalf("the hub never saw revision %d", rev)
		case <-time.After(time.Millisecond):
		}
	}
	return rev
}

// testFanOutResponsesMin is the hub's pacing threshold in these tests.
const testFanOutResponsesMin = 8

// TestWatchFanOutStreamPausesAndMerges: after a take of at least
// FanOutResponsesMin responses the stream's sender pauses as long as the
// hub says, and the events that come meanwhile reach each watcher in one
// response. The pause is the test's to end, so nothing depends on timing.
func TestWatchFanOutStreamPausesAndMerges(t *testing.T) {
	const watchers = testFanOutResponsesMin + 2
	var holding atomic.Bool
	paused, release := make(chan struct{}, 1), make(chan struct{})
	cfg := watch.Config{FanOutResponsesMin: testFanOutResponsesMin, FanOutPause: time.Hour}
	m := startMember(t, cfg, Limits{}, func(w *Watch) {
		w.pause = func(ctx context.Context, d time.Duration) error {
			if d != cfg.FanOutPause {
				t.Errorf("paused %v, want the hub's %v", d, cfg.FanOutPause)
			}
			if !holding.Load() {
				return nil // the created responses, if they were taken together
			}
			paused <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	stream := openWatchers(t, m, "k", watchers)
	holding.Store(true)
	first := m.put(t, "k", "v1")
	for range watchers {
		resp, err := stream.Recv()
		if err != nil || len(resp.Events) != 1 || resp.Events[0].Kv.ModRevision != first {
			t.Fatalf("response to the first put: %v %v", resp, err)
		}
	}
	select {
	case <-paused:
	case <-ctx(t).Done():
		t.Fatal("the stream did not pause after a take of every watcher's response")
	}
	var revs []int64
	for _, v := range []string{"v2", "v3", "v4"} {
		revs = append(revs, m.putAndWaitForHub(t, "k", v))
	}
	holding.Store(false)
	close(release)
	seen := map[int64]bool{}
	for range watchers {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if seen[resp.WatchId] || len(resp.Events) != len(revs) {
			t.Fatalf("watcher %d: a second response, or %d events where the pause should have merged %d", resp.WatchId, len(resp.Events), len(revs))
		}
		seen[resp.WatchId] = true
		for i, ev := range resp.Events {
			if ev.Kv.ModRevision != revs[i] {
				t.Fatalf("watcher %d: event %d at revision %d, want %d", resp.WatchId, i, ev.Kv.ModRevision, revs[i])
			}
		}
	}
}

// TestWatchStreamOfFewWatchersNeverPauses: a stream of fewer watchers than
// FanOutResponsesMin never takes that many responses at once, so it never
// pauses.
func TestWatchStreamOfFewWatchersNeverPauses(t *testing.T) {
	const watchers = testFanOutResponsesMin - 1
	cfg := watch.Config{FanOutResponsesMin: testFanOutResponsesMin}
	m := startMember(t, cfg, Limits{}, func(w *Watch) {
		w.pause = func(context.Context, time.Duration) error {
			t.Error("a stream of fewer watchers than FanOutResponsesMin paused")
			return nil
		}
	})
	stream := openWatchers(t, m, "k", watchers)
	for _, v := range []string{"v1", "v2", "v3"} {
		rev := m.put(t, "k", v)
		for range watchers {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			// Every response of the last put was read before this one.
			if len(resp.Events) != 1 || resp.Events[0].Kv.ModRevision != rev {
				t.Fatalf("response to the put at %d: %v", rev, resp.Events)
			}
		}
	}
}
