package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestPutOverExistingKeyCopiesNoValue: a put of a 1 MiB value over an
// existing key, without prev_kv, allocates far less than the value, with
// the version it replaces in the memtable or in an sstable: it reads only
// that version's metadata. A put that decodes the old version whole copies
// its value and fails here; the prev_kv case shows that the measure sees
// such a copy.
func TestPutOverExistingKeyCopiesNoValue(t *testing.T) {
	const valueBytes = 1 << 20
	for _, flushed := range []bool{false, true} {
		for _, prevKV := range []bool{false, true} {
			t.Run(fmt.Sprintf("flushed=%v/prev_kv=%v", flushed, prevKV), func(t *testing.T) {
				allocated := putAllocatedBytes(t, valueBytes, flushed, prevKV)
				t.Logf("allocated %d bytes", allocated)
				switch {
				case !prevKV && raceEnabled:
					// Pebble built with the race detector wraps some of its
					// iterators, at random, in one that copies every key and
					// value it steps on, to catch misuse: a bound on what a
					// put allocates means nothing then. Without the race
					// detector (make test-unit) the bound is checked.
				case !prevKV && allocated >= valueBytes/8:
					t.Fatalf("a put of %d bytes over an existing key allocated %d bytes; want well under one value", valueBytes, allocated)
				case prevKV && allocated < valueBytes:
					t.Fatalf("a put with prev_kv allocated %d bytes, less than the value it returns (%d): the measure is broken", allocated, valueBytes)
				}
			})
		}
	}
}

// putAllocatedBytesAttempts is how many puts putAllocatedBytes measures:
// the count is process-wide, so a Pebble goroutine of another test that
// allocates meanwhile shows in one measure; the least of several is the
// put's own.
const putAllocatedBytesAttempts = 5

// putAllocatedBytes writes a key with a value of valueBytes, then measures
// the bytes a put over it allocates, into a batch large enough that the
// batch itself does not grow, and returns the least of several attempts.
func putAllocatedBytes(t *testing.T, valueBytes int, flushed, prevKV bool) uint64 {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}, DisableAutomaticCompactions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, s: s}
	value := bytes.Repeat([]byte{'v'}, valueBytes)
	key := []byte("key")
	h.write(func(w *Writer) {
		if _, err := w.Put(&pb.PutRequest{Key: key, Value: value}); err != nil {
			t.Fatal(err)
		}
	})
	if flushed {
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A read brings the sstable's block into the block cache, so that the
	// put measures what it decodes, not Pebble's cache fill.
	h.get(&pb.RangeRequest{Key: key})

	req := &pb.PutRequest{Key: key, Value: value, PrevKv: prevKV}
	least := uint64(math.MaxUint64)
	for range putAllocatedBytesAttempts {
		least = min(least, putOnceAllocatedBytes(t, s, req))
	}
	return least
}

// putOnceAllocatedBytes measures what req allocates in a Writer that is
// then discarded, so that every attempt replaces the committed version.
func putOnceAllocatedBytes(t *testing.T, s *Store, req *pb.PutRequest) uint64 {
	b := s.db.NewIndexedBatchWithSize(2 * len(req.Value))
	defer b.Close()
	w := s.NewWriter(b)
	defer w.Close()
	// The first request opens the Writer's iterator.
	if _, err := w.Put(&pb.PutRequest{Key: []byte("other"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := w.Put(req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if req.PrevKv && len(resp.PrevKv.GetValue()) != len(req.Value) {
		t.Fatalf("prev_kv of %d bytes, want %d", len(resp.PrevKv.GetValue()), len(req.Value))
	}
	return after.TotalAlloc - before.TotalAlloc
}

// TestPutAnswersAlikeWithAndWithoutPrevKV: reading only the metadata of
// the replaced version changes nothing but the prev_kv field: two stores
// given the same puts (over new and existing keys, with leases, with
// ignore_value and ignore_lease, inside txns), one with prev_kv and one
// without, give the same headers, write the same versions and report the
// same events, and prev_kv is the version replaced.
func TestPutAnswersAlikeWithAndWithoutPrevKV(t *testing.T) {
	plain, withPrev := newHarness(t), newHarness(t)
	puts := []*pb.PutRequest{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("a"), Value: []byte("2"), Lease: 7},
		{Key: []byte("b"), Value: []byte("3")},
		{Key: []byte("a"), IgnoreValue: true},
		{Key: []byte("a"), Value: []byte("4"), IgnoreLease: true},
		{Key: []byte("a"), Value: []byte("5")},
		{Key: []byte("b"), IgnoreValue: true, IgnoreLease: true},
	}
	for i, p := range puts {
		var prevWant *mvccpb.KeyValue
		if resp := withPrev.get(&pb.RangeRequest{Key: p.Key}); len(resp.Kvs) > 0 {
			prevWant = resp.Kvs[0]
		}
		asked := proto.Clone(p).(*pb.PutRequest)
		asked.PrevKv = true
		got := putOrTxn(plain, p, i%2 == 1)
		gotPrev := putOrTxn(withPrev, asked, i%2 == 1)
		if !proto.Equal(got.resp.Header, gotPrev.resp.Header) || got.resp.PrevKv != nil {
			t.Fatalf("put %d: header %v without prev_kv (prev %v), %v with", i, got.resp.Header, got.resp.PrevKv, gotPrev.resp.Header)
		}
		if !proto.Equal(gotPrev.resp.PrevKv, prevWant) {
			t.Fatalf("put %d: prev_kv %v, want %v", i, gotPrev.resp.PrevKv, prevWant)
		}
		if len(got.events) != 1 || len(gotPrev.events) != 1 || !proto.Equal(got.events[0], gotPrev.events[0]) || got.events[0].PrevKv != nil {
			t.Fatalf("put %d: events %v without prev_kv, %v with", i, got.events, gotPrev.events)
		}
		all := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}
		if a, b := plain.get(all), withPrev.get(all); !proto.Equal(a, b) {
			t.Fatalf("put %d: stores differ:\n%v\n%v", i, a, b)
		}
	}
}

type putResult struct {
	resp   *pb.PutResponse
	events []*mvccpb.Event
}

// putOrTxn applies p alone or as the only op of a txn.
func putOrTxn(h *harness, p *pb.PutRequest, inTxn bool) putResult {
	h.t.Helper()
	var out putResult
	out.events = h.write(func(w *Writer) {
		if !inTxn {
			resp, err := w.Put(p)
			if err != nil {
				h.t.Fatal(err)
			}
			out.resp = resp
			return
		}
		resp, err := w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: p}}}})
		if err != nil {
			h.t.Fatal(err)
		}
		out.resp = resp.Responses[0].GetResponsePut()
	})
	return out
}

// TestVersionBefore pins what a watcher with prev_kv gets for an event: the
// key's newest version below the event's revision, none for a create, the
// version before the txn for a delete that follows a put of the key in the
// same txn (as etcd, which reads it at mod_revision-1), and none once
// mod_revision-1 is compacted (etcd's read fails then).
func TestVersionBefore(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")                     // 2
	h.put("a", "2")                     // 3
	h.del("a", "")                      // 4
	h.put("a", "3")                     // 5
	events := h.write(func(w *Writer) { // 6: put a, then delete every key from a
		_, err := w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("4")}}},
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	})
	if len(events) != 2 || events[1].Type != mvccpb.Event_DELETE {
		t.Fatalf("txn events: %v", events)
	}
	value := func(rev int64) string {
		kv, err := h.s.VersionBefore([]byte("a"), rev)
		if err != nil {
			t.Fatal(err)
		}
		if kv == nil {
			return "none"
		}
		return fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
	}
	for _, c := range []struct {
		rev  int64
		want string
	}{{2, "none"}, {3, "1@2"}, {4, "2@3"}, {5, "none"}, {6, "3@5"}, {7, "none"}} {
		if got := value(c.rev); got != c.want {
			t.Errorf("version before %d: %s, want %s", c.rev, got, c.want)
		}
	}
	// History gives catch-ups the same PrevKv as VersionBefore gives live
	// events.
	hist, _, err := h.s.History([]byte("a"), nil, 6, 6, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || string(hist[0].PrevKv.GetValue()) != "3" || string(hist[1].PrevKv.GetValue()) != "3" {
		t.Fatalf("history at 6: %v", hist)
	}
	h.put("b", "1") // 7
	h.put("b", "2") // 8
	h.put("b", "3") // 9
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 8}); err != nil {
			t.Fatal(err)
		}
	})
	prev := func(rev int64) string {
		kv, err := h.s.VersionBefore([]byte("b"), rev)
		if err != nil {
			t.Fatal(err)
		}
		return string(kv.GetValue())
	}
	// etcd's range at 7 fails as compacted, at 8 it does not: before and
	// after compaction removed the versions.
	for _, stage := range []string{"before removal", "after removal"} {
		if got := prev(8); got != "" {
			t.Fatalf("%s, version before 8: %q, want none (compacted)", stage, got)
		}
		if got := prev(9); got != "2" {
			t.Fatalf("%s, version before 9: %q, want 2", stage, got)
		}
		for h.s.CompactPending() {
			b := h.db.NewBatch()
			if _, err := h.s.CompactStep(b, 2); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
	}
}
