package watch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The benchmarks measure the hub's own work: Notify's fan-out and the
// streams' Take (what the server's send loop does before marshalling), or
// a catch-up round. They leave out gRPC and, for the fan-out, the store:
// events are made as the node's Output.Events are (Kv and PrevKv set), one
// put of benchValueBytes per revision.
const (
	benchValueBytes = 256
	// benchWatchersPerStream is how many watchers share one stream, as a
	// client multiplexes the watches of one context over one stream.
	benchWatchersPerStream = 100
	// benchEventsChunk is how many events the fan-out benchmark makes at a
	// time, untimed.
	benchEventsChunk = 1 << 12
	// benchCatchUpKeys and benchCatchUpRevisions are the history a
	// catch-up reads: one put per revision, spread over the keys.
	benchCatchUpKeys      = 100
	benchCatchUpRevisions = 1000
	// benchWaitMax bounds the wait for one catch-up: a benchmark that
	// waits longer is stuck.
	benchWaitMax = 10 * time.Second
)

var errNoHistory = errors.New("watch benchmark: no history")

// fanOutStore is the fan-out benchmark's store: synced watchers never read
// history, so a catch-up fails loudly (and the delivered count with it).
type fanOutStore struct{}

func (fanOutStore) Rev() int64        { return 1 }
func (fanOutStore) CompactRev() int64 { return 0 }
func (fanOutStore) History([]byte, []byte, int64, int64, int) ([]*mvccpb.Event, int64, error) {
	return nil, 0, errNoHistory
}

// VersionBefore fails too: the benchmark's watchers do not ask for prev_kv.
func (fanOutStore) VersionBefore([]byte, int64) (*mvccpb.KeyValue, error) {
	return nil, errNoHistory
}

// eventSource makes one-event revisions of one key, after the store's
// revision, in chunks made with the timer stopped.
type eventSource struct {
	b     *testing.B
	key   []byte
	value []byte
	rev   int64 // the last revision made
	evs   []*mvccpb.Event
}

func newEventSource(b *testing.B, key string, rev int64) *eventSource {
	value := make([]byte, benchValueBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	return &eventSource{b: b, key: []byte(key), value: value, rev: rev}
}

// next returns the next revision's events, without PrevKv as the writer
// reports puts. The hub keeps them, so each event is new; key and value
// bytes are shared, as nothing changes them.
func (s *eventSource) next() []*mvccpb.Event {
	if len(s.evs) == 0 {
		s.b.StopTimer()
		s.evs = make([]*mvccpb.Event, benchEventsChunk)
		for i := range s.evs {
			s.rev++
			s.evs[i] = &mvccpb.Event{
				Type: mvccpb.Event_PUT,
				Kv:   &mvccpb.KeyValue{Key: s.key, Value: s.value, CreateRevision: 2, ModRevision: s.rev, Version: s.rev - 1},
			}
		}
		s.b.StartTimer()
	}
	ev := s.evs[:1:1]
	s.evs = s.evs[1:]
	return ev
}

// openStreams creates n watchers with req, benchWatchersPerStream to a
// stream, and takes their created responses.
func openStreams(b *testing.B, h *Hub, n int, req *pb.WatchCreateRequest) []*Stream {
	b.Helper()
	var streams []*Stream
	for i := range n {
		if i%benchWatchersPerStream == 0 {
			s := h.NewStream()
			b.Cleanup(s.Close)
			streams = append(streams, s)
		}
		streams[len(streams)-1].Create(req)
	}
	for _, s := range streams {
		for _, r := range s.Take() {
			if !r.Created || r.Canceled {
				b.Fatalf("create %v: %v", req, r.WatchResponse)
			}
		}
	}
	return streams
}

// takeEvents takes every stream's responses and counts their events.
func takeEvents(streams []*Stream) int {
	n := 0
	for _, s := range streams {
		for _, r := range s.Take() {
			n += len(r.Events)
		}
	}
	return n
}

// fanOutShapes are the watchers of the fan-out benchmark: all on the key
// written (found by one map lookup), or all on a prefix holding it (each
// range watcher is checked for every event).
var fanOutShapes = []struct {
	name string
	req  *pb.WatchCreateRequest
}{
	{"key", &pb.WatchCreateRequest{Key: []byte("bench/key")}},
	{"prefix", &pb.WatchCreateRequest{Key: []byte("bench/"), RangeEnd: []byte("bench0")}},
}

// BenchmarkFanOut notifies one revision of one event per op to n synced
// watchers without prev_kv, and takes every stream's responses: n events
// delivered per op.
func BenchmarkFanOut(b *testing.B) {
	for _, shape := range fanOutShapes {
		for _, n := range []int{1, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/watchers=%d", shape.name, n), func(b *testing.B) {
				h := New(fanOutStore{}, Config{}, nil)
				b.Cleanup(h.Close)
				streams := openStreams(b, h, n, shape.req)
				src := newEventSource(b, "bench/key", h.Rev())
				delivered := 0
				b.ReportAllocs()
				for b.Loop() {
					h.Notify(src.next())
					delivered += takeEvents(streams)
				}
				if delivered != b.N*n {
					b.Fatalf("delivered %d events, want %d (%d revisions to %d watchers)", delivered, b.N*n, b.N, n)
				}
				b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// catchUpEnv is a store on an in-memory filesystem holding
// benchCatchUpRevisions revisions under "bench/", and a hub fed with them.
type catchUpEnv struct {
	db    *pebble.DB
	store *mvcc.Store
	hub   *Hub
}

func newCatchUpEnv(b *testing.B, cfg Config) *catchUpEnv {
	b.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	store, err := mvcc.Open(db, mvcc.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := &catchUpEnv{db: db, store: store, hub: New(store, cfg, nil)}
	b.Cleanup(e.hub.Close)
	value := make([]byte, benchValueBytes)
	for i := range benchCatchUpRevisions {
		key := fmt.Appendf(nil, "bench/%03d", i%benchCatchUpKeys)
		if err := e.put(key, value); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// put writes one revision and notifies the hub, as the driver does.
func (e *catchUpEnv) put(key, value []byte) error {
	batch := e.db.NewIndexedBatch()
	defer batch.Close()
	w := e.store.NewWriter(batch)
	defer w.Close()
	if _, err := w.Put(&pb.PutRequest{Key: key, Value: value}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return err
	}
	w.Publish()
	e.hub.Notify(w.Events())
	return nil
}

// catchUpOnce creates a watcher with req on s, takes s's responses until
// the created one and want events came (not one more), and cancels it.
func catchUpOnce(b *testing.B, s *Stream, req *pb.WatchCreateRequest, want int) {
	s.Create(req)
	timeout := time.NewTimer(benchWaitMax)
	defer timeout.Stop()
	id, got := int64(InvalidWatchID), 0
	for id == InvalidWatchID || got < want {
		select {
		case <-s.Ready():
		case <-timeout.C:
			b.Fatalf("catch-up stuck: %d of %d events after %v", got, want, benchWaitMax)
		}
		for _, r := range s.Take() {
			if r.Created {
				if r.Canceled {
					b.Fatalf("create %v: %v", req, r.WatchResponse)
				}
				id = r.WatchId
			}
			got += len(r.Events)
		}
	}
	if got != want {
		b.Fatalf("caught up with %d events, want %d", got, want)
	}
	s.Cancel(id)
	s.Take()
}

// catchUpSources are where a catch-up finds its events: the hub's recent
// events, or the store's history (no recent events kept).
var catchUpSources = []struct {
	name string
	cfg  Config
}{{"memory", Config{}}, {"history", Config{RecentBytesMax: 1}}}

// BenchmarkCatchUp creates a prefix watcher from the first revision per op
// and waits until the hub's goroutine has caught it up with all
// benchCatchUpRevisions events (one round), then cancels it.
func BenchmarkCatchUp(b *testing.B) {
	for _, src := range catchUpSources {
		b.Run("source="+src.name, func(b *testing.B) {
			e := newCatchUpEnv(b, src.cfg)
			s := e.hub.NewStream()
			b.Cleanup(s.Close)
			req := &pb.WatchCreateRequest{Key: []byte("bench/"), RangeEnd: []byte("bench0"), StartRevision: 2}
			b.ReportAllocs()
			for b.Loop() {
				catchUpOnce(b, s, req, benchCatchUpRevisions)
			}
			b.ReportMetric(float64(b.N*benchCatchUpRevisions)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// quietLogger keeps Pebble's informational lines out of benchmark output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(f string, args ...any) { fmt.Printf(f+"\n", args...) }
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
