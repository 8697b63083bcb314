package mvcc

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

const testReadCacheBytes = 64 << 10

// TestReadCacheAnswersWhatPebbleWould reads single keys through the read
// cache and without it, after puts, overwrites, deletes and a compaction,
// at the published revision and at older ones: the answers must be equal,
// and the cache must answer the repeated reads.
func TestReadCacheAnswersWhatPebbleWould(t *testing.T) {
	cached := newHarnessWith(t, Options{ReadCacheBytes: testReadCacheBytes})
	plain := newHarness(t)
	both := func(fn func(h *harness)) { fn(cached); fn(plain) }
	reqs := func(rev int64) []*pb.RangeRequest {
		var out []*pb.RangeRequest
		for _, k := range []string{"a", "b", "c", "missing"} {
			out = append(out,
				&pb.RangeRequest{Key: []byte(k), Revision: rev},
				&pb.RangeRequest{Key: []byte(k), Revision: rev, CountOnly: true},
				&pb.RangeRequest{Key: []byte(k), Revision: rev, KeysOnly: true},
				&pb.RangeRequest{Key: []byte(k), Revision: rev, MinModRevision: 3},
				&pb.RangeRequest{Key: []byte(k), Revision: rev, Limit: 1, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND})
		}
		return out
	}
	check := func(what string) {
		t.Helper()
		rev := cached.s.Rev()
		for r := int64(0); r <= rev; r++ {
			for _, req := range reqs(r) {
				for range 2 { // the second read may come from the cache
					got, gotErr := cached.s.Range(req)
					want, wantErr := plain.s.Range(req)
					if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !proto.Equal(got, want) {
						t.Fatalf("%s: %v: cached %v (%v), want %v (%v)", what, req, got, gotErr, want, wantErr)
					}
				}
			}
		}
	}
	both(func(h *harness) { h.put("a", "1"); h.put("b", "1") })
	check("after puts")
	hits := cached.s.reads.hits.Load()
	if hits == 0 {
		t.Fatal("the cache answered no repeated read")
	}
	both(func(h *harness) { h.put("a", "2"); h.put("c", "1") })
	check("after an overwrite")
	both(func(h *harness) { h.del("b", "") })
	check("after a delete")
	both(func(h *harness) {
		h.write(func(w *Writer) {
			if _, err := w.Compact(&pb.CompactionRequest{Revision: 4}); err != nil {
				t.Fatal(err)
			}
		})
		h.compactAll()
	})
	check("after a compaction")
	if cached.s.reads.hits.Load() == hits {
		t.Fatal("the cache answered no read after the first writes")
	}
}

// TestRecordRingLookupsDuringWrites looks keys up while the writer
// replaces them, evicts and reuses the ring's words: every payload a
// lookup returns must be whole and its key's (the writer's generation,
// which names the key, and a run of bytes it derives from both), never
// torn by a record written over it meanwhile.
func TestRecordRingLookupsDuringWrites(t *testing.T) {
	for _, bytesMax := range []int64{4 << 10, 256 << 10} {
		t.Run(fmt.Sprint(bytesMax), func(t *testing.T) {
			r := newRecordRing(bytesMax, 1, readCacheSlotsShare)
			const keys, writes, readers = 50, 20_000, 2
			keyOf := func(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }
			payloadOf := func(gen uint64) []byte {
				p := binary.LittleEndian.AppendUint64(nil, gen)
				for j := range gen % 61 {
					p = append(p, byte(gen+j))
				}
				return p
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			errs := make(chan error, readers)
			var found atomic.Int64
			for n := range readers {
				wg.Go(func() {
					buf := make([]byte, 0, 16)
					for i := n; ; i++ {
						select {
						case <-stop:
							errs <- nil
							return
						default:
						}
						k := i % keys
						payload, ok := r.lookup(keyOf(k), buf, 8+61)
						if !ok {
							continue
						}
						found.Add(1)
						gen := binary.LittleEndian.Uint64(payload)
						if gen%keys != uint64(k) || string(payload) != string(payloadOf(gen)) {
							errs <- fmt.Errorf("key %d: payload %x, not its own", k, payload)
							return
						}
					}
				})
			}
			for gen := uint64(0); gen < writes; gen++ {
				key := keyOf(int(gen % keys))
				h := ringHash(key)
				if i, ok := r.find(key, h); ok {
					r.remove(i)
				}
				payload := payloadOf(gen)
				p, ok := r.reserve(key, len(payload))
				if !ok {
					t.Fatal("a record did not fit")
				}
				r.storeBytes(p, payload)
				r.link(key, h)
			}
			stopReaders(t, stop, &wg, errs)
			if found.Load() == 0 {
				t.Fatal("no lookup found a key")
			}
		})
	}
}

// TestReadCacheStaysWithinItsBound reads more keys than a small cache
// holds: it must evict, stay within its bound, and keep answering right.
func TestReadCacheStaysWithinItsBound(t *testing.T) {
	const bound = 8 << 10
	h := newHarnessWith(t, Options{ReadCacheBytes: bound})
	const keys = 200
	for i := range keys {
		h.put(fmt.Sprintf("key%03d", i), fmt.Sprintf("value %d", i))
	}
	for round := range 3 {
		for i := range keys {
			got := h.get(&pb.RangeRequest{Key: []byte(fmt.Sprintf("key%03d", i))})
			if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != fmt.Sprintf("value %d", i) {
				t.Fatalf("round %d, key %d: %v", round, i, got.Kvs)
			}
			if held := h.s.ReadCacheBytes(); held > bound {
				t.Fatalf("holds %d bytes, over its bound %d", held, bound)
			}
		}
	}
	// The last keys read are still there.
	for i := keys - 10; i < keys; i++ {
		h.get(&pb.RangeRequest{Key: []byte(fmt.Sprintf("key%03d", i))})
	}
	if h.s.reads.hits.Load() == 0 {
		t.Fatal("no read was answered from the cache")
	}
	// A value larger than the cache takes is read, never cached.
	big := string(make([]byte, bound))
	h.put("big", big)
	for range 2 {
		if got := h.get(&pb.RangeRequest{Key: []byte("big")}); string(got.Kvs[0].Value) != big {
			t.Fatal("large value read wrong")
		}
	}
}

// TestSingleKeyReadersSeeTheirRevision runs single-key readers while a
// writer rewrites every key in each revision, so a key's value is its
// revision's: a read whose value is older than its revision found a
// version the cache should have dropped.
func TestSingleKeyReadersSeeTheirRevision(t *testing.T) {
	h := newHarnessWith(t, Options{ReadCacheBytes: testReadCacheBytes})
	const keys, writes, readers = 4, 300, 3
	writeAll := func(i int) {
		txn := &pb.TxnRequest{}
		for k := range keys {
			txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprint(i))}}})
		}
		h.write(func(w *Writer) {
			if _, err := w.Txn(txn); err != nil {
				t.Error(err)
			}
		})
	}
	writeAll(0) // revision 2 holds value 0
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	stop := make(chan struct{})
	for r := range readers {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d", (i+r)%keys)
				resp, err := h.s.Range(&pb.RangeRequest{Key: []byte(key)})
				if err == nil {
					err = checkRevisionValue(resp)
				}
				if err != nil {
					errs <- err
					return
				}
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
			}
		})
	}
	for i := 1; i <= writes; i++ {
		writeAll(i)
	}
	stopReaders(t, stop, &wg, errs)
	if h.s.reads.hits.Load() == 0 {
		t.Fatal("no read was answered from the cache")
	}
}

// checkRevisionValue checks a single-key response of
// TestSingleKeyReadersSeeTheirRevision: the value of revision R is R-2.
func checkRevisionValue(resp *pb.RangeResponse) error {
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("rev %d: %d keys", resp.Header.Revision, len(resp.Kvs))
	}
	kv := resp.Kvs[0]
	if want := fmt.Sprint(resp.Header.Revision - 2); string(kv.Value) != want || kv.ModRevision != resp.Header.Revision {
		return fmt.Errorf("rev %d: %s=%s at %d, want %s (a stale cached version)", resp.Header.Revision, kv.Key, kv.Value, kv.ModRevision, want)
	}
	return nil
}

// TestCacheIndexesFitTheirRecords checks the index sizes the caches'
// memory at small data depends on (every page of an index is resident
// after a few thousand keys): the read cache's records carry values, so
// its index is a sixteenth of its bound where the newest version cache's,
// of short records, is a quarter.
func TestCacheIndexesFitTheirRecords(t *testing.T) {
	const bound = 8 << 20
	for _, c := range []struct {
		name       string
		recs       *recordRing
		slotsBytes int
	}{
		{"read cache", newReadCache(bound).recs, bound / 16},
		{"newest version cache", newLatestCache(bound).recordRing, bound / 4},
	} {
		if got := len(c.recs.slots) * ringSlotBytes; got != c.slotsBytes {
			t.Errorf("%s of %d bytes: index of %d bytes, want %d", c.name, bound, got, c.slotsBytes)
		}
		if got := (len(c.recs.slots) + len(c.recs.ring)) * 8; got != bound {
			t.Errorf("%s: index and ring take %d bytes, want the bound %d", c.name, got, bound)
		}
	}
}
