package mvcc

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// recordRing is the storage of the store's two caches of newest versions
// (latestCache, readCache): records of a key and a payload, bounded in
// bytes (all of its memory: records and index), evicting the records
// inserted first (first in, first out: deterministic, so a seed replays
// the same reads).
//
// One goroutine, the apply goroutine, changes it; any number of readers
// may look keys up meanwhile (lookup), without a lock: the core has none.
// Every word a reader may read is written with an atomic store, and a
// reader checks after reading a record that the ring's head has not
// passed it, since the writer moves the head past a record before it
// reuses the record's words (see lookup).
//
// Its memory is outside the Go heap when it is large (allocOffHeap): the
// collector's target (GOGC=200 lets the heap reach three times what is
// live) would otherwise triple what it costs. An earlier cache of every
// key in a Go map cost 40 MB of peak RSS for an 8 MiB bound.
type recordRing struct {
	// ring holds the records in 8-byte words: a header (recordHeader),
	// the key, then the payload, each padded to a whole word. Records are
	// appended at tail and evicted from head, absolute word positions that
	// grow without bound; a record starts at pos % len(ring) and never
	// wraps: one that would is put at the ring's start, after a pad mark.
	// A removed record stays, marked dead, until evicted.
	ring       []uint64
	head, tail uint64
	// headPub and tailPub are head and tail for readers: headPub is
	// stored before any word of an evicted record is reused, tailPub
	// before a new record's slot.
	headPub, tailPub atomic.Uint64
	// slots indexes the live records by key: open addressing with linear
	// probing, each slot the key's hash in its top ringSlotHashBits and
	// the record's position modulo 2^ringSlotPosBits, plus one, below
	// (0: empty).
	slots []uint64
	mask  uint64
	count int
	// countMax bounds the live records so that probes stay short: three
	// quarters of the slots.
	countMax int
	// reserved is the position of the record reserve appended last.
	reserved uint64
	// evicted is evictOldest's buffer for the key it evicts.
	evicted []byte
}

const (
	// A record's header word: the key's length in the low 31 bits, the
	// dead mark in bit 31, the payload's length in the high 32 bits.
	recordDeadBit = 1 << 31
	// recordPadMark as a header marks the rest of the ring, up to its end,
	// as unused.
	recordPadMark = ^uint64(0)
	// recordHeaderBytes is the header's share of a record.
	recordHeaderBytes = 8
	// A slot's low ringSlotPosBits hold a record's position modulo
	// ringPosModulo, plus one: a reader reconstructs a live record's
	// position from it and the tail, the ring being far smaller than
	// ringPosModulo words. The key's hash takes the high bits.
	ringSlotPosBits = 41
	ringSlotPosMask = 1<<ringSlotPosBits - 1
	ringPosModulo   = 1 << (ringSlotPosBits - 1)
	// ringSlotBytes is one slot of the index. The index has a power of
	// two of slots and takes between half of and all of a share of the
	// cache's bytes that newRecordRing's caller names.
	ringSlotBytes = 8
	ringSlotsMin  = 4
	// ringBytesMax bounds a cache's memory.
	ringBytesMax = 1 << 30
)

// newRecordRing returns a ring within bytesMax bytes, nil if that leaves
// less than ringBytesMin for records. Its index takes between a
// 2*slotsShare-th and a slotsShare-th of the bytes: a cache of small
// records needs more slots per byte to fill its bound (three quarters of
// the slots hold records, the rest keep probes short), and every slot
// costs memory as soon as a few thousand keys have touched each page of
// the index.
func newRecordRing(bytesMax, ringBytesMin int64, slotsShare uint64) *recordRing {
	bytesMax = min(bytesMax, ringBytesMax) &^ 7
	slots := uint64(ringSlotsMin)
	for slots*2*ringSlotBytes*slotsShare <= uint64(max(bytesMax, 0)) {
		slots *= 2
	}
	if bytesMax-int64(slots*ringSlotBytes) < ringBytesMin {
		return nil
	}
	words := allocWords(int(bytesMax / 8))
	r := &recordRing{
		slots:    words[:slots:slots],
		ring:     words[slots:],
		mask:     slots - 1,
		countMax: int(slots / 4 * 3),
	}
	runtime.AddCleanup(r, freeWords, words)
	return r
}

// allocWords returns n zeroed words, outside the Go heap when large
// (allocOffHeap's mapping is page-aligned); freeWords releases them.
func allocWords(n int) []uint64 {
	if n*8 < offHeapBytesMin {
		return make([]uint64, n)
	}
	mem := allocOffHeap(n * 8)
	return unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n)
}

func freeWords(words []uint64) {
	if len(words)*8 >= offHeapBytesMin {
		freeOffHeap(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8))
	}
}

// ringHash is the hash of a key in the index: the same on every run, so
// that a cache's work (and a profile of it) replays.
func ringHash(key []byte) uint64 { return xxhash.Sum64(key) >> ringSlotPosBits }

func (r *recordRing) slotHome(slot uint64) uint64 { return (slot >> ringSlotPosBits) & r.mask }

func wordsOf(n uint64) uint64 { return (n + 7) / 8 }

func recordHeader(keyLen, payloadLen int) uint64 {
	return uint64(keyLen) | uint64(payloadLen)<<32
}

func parseHeader(h uint64) (keyLen, payloadLen uint64, dead bool) {
	return h & (recordDeadBit - 1), h >> 32, h&recordDeadBit != 0
}

// recordWords is a record's size in words.
func recordWords(keyLen, payloadLen uint64) uint64 {
	return 1 + wordsOf(keyLen) + wordsOf(payloadLen)
}

// at is the index in ring of absolute position pos.
func (r *recordRing) at(pos uint64) uint64 { return pos % uint64(len(r.ring)) }

// slotPos is the absolute position of the record a slot names, given a
// tail loaded after the slot.
func slotPos(slot, tail uint64) uint64 {
	return tail - (tail-(slot&ringSlotPosMask-1))&(ringPosModulo-1)
}

// slotOf is the slot of a record at pos whose key's hash is h.
func slotOf(h, pos uint64) uint64 {
	return h<<ringSlotPosBits | (pos&(ringPosModulo-1) + 1)
}

// keyMatches reports whether the record at index i of ring, whose key is
// keyLen bytes, has key.
func (r *recordRing) keyMatches(i, keyLen uint64, key []byte) bool {
	if keyLen != uint64(len(key)) {
		return false
	}
	var w [8]byte
	for j := uint64(0); j < wordsOf(keyLen); j++ {
		binary.LittleEndian.PutUint64(w[:], atomic.LoadUint64(&r.ring[i+1+j]))
		if string(w[:min(8, keyLen-8*j)]) != string(key[8*j:min(8*j+8, keyLen)]) {
			return false
		}
	}
	return true
}

// find returns the index of the slot of key, whose hash is h, and
// whether it holds key; if not, the index is the empty slot where key
// would go. The writer's: its records do not change under it.
func (r *recordRing) find(key []byte, h uint64) (i uint64, found bool) {
	tail := r.tail
	for i = h & r.mask; ; i = (i + 1) & r.mask {
		slot := r.slots[i]
		if slot == 0 {
			return i, false
		}
		if slot>>ringSlotPosBits == h {
			at := r.at(slotPos(slot, tail))
			keyLen, _, _ := parseHeader(r.ring[at])
			if r.keyMatches(at, keyLen, key) {
				return i, true
			}
		}
	}
}

// payloadIndex is the index in ring of the payload of the record in slot
// i, which find found.
func (r *recordRing) payloadIndex(i uint64) uint64 {
	at := r.at(slotPos(r.slots[i], r.tail))
	keyLen, _, _ := parseHeader(r.ring[at])
	return at + 1 + wordsOf(keyLen)
}

// reserve appends a record of key, which the ring does not hold, with a
// payload of payloadLen bytes, evicting the oldest records while over the
// bound, and returns the index in ring of the payload, for the caller to
// fill (storeBytes, storeWord) before it calls link. ok is false if the
// record is larger than the whole ring.
func (r *recordRing) reserve(key []byte, payloadLen int) (payload uint64, ok bool) {
	size := recordWords(uint64(len(key)), uint64(payloadLen))
	ringLen := uint64(len(r.ring))
	if size > ringLen {
		return 0, false
	}
	pad := uint64(0)
	if at := r.at(r.tail); at+size > ringLen {
		pad = ringLen - at
	}
	for r.head != r.tail && (r.count >= r.countMax || r.tail+pad+size-r.head > ringLen) {
		r.evictOldest()
	}
	if r.head == r.tail { // empty: start at the ring's start, without a pad to evict
		r.tail += pad
		r.head, pad = r.tail, 0
	}
	// Readers learn of the evictions before any of their words is reused.
	r.headPub.Store(r.head)
	if pad > 0 {
		atomic.StoreUint64(&r.ring[r.at(r.tail)], recordPadMark)
	}
	r.tail += pad
	r.reserved = r.tail
	at := r.at(r.tail)
	atomic.StoreUint64(&r.ring[at], recordHeader(len(key), payloadLen))
	r.storeBytes(at+1, key)
	r.tail += size
	r.tailPub.Store(r.tail)
	return at + 1 + wordsOf(uint64(len(key))), true
}

// link enters the record reserve appended last, its payload filled, into
// the index under key, whose hash is h.
func (r *recordRing) link(key []byte, h uint64) {
	i, _ := r.find(key, h)
	atomic.StoreUint64(&r.slots[i], slotOf(h, r.reserved))
	r.count++
}

// storeBytes writes b into ring from index i on, a word at a time.
func (r *recordRing) storeBytes(i uint64, b []byte) {
	for len(b) >= 8 {
		atomic.StoreUint64(&r.ring[i], binary.LittleEndian.Uint64(b))
		i, b = i+1, b[8:]
	}
	if len(b) > 0 {
		var w [8]byte
		copy(w[:], b)
		atomic.StoreUint64(&r.ring[i], binary.LittleEndian.Uint64(w[:]))
	}
}

// storeWord writes v at index i of ring.
func (r *recordRing) storeWord(i, v uint64) { atomic.StoreUint64(&r.ring[i], v) }

// remove drops the record in slot i, which find found: it leaves the
// index, and its words stay in the ring, marked dead, until evicted.
func (r *recordRing) remove(i uint64) {
	at := r.at(slotPos(r.slots[i], r.tail))
	atomic.StoreUint64(&r.ring[at], r.ring[at]|recordDeadBit)
	r.deleteSlot(i)
	r.count--
}

// evictOldest removes the record at head, or the pad there: one step of
// reserve's loop, which stops once head meets tail.
func (r *recordRing) evictOldest() {
	at := r.at(r.head)
	if r.ring[at] == recordPadMark {
		r.head += uint64(len(r.ring)) - at
		return
	}
	keyLen, payloadLen, dead := parseHeader(r.ring[at])
	if !dead {
		key := r.evicted[:0]
		for j := range wordsOf(keyLen) {
			key = binary.LittleEndian.AppendUint64(key, r.ring[at+1+j])
		}
		r.evicted = key
		key = key[:keyLen]
		i, found := r.find(key, ringHash(key))
		if !found || r.at(slotPos(r.slots[i], r.tail)) != at {
			panic("mvcc: cache record without its index slot")
		}
		r.deleteSlot(i)
		r.count--
	}
	r.head += recordWords(keyLen, payloadLen)
}

// deleteSlot empties slot i and moves later slots of its probe run back
// (backward shift deletion), so that no probe stops early at the hole. A
// reader probing meanwhile may miss a key that moves: a miss, never a
// wrong record.
func (r *recordRing) deleteSlot(i uint64) {
	for j := (i + 1) & r.mask; r.slots[j] != 0; j = (j + 1) & r.mask {
		// The slot at j stays unless its home is not cyclically in (i, j].
		home := r.slotHome(r.slots[j])
		if (j-home)&r.mask >= (j-i)&r.mask {
			atomic.StoreUint64(&r.slots[i], r.slots[j])
			i = j
		}
	}
	atomic.StoreUint64(&r.slots[i], 0)
}

// lookup copies the payload of key's record, if the ring holds one, into
// buf (or a new buffer of the payload's size if buf is too small) and
// returns it; ok is false if it found none, or
// none that was not evicted while it read. Safe on any goroutine while
// the writer changes the ring. payloadMax bounds what it copies: a record
// it reads while the writer reuses its words may show any length.
//
// Why it is right: the writer stores headPub past a record before it
// stores any word over it, so a reader that read a word stored over the
// record loads, afterwards, a headPub past it, and drops what it read.
// A slot is stored after its record's words and after tailPub, so a
// reader that sees the slot sees them.
func (r *recordRing) lookup(key []byte, buf []byte, payloadMax uint64) (_ []byte, ok bool) {
	h := ringHash(key)
	ringLen := uint64(len(r.ring))
	for i, n := h&r.mask, uint64(0); n <= r.mask; i, n = (i+1)&r.mask, n+1 {
		slot := atomic.LoadUint64(&r.slots[i])
		if slot == 0 {
			return buf, false
		}
		if slot>>ringSlotPosBits != h {
			continue
		}
		pos := slotPos(slot, r.tailPub.Load())
		at := r.at(pos)
		keyLen, payloadLen, dead := parseHeader(atomic.LoadUint64(&r.ring[at]))
		size := recordWords(keyLen, payloadLen)
		if dead || payloadLen > payloadMax || at+size > ringLen || !r.keyMatches(at, keyLen, key) {
			continue
		}
		if n := wordsOf(payloadLen) * 8; uint64(cap(buf)) < n {
			buf = make([]byte, 0, n)
		}
		buf = buf[:0]
		for j := at + 1 + wordsOf(keyLen); j < at+size; j++ {
			buf = binary.LittleEndian.AppendUint64(buf, atomic.LoadUint64(&r.ring[j]))
		}
		if r.headPub.Load() > pos {
			return buf, false // evicted, maybe overwritten, while read
		}
		return buf[:payloadLen], true
	}
	return buf, false
}

// heldBytes is what the ring holds: its bytes in use and, once it holds a
// record, its index (whose pages hashing touches all over).
// Safe on any goroutine: it reads the published tail, then head.
func (r *recordRing) heldBytes() int64 {
	if r == nil {
		return 0
	}
	tail := r.tailPub.Load()
	head := r.headPub.Load()
	if head == tail {
		return 0
	}
	return int64(tail-head)*8 + int64(len(r.slots))*ringSlotBytes
}
