package mvcc

import (
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// checkLiveKeySet verifies the table against want, a multiset of
// fingerprints: the count, every fingerprint reachable from its home
// without an empty slot between, and each held as often as want says.
func checkLiveKeySet(t *testing.T, s *liveKeySet, want map[uint32]int) {
	t.Helper()
	held := map[uint32]int{}
	for i, fp := range s.slots {
		if fp == 0 {
			continue
		}
		held[fp]++
		for j := s.home(fp); j != i; j = s.next(j) {
			if s.slots[j] == 0 {
				t.Fatalf("slot %d holds %#x, unreachable from its home %d: slot %d is empty", i, fp, s.home(fp), j)
			}
		}
	}
	total := 0
	for fp, n := range want {
		if held[fp] != n {
			t.Fatalf("fingerprint %#x held %d times, want %d", fp, held[fp], n)
		}
		total += n
	}
	if s.count != total || len(held) != len(want) {
		t.Fatalf("count %d, %d distinct; want %d, %d", s.count, len(held), total, len(want))
	}
}

// The set against a model multiset, through growth and deletions, with
// fingerprints drawn from a few home slots so that probe runs are long,
// wrap around the table's end, and hold one fingerprint several times.
func TestLiveKeySetAgainstAModel(t *testing.T) {
	for _, homes := range []int{3, 64, 1 << 20} {
		t.Run(fmt.Sprintf("homes=%d", homes), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(homes), 1))
			s := newLiveKeySet(64 << 10) // up to 16,384 slots
			want := map[uint32]int{}
			var live []uint32
			draw := func() uint32 {
				// The top bits pick the home (the last homes of the
				// table, so runs wrap); a low bit varies within it.
				top := uint32(1<<32 - 1 - uint64(rng.IntN(homes))<<18)
				return top&^3 | uint32(rng.IntN(3)) + 1
			}
			for step := range 20000 {
				if len(live) > 0 && (rng.IntN(3) == 0 || len(live) >= 12000) {
					i := rng.IntN(len(live))
					fp := live[i]
					live[i] = live[len(live)-1]
					live = live[:len(live)-1]
					s.remove(fp)
					if want[fp]--; want[fp] == 0 {
						delete(want, fp)
					}
				} else {
					fp := draw()
					if !s.add(fp) {
						t.Fatalf("step %d: add refused at %d keys in %d slots (bound %d)", step, s.count, len(s.slots), s.slotsMax)
					}
					live = append(live, fp)
					want[fp]++
				}
				if step%997 == 0 {
					checkLiveKeySet(t, s, want)
				}
			}
			checkLiveKeySet(t, s, want)
		})
	}
}

func TestLiveKeySetRefusesToPassItsBound(t *testing.T) {
	if newLiveKeySet(4*liveKeySlotsMin-1) != nil {
		t.Fatal("a bound below the smallest table made a set")
	}
	s := newLiveKeySet(4 * 2 * liveKeySlotsMin)
	keys := 0
	for ; s.add(uint32(keys)*2654435761 | 1); keys++ {
	}
	if want := 2 * liveKeySlotsMin * liveKeyLoadMax / 8; keys != want || len(s.slots) != 2*liveKeySlotsMin {
		t.Fatalf("took %d keys in %d slots; want %d in %d", keys, len(s.slots), want, 2*liveKeySlotsMin)
	}
}

// putVersions puts each key once more, one Writer each, and returns the
// version each put made.
func (h *harness) putVersions(keys []string) []int64 {
	h.t.Helper()
	var versions []int64
	for _, k := range keys {
		events := h.write(func(w *Writer) {
			if _, err := w.Put(&pb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
				h.t.Fatal(err)
			}
		})
		versions = append(versions, events[0].Kv.Version)
	}
	return versions
}

// reopen opens the store again over the same database.
func (h *harness) reopen() {
	h.t.Helper()
	s, err := Open(h.db, h.s.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.s = s
}

// liveKeysGetWrong puts 200 keys, deletes every third, reopens the store
// (which loads the set from the key index), creates 200 more, and puts all
// 400 again through a cache of newest versions that holds a few: it
// reports a put whose version was not the one before it plus one, which a
// set that lacks a live key makes 1.
func liveKeysGetWrong(t *testing.T, plant bool) string {
	h := newHarnessWith(t, Options{LatestCacheBytes: propLatestCacheBytes, LiveKeySetBytes: 4 * liveKeySlotsMin, plantLiveKeysIgnoreWrites: plant})
	var first, second []string
	for i := range 200 {
		first = append(first, fmt.Sprintf("a%03d", i))
		second = append(second, fmt.Sprintf("b%03d", i))
	}
	h.putVersions(first)
	h.write(func(w *Writer) {
		for i := 0; i < len(first); i += 3 {
			if _, err := w.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(first[i])}); err != nil {
				t.Fatal(err)
			}
		}
	})
	h.reopen()
	if h.s.live == nil || h.s.live.count != len(first)-67 {
		t.Fatalf("after Open the set is %+v; want %d keys", h.s.live, len(first)-67)
	}
	h.putVersions(second)
	all := append(append([]string(nil), first...), second...)
	for i, v := range h.putVersions(all) {
		want := int64(2)
		if i < len(first) && i%3 == 0 {
			want = 1 // deleted, so created again
		}
		if v != want {
			return fmt.Sprintf("put of %s made version %d, want %d", all[i], v, want)
		}
	}
	return ""
}

// A put of a key the cache of newest versions does not hold asks the set
// whether the key exists; the set must hold every key created before Open
// and since, and lose the deleted ones. The planted bug (Writers' creates
// and deletes never entered) shows the test can fail.
func TestLiveKeySetHoldsEveryLiveKey(t *testing.T) {
	if wrong := liveKeysGetWrong(t, false); wrong != "" {
		t.Fatal(wrong)
	}
	if liveKeysGetWrong(t, true) == "" {
		t.Fatal("with plantLiveKeysIgnoreWrites every put made the right version: the test cannot fail")
	}
}

// A store whose keys outgrow the set's bound drops the set and reads
// Pebble for what the cache misses, at Open or later.
func TestLiveKeySetDroppedWhenOutgrown(t *testing.T) {
	h := newHarnessWith(t, Options{LatestCacheBytes: propLatestCacheBytes, LiveKeySetBytes: 4 * liveKeySlotsMin})
	var keys []string
	for i := range liveKeySlotsMin {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	h.putVersions(keys)
	if h.s.live != nil {
		t.Fatalf("%d keys in a set of %d slots: the set was not dropped", len(keys), liveKeySlotsMin)
	}
	for _, v := range h.putVersions(keys) {
		if v != 2 {
			t.Fatalf("a put after the set was dropped made version %d, want 2", v)
		}
	}
	h.reopen()
	if h.s.live != nil {
		t.Fatal("Open loaded a set its bound cannot hold")
	}
}
