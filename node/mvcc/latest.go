package mvcc

import (
	"encoding/binary"
	"runtime"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// latestCache holds the metadata (create revision, version, lease) of the
// newest version of recently written or read keys, so that a put, a delete
// or a txn's compare need not read the version it replaces from Pebble.
// etcd answers these from its in-memory key index; here that read is a
// seek through every level of the LSM, and after each compaction a data
// block read and decompressed again (17 % of a member's CPU under puts of
// 256 B values over 100,000 keys; the cache took a member from about
// 12,500 to 15,200 puts/s). For a value stored in a blob file the read costs more:
// the metadata is encoded with the value, so it reads the whole value
// (with 1 MiB values, a read of 1 MiB from disk, its checksum and a block
// cache entry before every put).
//
// It is owned by the apply goroutine, like the Writer. It holds the
// published state only: a Writer keeps what its batch wrote apart
// (Store.written) until Publish, so a Writer closed without publishing
// leaves the cache as it was. Nothing else changes a key's newest version:
// compaction removes only older versions, and a key whose newest version
// is a tombstone at or below the compacted revision, which the cache holds
// as not existing, as it is. A database replaced as a whole (a snapshot
// installed, a restore) gets a new Store and a new cache.
//
// It is bounded in bytes (Options.LatestCacheBytes, all of its memory:
// records and index) and evicts the entries inserted first (first in,
// first out: deterministic, so a seed replays the same reads).
type latestCache struct {
	// ring holds the entries as records (latestRecordHeaderBytes, the key,
	// latestMetaBytes of metadata), appended at tail and evicted from head.
	// head and tail grow without bound; a record starts at pos % len(ring)
	// and never wraps: one that would is put at the ring's start, after a
	// pad from tail to the end.
	ring       []byte
	head, tail uint64
	// slots indexes the records by key: open addressing with linear
	// probing, each slot the key's hash in its high half and the record's
	// offset in ring, plus one, in its low half (0: empty).
	slots []uint64
	mask  uint64
	count int
	// countMax bounds the records so that probes stay short: three
	// quarters of the slots.
	countMax int
}

// The cache's memory is outside the Go heap when it is large (allocOffHeap):
// the collector's target (GOGC=200 lets the heap reach three times what is
// live) would otherwise triple what it costs. An earlier cache of every
// key in a Go map cost 40 MB of peak RSS for an 8 MiB bound.

const (
	// latestRecordHeaderBytes holds the key's length.
	latestRecordHeaderBytes = 4
	// latestMetaBytes holds create revision, mod revision, version and
	// lease; a create revision of 0 is a key that does not exist.
	latestMetaBytes = 4 * 8
	// latestPadMark in a record's header marks the rest of the ring, up to
	// its end, as unused.
	latestPadMark = ^uint32(0)
	// latestSlotBytes is one slot of the index. The index has a power of
	// two of slots and takes between an eighth and a quarter
	// (1/latestSlotsShare) of the cache's bytes.
	latestSlotBytes  = 8
	latestSlotsShare = 4
	latestSlotsMin   = 4
	// latestRecordMinLen is the smallest record, of a one-byte key.
	latestRecordMinLen = latestRecordHeaderBytes + 1 + latestMetaBytes
	// latestCacheBytesMax keeps the ring's offsets within 32 bits.
	latestCacheBytesMax = 1 << 30
)

// newLatestCache returns a cache within bytesMax bytes, nil (no cache) if
// that is too small to hold a few entries.
func newLatestCache(bytesMax int64) *latestCache {
	bytesMax = min(bytesMax, latestCacheBytesMax)
	slots := uint64(latestSlotsMin)
	for slots*2*latestSlotBytes*latestSlotsShare <= uint64(max(bytesMax, 0)) {
		slots *= 2
	}
	ringBytes := bytesMax - int64(slots*latestSlotBytes)
	if ringBytes < 2*latestRecordMinLen {
		return nil
	}
	mem := allocOffHeap(int(bytesMax))
	if uintptr(unsafe.Pointer(&mem[0]))%latestSlotBytes != 0 {
		panic("mvcc: newest version cache memory misaligned")
	}
	indexBytes := slots * latestSlotBytes
	c := &latestCache{
		slots:    unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), slots),
		ring:     mem[indexBytes:],
		mask:     slots - 1,
		countMax: int(slots / 4 * 3),
	}
	runtime.AddCleanup(c, freeOffHeap, mem)
	return c
}

// latestHash is the hash of a key in the index: the same on every run, so
// that the cache's work (and a profile of it) replays.
func latestHash(key []byte) uint32 { return uint32(xxhash.Sum64(key)) }

func (c *latestCache) slotHome(slot uint64) uint64 { return (slot >> 32) & c.mask }

// find returns the index of the slot of key, whose hash is h, and
// whether it holds key; if not, the index is the empty slot where key
// would go.
func (c *latestCache) find(key []byte, h uint32) (i uint64, found bool) {
	for i = uint64(h) & c.mask; ; i = (i + 1) & c.mask {
		slot := c.slots[i]
		if slot == 0 {
			return i, false
		}
		if uint32(slot>>32) == h && string(c.recordKey(uint32(slot)-1)) == string(key) {
			return i, true
		}
	}
}

func (c *latestCache) recordKey(off uint32) []byte {
	n := binary.LittleEndian.Uint32(c.ring[off:])
	return c.ring[off+latestRecordHeaderBytes : off+latestRecordHeaderBytes+n]
}

func (c *latestCache) recordMeta(off uint32) []byte {
	n := binary.LittleEndian.Uint32(c.ring[off:])
	start := off + latestRecordHeaderBytes + n
	return c.ring[start : start+latestMetaBytes]
}

// get returns the cached metadata of key's newest version; ok is false if
// the key is not cached.
func (c *latestCache) get(key []byte) (m versionMeta, ok bool) {
	if c == nil {
		return versionMeta{}, false
	}
	i, found := c.find(key, latestHash(key))
	if !found {
		return versionMeta{}, false
	}
	b := c.recordMeta(uint32(c.slots[i]) - 1)
	m.createRevision = int64(binary.LittleEndian.Uint64(b))
	m.modRevision = int64(binary.LittleEndian.Uint64(b[8:]))
	m.version = int64(binary.LittleEndian.Uint64(b[16:]))
	m.lease = int64(binary.LittleEndian.Uint64(b[24:]))
	m.exists = m.createRevision != 0
	return m, true
}

func putMeta(b []byte, m versionMeta) {
	if !m.exists {
		m = versionMeta{}
	} else if m.createRevision == 0 {
		panic("mvcc: caching a live version with create revision 0")
	}
	binary.LittleEndian.PutUint64(b, uint64(m.createRevision))
	binary.LittleEndian.PutUint64(b[8:], uint64(m.modRevision))
	binary.LittleEndian.PutUint64(b[16:], uint64(m.version))
	binary.LittleEndian.PutUint64(b[24:], uint64(m.lease))
}

// put records m as the metadata of key's newest version in the published
// state, evicting the oldest entries while over the bound. An update keeps
// the key's place in the order of eviction.
func (c *latestCache) put(key []byte, m versionMeta) {
	if c == nil {
		return
	}
	h := latestHash(key)
	i, found := c.find(key, h)
	if found {
		putMeta(c.recordMeta(uint32(c.slots[i])-1), m)
		return
	}
	size := uint64(latestRecordHeaderBytes + len(key) + latestMetaBytes)
	ringLen := uint64(len(c.ring))
	if size > ringLen {
		return
	}
	pad := uint64(0)
	if at := c.tail % ringLen; at+size > ringLen {
		pad = ringLen - at
	}
	evicted := false
	for c.count > 0 && (c.count >= c.countMax || c.tail+pad+size-c.head > ringLen) {
		c.evictOldest()
		evicted = true
	}
	if c.count == 0 {
		c.head, c.tail, pad = 0, 0, 0
	}
	if pad >= latestRecordHeaderBytes {
		binary.LittleEndian.PutUint32(c.ring[c.tail%ringLen:], latestPadMark)
	}
	c.tail += pad
	off := c.tail % ringLen
	binary.LittleEndian.PutUint32(c.ring[off:], uint32(len(key)))
	copy(c.ring[off+latestRecordHeaderBytes:], key)
	putMeta(c.recordMeta(uint32(off)), m)
	c.tail += size
	if evicted { // deletions shift slots back: the empty slot may have moved
		i, _ = c.find(key, h)
	}
	c.slots[i] = uint64(h)<<32 | (off + 1)
	c.count++
}

// padAt reports whether the ring holds no record from at to its end: too
// few bytes for a header, or a pad mark.
func (c *latestCache) padAt(at uint64) bool {
	return uint64(len(c.ring))-at < latestRecordHeaderBytes || binary.LittleEndian.Uint32(c.ring[at:]) == latestPadMark
}

// evictOldest removes the record at head, skipping a pad before it.
func (c *latestCache) evictOldest() {
	ringLen := uint64(len(c.ring))
	at := c.head % ringLen
	if c.padAt(at) {
		c.head += ringLen - at
		at = 0
	}
	key := c.recordKey(uint32(at))
	i, found := c.find(key, latestHash(key))
	if !found || uint32(c.slots[i])-1 != uint32(at) {
		panic("mvcc: newest version cache record without its index slot")
	}
	c.deleteSlot(i)
	c.head += uint64(latestRecordHeaderBytes + len(key) + latestMetaBytes)
	c.count--
}

// deleteSlot empties slot i and moves later slots of its probe run back
// (backward shift deletion), so that no probe stops early at the hole.
func (c *latestCache) deleteSlot(i uint64) {
	for j := (i + 1) & c.mask; c.slots[j] != 0; j = (j + 1) & c.mask {
		// The slot at j stays unless its home is not cyclically in (i, j].
		home := c.slotHome(c.slots[j])
		if (j-home)&c.mask >= (j-i)&c.mask {
			c.slots[i] = c.slots[j]
			i = j
		}
	}
	c.slots[i] = 0
}

// heldBytes is what the cache holds: the ring's bytes in use and, once it
// holds an entry, its index (whose pages hashing touches all over).
func (c *latestCache) heldBytes() int64 {
	if c == nil || c.count == 0 {
		return 0
	}
	return int64(c.tail-c.head) + int64(len(c.slots))*latestSlotBytes
}

// writtenKeys is the newest version of each key one Writer's batch wrote
// (Writer.noteWritten), in the order the keys were first written, so that
// Publish enters them into the cache in an order a seed reproduces.
type writtenKeys struct {
	index   map[string]int
	entries []writtenKey
}

type writtenKey struct {
	key  string
	meta versionMeta
}

func (wk *writtenKeys) note(key []byte, m versionMeta) {
	if i, ok := wk.index[string(key)]; ok {
		wk.entries[i].meta = m
		return
	}
	if wk.index == nil {
		wk.index = map[string]int{}
	}
	k := string(key)
	wk.index[k] = len(wk.entries)
	wk.entries = append(wk.entries, writtenKey{key: k, meta: m})
}

func (wk *writtenKeys) get(key []byte) (versionMeta, bool) {
	i, ok := wk.index[string(key)]
	if !ok {
		return versionMeta{}, false
	}
	return wk.entries[i].meta, true
}

// enterInto puts every written key into c, then forgets them.
func (wk *writtenKeys) enterInto(c *latestCache) {
	for _, e := range wk.entries {
		c.put(unsafe.Slice(unsafe.StringData(e.key), len(e.key)), e.meta)
	}
	wk.reset()
}

// writtenKeysKeptMax is how many keys' worth of room reset keeps for the
// next Writer: a batch that wrote more (a delete of a large range) gives
// its map and slice back to the garbage collector.
const writtenKeysKeptMax = 4096

func (wk *writtenKeys) reset() {
	if len(wk.entries) > writtenKeysKeptMax {
		*wk = writtenKeys{}
		return
	}
	clear(wk.index)
	clear(wk.entries)
	wk.entries = wk.entries[:0]
}
