package watch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// env is a store, a hub fed like the driver feeds it, and every event the
// writers reported: the reference the watchers are checked against.
type env struct {
	t     *testing.T
	db    *pebble.DB
	store *mvcc.Store
	hub   *Hub
	all   []*mvccpb.Event
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := mvcc.Open(db, mvcc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, store: store}
	e.hub = New(store, cfg)
	t.Cleanup(func() { db.Close() })
	return e
}

// write applies fn in one writer, publishes it, and returns its events
// without notifying the hub.
func (e *env) write(fn func(w *mvcc.Writer) error) []*mvccpb.Event {
	e.t.Helper()
	b := e.db.NewIndexedBatch()
	w := e.store.NewWriter(b)
	if err := fn(w); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		e.t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		e.t.Fatal(err)
	}
	w.Publish()
	evs := w.Events()
	e.all = append(e.all, evs...)
	return evs
}

func (e *env) put(key, value string) {
	e.hub.Notify(e.write(func(w *mvcc.Writer) error {
		_, err := w.Put(&pb.PutRequest{Key: []byte(key), Value: []byte(value)})
		return err
	}))
}

func (e *env) del(key, end string) {
	e.hub.Notify(e.write(func(w *mvcc.Writer) error {
		_, err := w.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)})
		return err
	}))
}

func (e *env) compact(rev int64) {
	e.write(func(w *mvcc.Writer) error {
		_, err := w.Compact(&pb.CompactionRequest{Revision: rev})
		return err
	})
}

// client reads one stream as the gRPC server would, recording what it got.
type client struct {
	t         *testing.T
	s         *Stream
	responses []Response
	events    map[int64][]*mvccpb.Event // by watch ID
}

func newClient(t *testing.T, h *Hub) *client {
	return &client{t: t, s: h.NewStream(nil), events: map[int64][]*mvccpb.Event{}}
}

// take takes what is queued and checks per-watcher order and atomicity:
// a revision never appears in two responses of one watcher.
func (c *client) take() []Response {
	c.t.Helper()
	rs := c.s.Take()
	for _, r := range rs {
		c.responses = append(c.responses, r)
		if len(r.Events) == 0 {
			continue
		}
		prev := c.events[r.WatchId]
		last := int64(0)
		if len(prev) > 0 {
			last = prev[len(prev)-1].Kv.ModRevision
		}
		if first := r.Events[0].Kv.ModRevision; first <= last {
			c.t.Fatalf("watch %d: response starts at revision %d after revision %d (order, duplicate or split revision)", r.WatchId, first, last)
		}
		for i := 1; i < len(r.Events); i++ {
			if r.Events[i].Kv.ModRevision < r.Events[i-1].Kv.ModRevision {
				c.t.Fatalf("watch %d: events out of order in one response", r.WatchId)
			}
		}
		if r.Header.Revision < r.Events[len(r.Events)-1].Kv.ModRevision {
			c.t.Fatalf("watch %d: header revision %d below its events", r.WatchId, r.Header.Revision)
		}
		c.events[r.WatchId] = append(prev, r.Events...)
	}
	return rs
}

// drainRoundsMax bounds drainUntil: rounds of taking and catching up.
const drainRoundsMax = 100000

// drainUntil takes and runs catch-up steps, as a driver does, until cond
// holds, failing if it does not within drainRoundsMax rounds.
func (c *client) drainUntil(what string, cond func() bool) {
	c.t.Helper()
	for round := 0; !cond(); round++ {
		if round == drainRoundsMax {
			c.t.Fatalf("no %s after %d rounds of taking and catching up", what, round)
		}
		c.take()
		c.catchUp()
	}
}

// catchUp runs catch-up steps while the hub wants them.
func (c *client) catchUp() {
	c.t.Helper()
	for steps := 0; c.s.hub.WantsCatchUp(); steps++ {
		if steps == drainRoundsMax {
			c.t.Fatalf("catch-up still busy after %d steps", steps)
		}
		if _, err := c.s.hub.CatchUp(); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *client) create(req *pb.WatchCreateRequest) *pb.WatchResponse {
	c.t.Helper()
	c.s.Create(req)
	for _, r := range c.take() {
		if r.Created {
			return r.WatchResponse
		}
	}
	c.t.Fatalf("no created response for %v", req)
	return nil
}

// spec is a watch and the events the reference says it must get.
type spec struct {
	req *pb.WatchCreateRequest
	id  int64
}

func (s spec) contains(key []byte) bool {
	k, end := s.req.Key, s.req.RangeEnd
	switch {
	case len(end) == 0:
		return bytes.Equal(key, k)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(key, k) >= 0
	}
	return bytes.Compare(key, k) >= 0 && bytes.Compare(key, end) < 0
}

// expected is what the watcher of s gets of all, every event since the
// store was empty: the events from startRev in its range, with PrevKv if
// it asked, as a dumb model of the keyspace tells it (the writers' events
// carry no PrevKv).
func (s spec) expected(all []*mvccpb.Event, startRev int64) []*mvccpb.Event {
	var out []*mvccpb.Event
	latest := map[string]*mvccpb.KeyValue{}
	for _, ev := range all {
		prev := latest[string(ev.Kv.Key)]
		if ev.Type == mvccpb.Event_PUT {
			latest[string(ev.Kv.Key)] = ev.Kv
		} else {
			delete(latest, string(ev.Kv.Key))
		}
		if ev.Kv.ModRevision < startRev || !s.contains(ev.Kv.Key) {
			continue
		}
		ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev}
		skip := false
		for _, f := range s.req.Filters {
			skip = skip || (f == pb.WatchCreateRequest_NOPUT && ev.Type == mvccpb.Event_PUT) ||
				(f == pb.WatchCreateRequest_NODELETE && ev.Type == mvccpb.Event_DELETE)
		}
		if skip {
			continue
		}
		if !s.req.PrevKv {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		out = append(out, ev)
	}
	return out
}

func eventsString(evs []*mvccpb.Event) string {
	var b bytes.Buffer
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %q@%d prev=%v; ", ev.Type, ev.Kv.Key, ev.Kv.ModRevision, ev.PrevKv != nil)
	}
	return b.String()
}

func sameEvents(a, b []*mvccpb.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

var testKeys = []string{"a", "a/1", "a/2", "b", "b/1", "c"}

func randomWatch(rng *rand.Rand, rev int64) *pb.WatchCreateRequest {
	req := &pb.WatchCreateRequest{Key: []byte(testKeys[rng.IntN(len(testKeys))]), PrevKv: rng.IntN(2) == 0}
	switch rng.IntN(4) {
	case 1:
		req.RangeEnd = []byte{req.Key[0] + 1}
	case 2:
		req.RangeEnd = []byte{0}
	}
	switch rng.IntN(4) {
	case 1:
		req.StartRevision = 1 + rng.Int64N(rev)
	case 2:
		req.StartRevision = rev + 1 + rng.Int64N(3)
	}
	switch rng.IntN(5) {
	case 1:
		req.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}
	case 2:
		req.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}
	}
	return req
}

// TestHubMatchesReference: random writes and watches, readers that take
// at random moments with small buffers (so watchers fall behind and catch
// up over and over): every watcher gets exactly the reference's events,
// ordered, whole revisions, no gap, no duplicate, prev_kv as asked.
func TestHubMatchesReference(t *testing.T) {
	// Catch-ups come from the recent events when they cover the start (a
	// large RecentBytesMax), from history when they don't (a tiny one),
	// and from both across the boundary.
	// A small BufferBytesMax makes catch-ups stop part way through a
	// history read.
	for _, bounds := range []struct{ recentBytesMax, bufferBytesMax int }{{1 << 24, 1 << 20}, {2000, 1 << 20}, {2000, 500}} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("recent%d/buffer%d/%d", bounds.recentBytesMax, bounds.bufferBytesMax, seed), func(t *testing.T) {
				testHubMatchesReference(t, seed, Config{RecentBytesMax: bounds.recentBytesMax, BufferBytesMax: bounds.bufferBytesMax})
			})
		}
	}
}

func testHubMatchesReference(t *testing.T, seed uint64, bounds Config) {
	if err := referenceMismatch(t, seed, bounds); err != nil {
		t.Fatal(err)
	}
}

// referenceMismatch runs the random workload of TestHubMatchesReference
// and describes the first watcher whose events differ from the
// reference's once the hub settled (nil if none does).
func referenceMismatch(t *testing.T, seed uint64, bounds Config) error {
	_, err := runReference(t, seed, bounds)
	return err
}

// runReference runs the random workload and returns the transcript of
// every response each client took, in order, and the first mismatch.
func runReference(t *testing.T, seed uint64, bounds Config) (string, error) {
	e := newEnv(t, Config{BufferEventsMax: 3, CatchUpEventsMax: 2, RecentBytesMax: bounds.RecentBytesMax,
		BufferBytesMax: bounds.BufferBytesMax, ResyncInterval: time.Millisecond, Knobs: bounds.Knobs})
	rng := rand.New(rand.NewPCG(seed, 99))
	clients := []*client{newClient(t, e.hub), newClient(t, e.hub), newClient(t, e.hub)}
	type watch struct {
		c        *client
		s        spec
		startRev int64
	}
	var watches []watch
	for i := range 300 {
		switch r := rng.IntN(10); {
		case r < 5:
			e.put(testKeys[rng.IntN(len(testKeys))], fmt.Sprint(i))
		case r < 6:
			e.del("a", "b")
		case r < 7:
			c := clients[rng.IntN(len(clients))]
			req := randomWatch(rng, e.store.Rev())
			resp := c.create(req)
			start := req.StartRevision
			if start == 0 {
				start = resp.Header.Revision + 1
			}
			watches = append(watches, watch{c: c, s: spec{req: req, id: resp.WatchId}, startRev: start})
		case r < 8:
			clients[rng.IntN(len(clients))].take()
		default:
			if _, err := e.hub.CatchUp(); err != nil {
				t.Fatal(err)
			}
		}
	}
	final := e.store.Rev()
	settle(t, e.hub, clients)
	var transcript bytes.Buffer
	for i, c := range clients {
		for _, r := range c.responses {
			fmt.Fprintf(&transcript, "client %d: id=%d rev=%d created=%v canceled=%v compact=%d events=%s\n",
				i, r.WatchId, r.Header.Revision, r.Created, r.Canceled, r.CompactRevision, eventsString(r.Events))
		}
	}
	for _, w := range watches {
		want := w.s.expected(e.all, w.startRev)
		if got := w.c.events[w.s.id]; !sameEvents(got, want) {
			return transcript.String(), fmt.Errorf("watch %d %v (start %d, rev %d):\ngot  %s\nwant %s", w.s.id, w.s.req, w.startRev, final, eventsString(got), eventsString(want))
		}
	}
	return transcript.String(), nil
}

// TestHubIsDeterministic: the same calls give the same responses in the
// same order, byte for byte (no map order leaks into what streams get),
// with bounds small enough that watchers fall behind and catch up.
func TestHubIsDeterministic(t *testing.T) {
	for seed := range uint64(3) {
		bounds := Config{RecentBytesMax: 2000, BufferBytesMax: 500}
		first, err := runReference(t, seed, bounds)
		if err != nil {
			t.Fatal(err)
		}
		for run := range 3 {
			again, err := runReference(t, seed, bounds)
			if err != nil {
				t.Fatal(err)
			}
			if again != first {
				t.Fatalf("seed %d: run %d took different responses than the first", seed, run+2)
			}
		}
	}
}

// settle takes and catches up, as a driver does, until no stream has
// anything queued and the hub wants no catch-up step.
func settle(t *testing.T, h *Hub, clients []*client) {
	t.Helper()
	for round := 0; ; round++ {
		if round == drainRoundsMax {
			t.Fatalf("hub not settled after %d rounds", round)
		}
		busy := h.WantsCatchUp()
		for _, c := range clients {
			busy = busy || c.s.Queued()
			c.take()
		}
		if !busy {
			return
		}
		clients[0].catchUp()
	}
}

// TestPlantedHandoverBugIsFound: the reference comparison catches a hub
// that loses the first revision after a catch-up hands a watcher over to
// the live feed (the simulator's watch-skips-handover-event plant).
func TestPlantedHandoverBugIsFound(t *testing.T) {
	for seed := range uint64(4) {
		if err := referenceMismatch(t, seed, Config{RecentBytesMax: 1 << 24, BufferBytesMax: 1 << 20, Knobs: Knobs{SkipHandoverEvent: true}}); err != nil {
			t.Logf("found with seed %d: %v", seed, err)
			return
		}
	}
	t.Fatal("4 seeds did not find the planted handover bug")
}

// TestSlowConsumerBounded: a stream that never reads does not slow the
// writer and holds at most BufferEventsMax events; once it reads, it is
// caught up from history with every event in order.
func TestSlowConsumerBounded(t *testing.T) {
	const bufferMax = 16
	e := newEnv(t, Config{BufferEventsMax: bufferMax, CatchUpEventsMax: 64, ResyncInterval: time.Millisecond})
	slow := newClient(t, e.hub)
	fast := newClient(t, e.hub)
	slowID := slow.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	fastID := fast.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	const writes = 5000
	for i := range writes {
		e.put("k", fmt.Sprint(i))
		if i%100 == 0 {
			fast.take()
		}
		pending := len(slow.s.queue)
		if pending > bufferMax+1 {
			t.Fatalf("after %d writes the slow stream holds %d responses, bound %d", i+1, pending, bufferMax)
		}
	}
	for _, c := range []struct {
		c  *client
		id int64
	}{{slow, slowID}, {fast, fastID}} {
		c.c.drainUntil("all events", func() bool { return len(c.c.events[c.id]) >= writes })
		want := spec{req: &pb.WatchCreateRequest{Key: []byte("k")}}.expected(e.all, 2)
		if !sameEvents(c.c.events[c.id], want) {
			t.Fatalf("watch %d got %d events, want %d", c.id, len(c.c.events[c.id]), len(want))
		}
	}
}

// TestSlowConsumerBoundedInBytes: with values of 64 KiB a stream that
// never reads holds at most BufferBytesMax of events (plus the one batch
// that may cross it), not BufferEventsMax of them; once it reads, it gets
// every event.
func TestSlowConsumerBoundedInBytes(t *testing.T) {
	const bufferBytesMax = 1 << 20
	e := newEnv(t, Config{BufferBytesMax: bufferBytesMax, RecentBytesMax: 4 << 20, ResyncInterval: time.Millisecond})
	slow := newClient(t, e.hub)
	id := slow.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true}).WatchId
	value := string(bytes.Repeat([]byte("v"), 64<<10))
	const writes = 200
	for i := range writes {
		e.put("k", fmt.Sprint(i)+value)
		queued := 0
		for _, r := range slow.s.queue {
			queued += eventsBytes(r.Events)
		}
		if queued > bufferBytesMax+2*(64<<10)+2*eventOverheadBytes {
			t.Fatalf("after %d writes of 64 KiB the slow stream holds %d bytes of events, bound %d", i+1, queued, bufferBytesMax)
		}
	}
	slow.drainUntil("all events", func() bool { return len(slow.events[id]) >= writes })
	want := spec{req: &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true}}.expected(e.all, 2)
	if !sameEvents(slow.events[id], want) {
		t.Fatalf("got %d events, want %d", len(slow.events[id]), len(want))
	}
}

// TestRecentWindowBoundedInBytes: the window of recent events holds at
// most RecentBytesMax whatever the value size, never less than a quarter
// of it once that much was written while a watcher behind it needs it,
// and always whole revisions.
func TestRecentWindowBoundedInBytes(t *testing.T) {
	const recentBytesMax = 1 << 20
	for _, valueBytes := range []int{10, 1 << 10, 20 << 10, 300 << 10, 2 << 20} {
		t.Run(fmt.Sprint(valueBytes), func(t *testing.T) {
			e := newEnv(t, Config{RecentBytesMax: recentBytesMax})
			// A watcher from the first revision, never caught up, needs
			// every event.
			newClient(t, e.hub).create(&pb.WatchCreateRequest{Key: []byte("unwritten"), StartRevision: 1})
			value := string(bytes.Repeat([]byte("v"), valueBytes))
			written := 0
			puts := min(400, max(20, 8*recentBytesMax/(2*valueBytes)))
			for i := range puts {
				e.put(fmt.Sprint("k", i%7), value)
				written += eventBytes(e.all[len(e.all)-1])
				got := e.hub.RecentBytes()
				if got > recentBytesMax {
					t.Fatalf("after %d puts of %d bytes the window holds %d bytes, bound %d", i+1, valueBytes, got, recentBytesMax)
				}
				if got < min(written, recentBytesMax/4-2*valueBytes-2*eventOverheadBytes) {
					t.Fatalf("after %d puts of %d bytes the window holds only %d bytes", i+1, valueBytes, got)
				}
				sum, from := eventsBytes(e.hub.recent), e.hub.recentFrom
				if n := len(e.hub.recent); n > 0 && (from != e.hub.recent[0].Kv.ModRevision || e.hub.recent[n-1].Kv.ModRevision != e.hub.rev) {
					t.Fatalf("window [%d..%d] does not end at the hub's revision %d or starts off %d", e.hub.recent[0].Kv.ModRevision, e.hub.recent[n-1].Kv.ModRevision, e.hub.rev, from)
				}
				if sum != got {
					t.Fatalf("window accounts %d bytes, holds %d", got, sum)
				}
			}
		})
	}
}

// TestRecentWindowKeepsWhatCatchUpsNeed: while every watcher keeps up, the
// window holds only its newest recentKeepBytes; a watcher that falls
// behind keeps every event from where it stopped, and is caught up from
// them; once it is caught up, the window shrinks back.
func TestRecentWindowKeepsWhatCatchUpsNeed(t *testing.T) {
	const recentBytesMax, valueBytes = 1 << 20, 1 << 10
	e := newEnv(t, Config{RecentBytesMax: recentBytesMax, BufferBytesMax: 64 << 10})
	keep := e.hub.recentKeepBytes()
	fast := newClient(t, e.hub)
	fastID := fast.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	value := string(bytes.Repeat([]byte("v"), valueBytes))
	eventMax := eventBytes(&mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte(value)}})
	written := 0
	checkKept := func(when string) {
		t.Helper()
		if got := e.hub.RecentBytes(); got > keep || got < min(written, keep-eventMax) {
			t.Fatalf("%s: the window holds %d bytes, want %d at most and %d at least", when, got, keep, min(written, keep-eventMax))
		}
	}
	put := func(i int) {
		e.put("k", fmt.Sprint(i)+value)
		written += eventBytes(e.all[len(e.all)-1])
		fast.take()
	}
	for i := range 200 {
		put(i)
		checkKept(fmt.Sprintf("after %d puts, all watchers synced", i+1))
	}

	// A stream that does not read falls behind at its buffer's bound.
	slow := newClient(t, e.hub)
	slowID := slow.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	for i := 200; i < 600; i++ {
		put(i)
	}
	w := e.hub.unsynced
	if len(w) != 1 || w[0].id != slowID {
		t.Fatalf("unsynced watchers %d, want the slow one", len(w))
	}
	if from := e.hub.recentFrom; from == 0 || from > w[0].minRev {
		t.Fatalf("the window starts at revision %d, after %d, which the slow watcher needs", from, w[0].minRev)
	}
	slow.drainUntil("every event", func() bool { return len(slow.events[slowID]) == 400 })
	want := spec{req: &pb.WatchCreateRequest{Key: []byte("k")}}.expected(e.all, e.all[200].Kv.ModRevision)
	if !sameEvents(slow.events[slowID], want) {
		t.Fatalf("the slow watcher got %d events, want %d", len(slow.events[slowID]), len(want))
	}
	put(600)
	slow.take()
	checkKept("after the slow watcher caught up")
	if got, want := len(fast.events[fastID]), 601; got != want {
		t.Fatalf("the fast watcher got %d events, want %d", got, want)
	}
}

// TestRecentWindowOnlyWhileWatched: a hub without watchers keeps no window,
// and watchers created from a past revision then, or after the window
// restarted, get every event from history and the window.
func TestRecentWindowOnlyWhileWatched(t *testing.T) {
	e := newEnv(t, Config{})
	for i := range 5 {
		e.put("k", fmt.Sprint(i)) // revisions 2..6
	}
	if got := e.hub.RecentBytes(); got != 0 {
		t.Fatalf("an unwatched hub holds %d bytes of events", got)
	}
	c := newClient(t, e.hub)
	first := c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2}).WatchId
	e.put("k", "5") // 7, while the watcher may still be catching up
	c.drainUntil("revisions 2..7", func() bool { return len(c.events[first]) == 6 })
	e.put("k", "6") // 8
	if e.hub.RecentBytes() == 0 {
		t.Fatal("a watched hub keeps no window")
	}
	c.s.Cancel(first)
	e.put("k", "7") // 9: unwatched again
	if got := e.hub.RecentBytes(); got != 0 {
		t.Fatalf("after its last watcher was canceled the hub holds %d bytes of events", got)
	}
	second := c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3}).WatchId
	e.put("k", "8") // 10
	c.drainUntil("revisions 3..10", func() bool { return len(c.events[second]) == 8 })
	for i, ev := range c.events[second] {
		if rev := int64(3 + i); ev.Kv.ModRevision != rev || string(ev.Kv.Value) != fmt.Sprint(rev-2) {
			t.Fatalf("event %d: revision %d value %q, want revision %d value %q", i, ev.Kv.ModRevision, ev.Kv.Value, rev, fmt.Sprint(rev-2))
		}
	}
}

// TestEventsShared: watchers of one key get the same event values, one
// copy without PrevKv shared by those that did not ask for it.
func TestEventsShared(t *testing.T) {
	e := newEnv(t, Config{})
	c := newClient(t, e.hub)
	e.put("k", "0")
	ids := []int64{}
	for _, prev := range []bool{true, true, false, false} {
		ids = append(ids, c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: prev}).WatchId)
	}
	e.put("k", "1")
	c.take()
	ev := func(i int) *mvccpb.Event { return c.events[ids[i]][0] }
	if ev(0) != ev(1) || ev(2) != ev(3) || ev(0) == ev(2) {
		t.Fatalf("events not shared: %p %p %p %p", ev(0), ev(1), ev(2), ev(3))
	}
	if ev(0).PrevKv == nil || ev(2).PrevKv != nil {
		t.Fatalf("prev_kv: %v / %v", ev(0), ev(2))
	}
}

// TestCreateAndCancelResponses pins etcd's control responses.
func TestCreateAndCancelResponses(t *testing.T) {
	e := newEnv(t, Config{})
	e.put("a", "1") // rev 2
	c := newClient(t, e.hub)
	check := func(got *pb.WatchResponse, want string) {
		t.Helper()
		g := fmt.Sprintf("id=%d created=%v canceled=%v reason=%q rev=%d", got.WatchId, got.Created, got.Canceled, got.CancelReason, got.Header.Revision)
		if g != want {
			t.Errorf("got  %s\nwant %s", g, want)
		}
	}
	check(c.create(&pb.WatchCreateRequest{Key: []byte("a")}), `id=0 created=true canceled=false reason="" rev=2`)
	check(c.create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}), `id=7 created=true canceled=false reason="" rev=2`)
	check(c.create(&pb.WatchCreateRequest{Key: []byte("a")}), `id=1 created=true canceled=false reason="" rev=2`)
	check(c.create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}), `id=-1 created=true canceled=true reason="mvcc: duplicate watch ID provided on the WatchStream" rev=2`)
	check(c.create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}), `id=-1 created=true canceled=true reason="mvcc: watcher range is empty" rev=2`)
	check(c.create(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: -1}), `id=-1 created=true canceled=true reason="etcdserver: mvcc: required revision has been compacted" rev=2`)
	c.s.Cancel(7)
	c.s.Cancel(42) // unknown: no answer
	rs := c.take()
	if len(rs) != 1 {
		t.Fatalf("cancel answers: %v", rs)
	}
	check(rs[0].WatchResponse, `id=7 created=false canceled=true reason="" rev=2`)
	e.put("a", "2")
	c.take()
	if len(c.events[7]) != 0 || len(c.events[0]) != 1 {
		t.Fatalf("events after cancel: %v", c.events)
	}
}

// TestCompactedStartRevision: a watch from below the compacted revision is
// canceled with compact_revision; from the compacted revision it works.
func TestCompactedStartRevision(t *testing.T) {
	e := newEnv(t, Config{ResyncInterval: time.Millisecond})
	for i := range 5 {
		e.put("k", fmt.Sprint(i)) // revs 2..6
	}
	e.compact(4)
	c := newClient(t, e.hub)
	old := c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3, WatchId: 5}).WatchId
	ok := c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 4}).WatchId
	var canceled *pb.WatchResponse
	c.drainUntil("compaction cancel", func() bool {
		for _, r := range c.responses {
			if r.WatchId == old && r.Canceled {
				canceled = r.WatchResponse
			}
		}
		return canceled != nil && len(c.events[ok]) == 3
	})
	if canceled.CompactRevision != 4 || len(c.events[old]) != 0 {
		t.Fatalf("cancel %v, events %v", canceled, c.events[old])
	}
	// The ID stays taken until the client cancels it, as in etcd.
	if r := c.create(&pb.WatchCreateRequest{Key: []byte("k"), WatchId: old}); !r.Canceled {
		t.Fatalf("reused compacted id: %v", r)
	}
}

// TestProgressNeverAhead: RequestProgress on a stream with a watcher that
// is catching up is answered only after the events up to its revision.
func TestProgressNeverAhead(t *testing.T) {
	e := newEnv(t, Config{BufferEventsMax: 2, CatchUpEventsMax: 2, ResyncInterval: time.Millisecond})
	for i := range 50 {
		e.put("k", fmt.Sprint(i))
	}
	c := newClient(t, e.hub)
	c.s.RequestProgress() // no watchers: no answer, as etcd
	id := c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2}).WatchId
	c.s.RequestProgress()
	var progress *pb.WatchResponse
	c.drainUntil("progress", func() bool {
		for _, r := range c.responses {
			if r.WatchId == InvalidWatchID && !r.Created {
				if progress == nil {
					progress = r.WatchResponse
					// Every event at or below it was received before.
					evs := c.events[id]
					if len(evs) == 0 || evs[len(evs)-1].Kv.ModRevision < progress.Header.Revision {
						t.Fatalf("progress at %d before events up to it (%d events)", progress.Header.Revision, len(evs))
					}
				}
			}
		}
		return progress != nil
	})
	if progress.Header.Revision != 51 {
		t.Fatalf("progress at %d, want 51", progress.Header.Revision)
	}
}

// TestPeriodicProgress: synced watchers with progress_notify get one per
// idle interval of the driver's clock, with their watch ID and the current
// revision; an interval with an event sends none.
func TestPeriodicProgress(t *testing.T) {
	const interval = 5 * time.Millisecond
	e := newEnv(t, Config{ProgressNotifyInterval: interval})
	e.put("k", "1")
	c := newClient(t, e.hub)
	id := c.create(&pb.WatchCreateRequest{Key: []byte("k"), ProgressNotify: true}).WatchId
	c.create(&pb.WatchCreateRequest{Key: []byte("k")}) // no progress_notify
	progress := func() (n int) {
		for _, r := range c.take() {
			if r.Created || len(r.Events) > 0 {
				continue
			}
			if r.WatchId != id || r.Header.Revision != e.hub.Rev() {
				t.Fatalf("unexpected progress %v", r.WatchResponse)
			}
			n++
		}
		return n
	}
	e.hub.Tick(0)
	e.hub.Tick(interval - 1)
	if n := progress(); n != 0 {
		t.Fatalf("%d progress notifications before the interval", n)
	}
	e.hub.Tick(interval)
	if n := progress(); n != 1 {
		t.Fatalf("%d progress notifications after one idle interval, want 1", n)
	}
	e.put("k", "2")
	e.hub.Tick(2 * interval)
	if n := progress(); n != 0 {
		t.Fatalf("%d progress notifications after an interval with an event", n)
	}
	e.hub.Tick(3 * interval)
	if n := progress(); n != 1 {
		t.Fatalf("%d progress notifications after the next idle interval, want 1", n)
	}
}

// TestNotifySkipsOldEvents: events at or below the hub's revision (a hub
// created late) are ignored, not delivered twice.
func TestNotifySkipsOldEvents(t *testing.T) {
	e := newEnv(t, Config{})
	evs := e.write(func(w *mvcc.Writer) error {
		_, err := w.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v")})
		return err
	})
	c := newClient(t, e.hub)
	id := c.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	e.hub.Notify(evs) // rev 2, published before the watch started at 3
	e.put("k", "w")
	c.take()
	if got := c.events[id]; len(got) != 1 || got[0].Kv.ModRevision != 3 {
		t.Fatalf("got %s", eventsString(got))
	}
}

var _ Store = (*mvcc.Store)(nil)

// quietLogger keeps Pebble's informational lines out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(f string, args ...any) { fmt.Printf(f+"\n", args...) }
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func TestResponseLength(t *testing.T) {
	ev := func(rev int64, size int) *mvccpb.Event {
		return &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: rev, Value: make([]byte, size)}}
	}
	evs := []*mvccpb.Event{ev(1, 100), ev(1, 100), ev(2, 100), ev(3, 500), ev(4, 10)}
	for _, c := range []struct{ max, want int }{{10, 2}, {250, 2}, {350, 3}, {10000, 5}} {
		if got := responseLength(evs, c.max); got != c.want {
			t.Errorf("max %d: %d events, want %d", c.max, got, c.want)
		}
	}
	if got := responseLength(evs[3:], 10); got != 1 {
		t.Errorf("one large revision: %d", got)
	}
}

// TestResyncCatchesUpAfterAJump: revisions the hub never saw (a snapshot
// install) reach every watcher through Resync and history; with the
// planted ResyncForgetsWatcher bug one watcher gets none of them.
func TestResyncCatchesUpAfterAJump(t *testing.T) {
	for _, planted := range []bool{false, true} {
		e := newEnv(t, Config{Knobs: Knobs{ResyncForgetsWatcher: planted}})
		e.put("a", "0")
		c := newClient(t, e.hub)
		ids := []int64{
			c.create(&pb.WatchCreateRequest{Key: []byte("a")}).WatchId,
			c.create(&pb.WatchCreateRequest{Key: []byte("a"), RangeEnd: []byte{0}}).WatchId,
		}
		for i := range 5 {
			e.write(func(w *mvcc.Writer) error { // applied without Notify, as an install
				_, err := w.Put(&pb.PutRequest{Key: []byte("a"), Value: []byte(fmt.Sprint(i))})
				return err
			})
		}
		e.hub.Resync()
		e.put("a", "live")
		settle(t, e.hub, []*client{c})
		complete := 0
		for _, id := range ids {
			if len(c.events[id]) == 6 {
				complete++
			}
		}
		if want := map[bool]int{false: 2, true: 1}[planted]; complete != want {
			t.Fatalf("planted=%v: %d of 2 watchers got all 6 events, want %d: %v", planted, complete, want, c.events)
		}
	}
}

// TestQueuedEventsMerge: a watcher's live responses that wait in the queue
// are sent as one, up to mergeBytesMax, in order and at the last one's
// revision; nothing is merged ahead of a progress notification.
func TestQueuedEventsMerge(t *testing.T) {
	e := newEnv(t, Config{})
	c := newClient(t, e.hub)
	a := c.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	b := c.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	describe := func(rs []Response) string {
		s := ""
		for _, r := range rs {
			s += fmt.Sprintf("[%d@%d:", r.WatchId, r.Header.Revision)
			for _, ev := range r.Events {
				s += fmt.Sprintf(" %s", ev.Kv.Value)
			}
			s += "]"
		}
		return s
	}
	for i := range 3 {
		e.put("k", fmt.Sprint(i)) // revs 2..4
	}
	if got, want := describe(c.take()), fmt.Sprintf("[%d@4: 0 1 2][%d@4: 0 1 2]", a, b); got != want {
		t.Fatalf("three puts queued:\ngot  %s\nwant %s", got, want)
	}

	e.put("k", "3") // rev 5
	c.s.RequestProgress()
	e.put("k", "4") // rev 6
	want := fmt.Sprintf("[%d@5: 3][%d@5: 3][-1@5:][%d@6: 4][%d@6: 4]", a, b, a, b)
	if got := describe(c.take()); got != want {
		t.Fatalf("around a progress notification:\ngot  %s\nwant %s", got, want)
	}

	big := string(bytes.Repeat([]byte("v"), mergeBytesMax/2))
	e.put("k", big) // rev 7
	e.put("k", big) // rev 8: does not fit beside rev 7
	e.put("k", "5") // rev 9
	rs := c.take()
	revs := ""
	for _, r := range rs {
		revs += fmt.Sprintf("[%d@%d: %d events]", r.WatchId, r.Header.Revision, len(r.Events))
	}
	if want := fmt.Sprintf("[%d@7: 1 events][%d@7: 1 events][%d@9: 2 events][%d@9: 2 events]", a, b, a, b); revs != want {
		t.Fatalf("large values:\ngot  %s\nwant %s", revs, want)
	}

	// A cancel drops a's queued response, which moves b's forward in the
	// queue; b's next events go after the canceled response, not into a
	// slot that no longer holds b's.
	e.put("k", "6") // rev 10
	c.s.Cancel(a)
	e.put("k", "7") // rev 11
	want = fmt.Sprintf("[%d@10: 6][%d@10:][%d@11: 7]", b, a, b)
	if got := describe(c.take()); got != want {
		t.Fatalf("around a cancel:\ngot  %s\nwant %s", got, want)
	}
}

// TestPauseAfterFanOutTake: a take of at least FanOutResponsesMin
// responses asks the sender to pause FanOutPause, a smaller one does not,
// and the events of the pause reach each watcher merged in one response.
func TestPauseAfterFanOutTake(t *testing.T) {
	cfg := Config{FanOutResponsesMin: 4, FanOutPause: 7 * time.Millisecond}
	e := newEnv(t, cfg)
	c := newClient(t, e.hub)
	for range cfg.FanOutResponsesMin {
		c.create(&pb.WatchCreateRequest{Key: []byte("k")})
		if d := c.s.Pause(); d != 0 {
			t.Fatalf("pause %v after taking one created response", d)
		}
	}
	e.put("k", "1")
	if rs := c.take(); len(rs) != cfg.FanOutResponsesMin || c.s.Pause() != cfg.FanOutPause {
		t.Fatalf("took %d responses and pause %v, want %d and %v", len(rs), c.s.Pause(), cfg.FanOutResponsesMin, cfg.FanOutPause)
	}
	e.put("k", "2")
	e.put("k", "3")
	rs := c.take()
	if len(rs) != cfg.FanOutResponsesMin || c.s.Pause() != cfg.FanOutPause {
		t.Fatalf("took %d responses and pause %v after the pause's puts", len(rs), c.s.Pause())
	}
	for _, r := range rs {
		if len(r.Events) != 2 {
			t.Fatalf("watch %d: %d events, want the pause's two merged", r.WatchId, len(r.Events))
		}
	}
	c.s.Cancel(rs[0].WatchId)
	e.put("k", "4")
	if rs := c.take(); len(rs) != cfg.FanOutResponsesMin || c.s.Pause() != cfg.FanOutPause {
		t.Fatalf("a cancel and three watchers' events: took %d, pause %v", len(rs), c.s.Pause())
	}
	e.put("k", "5")
	if rs := c.take(); len(rs) != cfg.FanOutResponsesMin-1 || c.s.Pause() != 0 {
		t.Fatalf("three watchers' events: took %d, pause %v, want no pause", len(rs), c.s.Pause())
	}
}
