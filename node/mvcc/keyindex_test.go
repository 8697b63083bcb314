package mvcc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestKeyIndexCountsWithLimit checks counts from the index across
// deletions, recreations and historical revisions.
func TestKeyIndexCountsWithLimit(t *testing.T) {
	h := newHarness(t)
	for i := range 10 {
		h.put(fmt.Sprintf("k%d", i), "v")
	}
	afterCreate := h.s.Rev()
	h.del("k2", "k5") // k2, k3, k4
	afterDelete := h.s.Rev()
	h.put("k3", "again")
	h.put("k7", "update") // an update leaves the index alone
	for _, tc := range []struct {
		rev  int64
		want int64
	}{{afterCreate, 10}, {afterDelete, 7}, {0, 8}, {afterCreate - 5, 5}} {
		resp := h.get(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 1, Revision: tc.rev})
		if resp.Count != tc.want || len(resp.Kvs) != 1 || !resp.More {
			t.Errorf("at %d: count %d, %d kvs, more %v; want count %d", tc.rev, resp.Count, len(resp.Kvs), resp.More, tc.want)
		}
		only := h.get(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true, Revision: tc.rev})
		if only.Count != tc.want {
			t.Errorf("count_only at %d: %d, want %d", tc.rev, only.Count, tc.want)
		}
	}
	if err := h.s.VerifyKeyIndex(); err != nil {
		t.Fatal(err)
	}
}

// TestKeyIndexManyUnknownKeys reads far enough back that more than
// maxUnknownKeys keys were recreated since: the count walks the versions.
func TestKeyIndexManyUnknownKeys(t *testing.T) {
	h := newHarness(t)
	n := maxUnknownKeys + 10
	h.write(func(w *Writer) {
		for i := range n {
			if _, err := w.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "k%05d", i), Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
		}
	})
	first := h.s.Rev() // each put took a revision: k00000 exists from first-n+1
	h.del("k", "l")
	h.write(func(w *Writer) {
		for i := range n - 1 {
			if _, err := w.Put(&pb.PutRequest{Key: fmt.Appendf(nil, "k%05d", i), Value: []byte("w")}); err != nil {
				t.Fatal(err)
			}
		}
	})
	for rev, want := range map[int64]int64{first - 1: int64(n - 1), first: int64(n), first + 1: 0, 0: int64(n - 1)} {
		resp := h.get(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 3, Revision: rev})
		if resp.Count != want {
			t.Errorf("at %d: count %d, want %d", rev, resp.Count, want)
		}
	}
}

// TestKeyIndexBuiltOnOpen removes the index of a store, as a store written
// before the index existed has none, and checks Open rebuilds it.
func TestKeyIndexBuiltOnOpen(t *testing.T) {
	const bits = 2 // chunks of about 4 keys
	h := newHarnessWith(t, Options{chunkBits: bits})
	for i := range 25 {
		h.put(fmt.Sprintf("k%02d", i), "v")
	}
	h.del("k03", "k09")
	h.put("k05", "back")
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: h.s.Rev()}); err != nil {
			t.Fatal(err)
		}
	})
	for h.s.CompactPending() {
		b := h.db.NewBatch()
		if _, err := h.s.CompactStep(b, 4); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	want := h.get(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 2})
	if want.Count != 20 {
		t.Fatalf("count %d before the rebuild, want 20", want.Count)
	}
	if err := h.db.DeleteRange([]byte{prefixAll, prefixKeyIndex}, keyIndexEnd, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := h.db.DeleteRange(keyChunksStart, keyChunksEnd, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := h.db.Delete(metaKeyIndexKey, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := h.s.VerifyKeyIndex(); err == nil {
		t.Fatal("VerifyKeyIndex passed on a store without its index")
	}
	s, err := Open(h.db, Options{chunkBits: bits})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyKeyIndex(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Range(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 2})
	if err != nil || got.Count != want.Count {
		t.Fatalf("after the rebuild: count %v (%v), want %d", got.GetCount(), err, want.Count)
	}
}

// TestVerifyKeyIndexCatchesCorruption proves the check can fail: an entry
// that disagrees with the versions, and an entry without versions.
func TestVerifyKeyIndexCatchesCorruption(t *testing.T) {
	for name, corrupt := range map[string]func(db *pebble.DB) error{
		"wrong state": func(db *pebble.DB) error {
			return db.Set(appendIndexKey(nil, []byte("a")), encodeKeyState(nil, keyState{created: 2, deleted: 3}), pebble.NoSync)
		},
		"stray entry": func(db *pebble.DB) error {
			return db.Set(appendIndexKey(nil, []byte("zz")), encodeKeyState(nil, keyState{created: 2}), pebble.NoSync)
		},
		"missing entry": func(db *pebble.DB) error {
			return db.Delete(appendIndexKey(nil, []byte("b")), pebble.NoSync)
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.put("a", "1")
			h.put("b", "1")
			if err := h.s.VerifyKeyIndex(); err != nil {
				t.Fatal(err)
			}
			if err := corrupt(h.db); err != nil {
				t.Fatal(err)
			}
			if err := h.s.VerifyKeyIndex(); err == nil || !strings.Contains(err.Error(), "key index") {
				t.Fatalf("VerifyKeyIndex after corruption: %v", err)
			}
		})
	}
}

// boundaryKeys returns n user keys "c<i>" in order, each a chunk boundary
// or not as asked, for tests that need a given chunk layout.
func boundaryKeys(t *testing.T, chunkBits int, want ...bool) []string {
	t.Helper()
	var keys []string
	for i := 0; len(keys) < len(want) && i < 10000; i++ {
		k := fmt.Sprintf("c%04d", i)
		if isBoundary(appendIndexKey(nil, []byte(k)), chunkBits) == want[len(keys)] {
			keys = append(keys, k)
		}
	}
	if len(keys) < len(want) {
		t.Fatal("no keys with the chunk layout wanted")
	}
	return keys
}

// compactAll compacts at the current revision and finishes the removal,
// a few keys per step.
func (h *harness) compactAll() {
	h.t.Helper()
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: h.s.Rev()}); err != nil {
			h.t.Fatal(err)
		}
	})
	for h.s.CompactPending() {
		b := h.db.NewBatch()
		if _, err := h.s.CompactStep(b, 2); err != nil {
			h.t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			h.t.Fatal(err)
		}
	}
}

// TestKeyChunksMergeOnCompaction removes boundary keys whose chunks hold
// live keys: their counts move to the chunk before.
func TestKeyChunksMergeOnCompaction(t *testing.T) {
	const bits = 2
	h := newHarnessWith(t, Options{chunkBits: bits})
	// a (no boundary) | b1 (boundary) b2 | b3 (boundary) b4 | b5 (boundary) b6
	keys := boundaryKeys(t, bits, false, true, false, true, false, true, false)
	for _, k := range keys {
		h.put(k, "v")
	}
	h.del(keys[1], "")
	h.del(keys[3], "")
	h.put(keys[6], "update")
	h.compactAll()
	if err := h.s.VerifyKeyIndex(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from string
		rev  int64
		want int64
	}{{keys[0], 0, 5}, {keys[2], 0, 4}, {keys[5], 0, 2}} {
		resp := h.get(&pb.RangeRequest{Key: []byte(tc.from), RangeEnd: []byte("d"), Limit: 1, Revision: tc.rev})
		if resp.Count != tc.want {
			t.Errorf("from %s at %d: count %d, want %d", tc.from, tc.rev, resp.Count, tc.want)
		}
	}
	// A removed boundary comes back: it starts its chunk again.
	h.put(keys[3], "again")
	if err := h.s.VerifyKeyIndex(); err != nil {
		t.Fatal(err)
	}
	if resp := h.get(&pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("d"), CountOnly: true}); resp.Count != 6 {
		t.Errorf("count %d after the boundary came back, want 6", resp.Count)
	}
}

// TestKeyChunksDirty reads at a revision older than some chunks' latest
// change: those chunks are walked, the others added up.
func TestKeyChunksDirty(t *testing.T) {
	const bits = 1
	h := newHarnessWith(t, Options{chunkBits: bits})
	for i := range 200 {
		h.put(fmt.Sprintf("k%03d", i), "v")
	}
	mid := h.s.Rev()
	for i := 0; i < 200; i += 7 {
		h.del(fmt.Sprintf("k%03d", i), "")
	}
	for i := 200; i < 230; i++ {
		h.put(fmt.Sprintf("k%03d", i), "v")
	}
	if err := h.s.VerifyKeyIndex(); err != nil {
		t.Fatal(err)
	}
	model := func(rev int64, from int) int64 {
		n := int64(0)
		for i := from; i < 230; i++ {
			created := int64(i + 2)
			if i >= 200 {
				created = mid + 29 + int64(i-199)
			}
			deleted := int64(0)
			if i < 200 && i%7 == 0 {
				deleted = mid + 1 + int64(i/7)
			}
			if created <= rev && (deleted == 0 || deleted > rev) {
				n++
			}
		}
		return n
	}
	for _, rev := range []int64{mid - 50, mid, mid + 10, h.s.Rev()} {
		for _, from := range []int{0, 1, 77, 150, 229} {
			resp := h.get(&pb.RangeRequest{Key: fmt.Appendf(nil, "k%03d", from), RangeEnd: []byte("l"), Limit: 2, Revision: rev})
			if want := model(rev, from); resp.Count != want {
				t.Errorf("from k%03d at %d: count %d, want %d", from, rev, resp.Count, want)
			}
		}
	}
}

// TestKeyIndexCountEmptyRange: a count_only range whose end is not above
// its key is empty, as in etcd.
func TestKeyIndexCountEmptyRange(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("b", "1")
	for _, end := range []string{"a", "b"} {
		if resp := h.get(&pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte(end), CountOnly: true}); resp.Count != 0 {
			t.Errorf("count_only [b, %s): %d, want 0", end, resp.Count)
		}
	}
}
