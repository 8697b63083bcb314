package mvcc

import (
	"fmt"
	"math/bits"
	"runtime"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
)

// liveKeySet holds a 32-bit fingerprint of every key that exists at the
// published revision, so that a put of a key the cache of newest versions
// does not hold learns without reading Pebble that the key does not exist:
// the put creates it. That read was a seek through the memtables and, past
// the bloom filters, the levels that might hold the key's index entry (8-9
// % of a member's CPU under puts of new keys), where etcd looks the key up
// in the in-memory index it keeps of every key.
//
// A fingerprint that is present says only that the key may exist (another
// key may share it, about one in 4,000 with a million keys), and the put
// reads Pebble as before; an absent one says the key does not exist. So
// the set must never lack the fingerprint of a live key, and may keep
// fingerprints of keys no longer live. It is a multiset: two live keys of
// one fingerprint hold it twice, so that deleting one leaves the other's.
//
// Open fills it from the key index; a Writer records the keys its batch
// created and deleted (setKeyState) and Publish applies them, so a Writer
// closed without publishing leaves the set as it was. It is owned by the
// apply goroutine. It grows by doubling, and when it would pass its bound
// (Options.LiveKeySetBytes) the store drops it for good: puts read Pebble
// for every key the cache misses, as without it.
//
// The table is open addressing with linear probing: a slot holds a
// fingerprint, 0 for empty (fingerprints are never 0), and a fingerprint's
// home slot is its top bits, so growing needs no key. A deletion shifts
// the following probe run back instead of leaving a marker.
type liveKeySet struct {
	slots []uint32
	// table holds slots for the cleanup that releases them when the set
	// is dropped: outside the Go heap (allocOffHeap) from 64 KiB, like the
	// caches, so that the collector's target does not grow with it.
	table *liveKeyTable
	count int
	// shift is 32 - log2(len(slots)): a fingerprint's home is fp >> shift.
	shift uint
	// slotsMax is the most slots the bound allows.
	slotsMax int
}

// liveKeySlotsMin is the smallest table: 4 KiB.
const liveKeySlotsMin = 1 << 10

// liveKeyLoadMax is the load (in eighths) above which the table doubles:
// at 3/4 a probe run stays short.
const liveKeyLoadMax = 6

// liveKeyFingerprint is key's fingerprint, never 0.
func liveKeyFingerprint(key []byte) uint32 {
	fp := uint32(xxhash.Sum64(key) >> 32)
	if fp == 0 {
		fp = 1
	}
	return fp
}

// newLiveKeySet returns an empty set bounded to bytesMax bytes of slots,
// nil if the bound does not allow the smallest table.
func newLiveKeySet(bytesMax int64) *liveKeySet {
	slotsMax := 0
	if n := bytesMax / 4; n >= liveKeySlotsMin {
		slotsMax = 1 << (bits.Len64(uint64(n)) - 1) // a power of two
	}
	if slotsMax == 0 {
		return nil
	}
	s := &liveKeySet{slotsMax: slotsMax, table: &liveKeyTable{}}
	runtime.AddCleanup(s, (*liveKeyTable).free, s.table)
	s.resize(liveKeySlotsMin)
	return s
}

func (s *liveKeySet) resize(n int) {
	old := s.slots
	words := allocWords(n / 2) // n is a power of two, at least liveKeySlotsMin
	s.slots = unsafe.Slice((*uint32)(unsafe.Pointer(&words[0])), n)
	s.shift = uint(32 - bits.TrailingZeros(uint(n)))
	s.count = 0
	for _, fp := range old {
		if fp != 0 {
			s.insert(fp)
		}
	}
	s.table.free()
	s.table.words = words
}

// release frees the table now; the set must not be used after.
func (s *liveKeySet) release() {
	s.table.free()
	s.slots = nil
}

// liveKeyTable is the memory of a set's table (allocWords).
type liveKeyTable struct{ words []uint64 }

func (t *liveKeyTable) free() {
	if t.words != nil {
		freeWords(t.words)
	}
	t.words = nil
}

func (s *liveKeySet) home(fp uint32) int { return int(fp >> s.shift) }

func (s *liveKeySet) next(i int) int { return (i + 1) & (len(s.slots) - 1) }

// mayHold reports whether key may exist: false means it does not.
func (s *liveKeySet) mayHold(key []byte) bool {
	fp := liveKeyFingerprint(key)
	for i := s.home(fp); s.slots[i] != 0; i = s.next(i) {
		if s.slots[i] == fp {
			return true
		}
	}
	return false
}

// add enters one more live key of fingerprint fp. It reports false when
// the set would pass its bound: the caller must then drop the set, which
// no longer holds every live key.
func (s *liveKeySet) add(fp uint32) bool {
	if (s.count+1)*8 > len(s.slots)*liveKeyLoadMax {
		if 2*len(s.slots) > s.slotsMax {
			return false
		}
		s.resize(2 * len(s.slots))
	}
	s.insert(fp)
	return true
}

func (s *liveKeySet) insert(fp uint32) {
	i := s.home(fp)
	for s.slots[i] != 0 {
		i = s.next(i)
	}
	s.slots[i] = fp
	s.count++
}

// remove takes out one live key of fingerprint fp, which must be in the
// set: a key deleted was live, so its fingerprint was entered.
func (s *liveKeySet) remove(fp uint32) {
	i := s.home(fp)
	for s.slots[i] != fp {
		if s.slots[i] == 0 {
			panic("mvcc: a deleted key's fingerprint is not in the live key set")
		}
		i = s.next(i)
	}
	// Backward shift: move each later slot of the run into the hole when
	// the hole lies between its home and it (cyclically), so every
	// fingerprint stays reachable from its home without a gap.
	hole := i
	for j := s.next(i); s.slots[j] != 0; j = s.next(j) {
		h := s.home(s.slots[j])
		if (j-h)&(len(s.slots)-1) >= (j-hole)&(len(s.slots)-1) {
			s.slots[hole] = s.slots[j]
			hole = j
		}
	}
	s.slots[hole] = 0
	s.count--
}

// liveKeyChange is a key a Writer's batch created (live) or deleted.
type liveKeyChange struct {
	fp   uint32
	live bool
}

// applyLiveKeyChanges enters a published batch's creates and deletes in
// their order, and drops the set when it outgrows its bound.
func (s *Store) applyLiveKeyChanges(changes []liveKeyChange) {
	if s.live == nil {
		return
	}
	for _, c := range changes {
		if !c.live {
			s.live.remove(c.fp)
		} else if !s.live.add(c.fp) {
			s.live.release()
			s.live = nil
			return
		}
	}
}

// loadLiveKeys fills the set from the key index at Open: one entry per key
// that ever existed and was not compacted away, read in order. It stops
// at the bound, where the set is dropped: so Open reads at most as many
// entries as the bound's slots.
func (s *Store) loadLiveKeys() (err error) {
	if s.latest == nil {
		return nil // the set answers only what a cache miss asks
	}
	s.live = newLiveKeySet(s.opts.LiveKeySetBytes)
	if s.live == nil {
		return nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAll, prefixKeyIndex}, UpperBound: keyIndexEnd})
	if err != nil {
		return fmt.Errorf("load live keys: %w", err)
	}
	defer closeIter(it, &err)
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("load live keys: %w", err)
		}
		if decodeKeyState(it.Key(), v).deleted != 0 {
			continue
		}
		if !s.live.add(liveKeyFingerprint(userKeyOfIndexKey(it.Key()))) {
			s.live.release()
			s.live = nil
			return nil
		}
	}
	return it.Error()
}
