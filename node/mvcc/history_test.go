package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// historyRange is an etcd key range for the history tests.
type historyRange struct{ key, end string }

func (r historyRange) contains(key []byte) bool {
	switch {
	case r.end == "":
		return string(key) == r.key
	case r.end == "\x00":
		return string(key) >= r.key
	}
	return string(key) >= r.key && string(key) < r.end
}

// expectedHistory is the dumb reference: the writer's own events, filtered.
func expectedHistory(all []*mvccpb.Event, r historyRange, from, to int64) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range all {
		if rev := ev.Kv.ModRevision; rev >= from && rev <= to && r.contains(ev.Kv.Key) {
			out = append(out, ev)
		}
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

func equalEvents(a, b []*mvccpb.Event) bool {
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

// randomHistory applies n random writes (puts, range deletes, multi-key
// txns) over a few keys and returns every event the writers reported, with
// PrevKv read by VersionBefore once each write is published, as the watch
// hub reads it (the writers' events carry none).
func randomHistory(h *harness, rng *rand.Rand, n int) []*mvccpb.Event {
	var all []*mvccpb.Event
	for _, ev := range randomWrites(h, rng, n) {
		prev, err := h.s.VersionBefore(ev.Kv.Key, ev.Kv.ModRevision)
		if err != nil {
			h.t.Fatal(err)
		}
		all = append(all, &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev})
	}
	return all
}

// randomWrites applies randomHistory's writes and returns the writers'
// events.
func randomWrites(h *harness, rng *rand.Rand, n int) []*mvccpb.Event {
	keys := []string{"a", "a\x00", "ab", "b", "b/1", "b/2", "c", "\xff"}
	key := func() []byte { return []byte(keys[rng.IntN(len(keys))]) }
	var all []*mvccpb.Event
	for range n {
		all = append(all, h.write(func(w *Writer) {
			var err error
			switch rng.IntN(4) {
			case 0, 1:
				_, err = w.Put(&pb.PutRequest{Key: key(), Value: fmt.Appendf(nil, "v%d", rng.IntN(100))})
			case 2:
				k, e := key(), key()
				if bytes.Compare(k, e) > 0 {
					k, e = e, k
				}
				_, err = w.DeleteRange(&pb.DeleteRangeRequest{Key: k, RangeEnd: e})
			case 3:
				_, err = w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
					{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b/1"), Value: []byte("t")}}},
					{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}},
					{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b/2"), Value: []byte("t")}}},
				}})
			}
			if err != nil {
				h.t.Fatal(err)
			}
		})...)
	}
	return all
}

var historyRanges = []historyRange{
	{"a", ""}, {"b/1", ""}, {"missing", ""}, {"b/", "b0"}, {"a", "b"}, {"\x00", "\x00"},
	{"b", "\x00"}, {"c", "a"}, {"a\x00", "ab"},
}

// TestHistoryMatchesWriterEvents compares History, over every window and
// range, with the events the writers reported when they wrote.
func TestHistoryMatchesWriterEvents(t *testing.T) {
	for seed := range uint64(5) {
		h := newHarness(t)
		rng := rand.New(rand.NewPCG(seed, 1))
		all := randomHistory(h, rng, 60)
		rev := h.s.Rev()
		for _, r := range historyRanges {
			for from := int64(1); from <= rev+1; from += 1 + rng.Int64N(4) {
				to := from + rng.Int64N(rev-from+3)
				got, upTo, err := h.s.History([]byte(r.key), []byte(r.end), from, to, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if upTo != min(to, rev) {
					t.Fatalf("seed %d %q-%q [%d,%d]: up to %d, want %d", seed, r.key, r.end, from, to, upTo, min(to, rev))
				}
				want := expectedHistory(all, r, from, to)
				if !equalEvents(got, want) {
					t.Fatalf("seed %d %q-%q [%d,%d]:\ngot  %s\nwant %s", seed, r.key, r.end, from, to, eventsString(got), eventsString(want))
				}
			}
		}
	}
}

// TestHistoryBatchesWholeRevisions pages through the history with a small
// maxEvents: pages never split a revision, never exceed the bound unless one
// revision alone does, and together are the whole history.
func TestHistoryBatchesWholeRevisions(t *testing.T) {
	h := newHarness(t)
	all := randomHistory(h, rand.New(rand.NewPCG(7, 7)), 200)
	r := historyRange{"\x00", "\x00"}
	for _, maxEvents := range []int{1, 2, 3, 10} {
		var got []*mvccpb.Event
		for from := int64(1); from <= h.s.Rev(); {
			page, upTo, err := h.s.History([]byte(r.key), []byte(r.end), from, h.s.Rev(), maxEvents)
			if err != nil {
				t.Fatal(err)
			}
			if upTo < from {
				t.Fatalf("max %d: no progress from %d (up to %d)", maxEvents, from, upTo)
			}
			revs := map[int64]bool{}
			for _, ev := range page {
				revs[ev.Kv.ModRevision] = true
			}
			if len(page) > maxEvents && len(revs) > 1 {
				t.Fatalf("max %d: page of %d events over %d revisions", maxEvents, len(page), len(revs))
			}
			got = append(got, page...)
			from = upTo + 1
		}
		if want := expectedHistory(all, r, 1, h.s.Rev()); !equalEvents(got, want) {
			t.Fatalf("max %d: paged history differs:\ngot  %s\nwant %s", maxEvents, eventsString(got), eventsString(want))
		}
	}
}

// TestHistoryCompacted: below the compacted revision History fails; from it
// on, it returns what etcd's watch would (the puts at the compacted
// revision without PrevKv, later events whole), before and after removal.
func TestHistoryCompacted(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.put("a", "2") // 3
	h.put("b", "1") // 4
	h.del("b", "")  // 5
	h.put("a", "3") // 6
	h.put("c", "1") // 7
	h.put("a", "4") // 8
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 6}); err != nil {
			t.Fatal(err)
		}
	})
	check := func(stage string) {
		if _, _, err := h.s.History([]byte("a"), nil, 5, 10, 100); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
			t.Fatalf("%s: history from 5 after compaction at 6: %v", stage, err)
		}
		got, upTo, err := h.s.History([]byte{0}, []byte{0}, 6, 10, 100)
		if err != nil || upTo != 8 {
			t.Fatalf("%s: history from 6: up to %d, %v", stage, upTo, err)
		}
		want := "PUT \"a\"@6 prev=false; PUT \"c\"@7 prev=false; PUT \"a\"@8 prev=true; "
		if eventsString(got) != want {
			t.Fatalf("%s: history from 6:\ngot  %s\nwant %s", stage, eventsString(got), want)
		}
		if string(got[2].PrevKv.Value) != "3" {
			t.Fatalf("%s: prev of a@8 is %q", stage, got[2].PrevKv.Value)
		}
	}
	check("before removal")
	for done := false; !done; {
		b := h.db.NewBatch()
		var err error
		if done, err = h.s.CompactStep(b, 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	check("after removal")
}

// TestHistoryDeleteAtCompactedRevision: a delete at the compacted revision
// is reported without PrevKv, before and after physical removal, as etcd
// 3.7.3's watch does (server/e2e TestWatchFromCompactRevisionSameAsEtcd);
// the next compaction above it removes the tombstone.
func TestHistoryDeleteAtCompactedRevision(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.del("a", "")  // 3
	h.put("b", "1") // 4
	compact := func(rev int64) {
		h.write(func(w *Writer) {
			if _, err := w.Compact(&pb.CompactionRequest{Revision: rev}); err != nil {
				t.Fatal(err)
			}
		})
	}
	removeAll := func() {
		for done := false; !done; {
			b := h.db.NewBatch()
			var err error
			if done, err = h.s.CompactStep(b, 1); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
	compact(3)
	want := "DELETE \"a\"@3 prev=false; PUT \"b\"@4 prev=false; "
	for _, stage := range []string{"before removal", "after removal"} {
		got, _, err := h.s.History([]byte{0}, []byte{0}, 3, 4, 100)
		if err != nil || eventsString(got) != want {
			t.Fatalf("%s: history from 3: %s %v, want %s", stage, eventsString(got), err, want)
		}
		removeAll()
	}
	if n, _ := countVersions(h.db); n != 2 { // a's tombstone at 3, b@4
		t.Errorf("%d versions after compaction at 3, want 2", n)
	}
	// The key index entry of a still says created at 2; the tombstone
	// alone no longer shows it, and the check allows that.
	if err := h.s.VerifyKeyIndex(); err != nil {
		t.Errorf("key index after compaction at 3: %v", err)
	}
	compact(4)
	removeAll()
	if n, _ := countVersions(h.db); n != 1 { // b@4
		t.Errorf("%d versions after compaction at 4, want 1", n)
	}
	if resp := h.get(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 4}); keysOf(resp) != "b" {
		t.Errorf("read at 4: %v", resp)
	}
}

func TestHistoryEmptyWindows(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	for _, c := range []struct{ from, to, upTo int64 }{{3, 10, 2}, {2, 1, 1}, {5, 4, 2}} {
		got, upTo, err := h.s.History([]byte("a"), nil, c.from, c.to, 10)
		if err != nil || len(got) != 0 || upTo != c.upTo {
			t.Errorf("[%d,%d]: %s up to %d, %v; want nothing up to %d", c.from, c.to, eventsString(got), upTo, err, c.upTo)
		}
	}
}
