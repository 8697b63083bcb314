package mvcc

import "unsafe"

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
// records and index) and evicts the entries inserted first (recordRing).
type latestCache struct {
	*recordRing
}

// latestMetaBytes is a record's payload: create revision, mod revision,
// version and lease; a create revision of 0 is a key that does not exist.
const latestMetaBytes = 4 * 8

// latestSlotsShare sizes the index for records of 40-80 bytes, a short
// key's (recordRing): an eighth to a quarter of the cache.
const latestSlotsShare = 4

// latestRecordMinLen is the smallest record, of a one-byte key.
const latestRecordMinLen = recordHeaderBytes + 8 + latestMetaBytes

// newLatestCache returns a cache within bytesMax bytes, nil (no cache) if
// that is too small to hold a few entries.
func newLatestCache(bytesMax int64) *latestCache {
	r := newRecordRing(bytesMax, 2*latestRecordMinLen, latestSlotsShare)
	if r == nil {
		return nil
	}
	return &latestCache{recordRing: r}
}

// heldBytes is what the cache holds (recordRing.heldBytes); 0 without a
// cache.
func (c *latestCache) heldBytes() int64 {
	if c == nil {
		return 0
	}
	return c.recordRing.heldBytes()
}

// get returns the cached metadata of key's newest version; ok is false if
// the key is not cached.
func (c *latestCache) get(key []byte) (m versionMeta, ok bool) {
	if c == nil {
		return versionMeta{}, false
	}
	i, found := c.find(key, ringHash(key))
	if !found {
		return versionMeta{}, false
	}
	p := c.payloadIndex(i)
	m.createRevision = int64(c.ring[p])
	m.modRevision = int64(c.ring[p+1])
	m.version = int64(c.ring[p+2])
	m.lease = int64(c.ring[p+3])
	m.exists = m.createRevision != 0
	return m, true
}

// putMeta writes m at index p of the ring. The cache has no readers but
// the apply goroutine, so an entry may change in place.
func (c *latestCache) putMeta(p uint64, m versionMeta) {
	if !m.exists {
		m = versionMeta{}
	} else if m.createRevision == 0 {
		panic("mvcc: caching a live version with create revision 0")
	}
	c.storeWord(p, uint64(m.createRevision))
	c.storeWord(p+1, uint64(m.modRevision))
	c.storeWord(p+2, uint64(m.version))
	c.storeWord(p+3, uint64(m.lease))
}

// put records m as the metadata of key's newest version in the published
// state, evicting the oldest entries while over the bound. An update keeps
// the key's place in the order of eviction.
func (c *latestCache) put(key []byte, m versionMeta) {
	if c == nil {
		return
	}
	h := ringHash(key)
	if i, found := c.find(key, h); found {
		c.putMeta(c.payloadIndex(i), m)
		return
	}
	if p, ok := c.reserve(key, latestMetaBytes); ok {
		c.putMeta(p, m)
		c.link(key, h)
	}
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
		c.put(stringBytes(e.key), e.meta)
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

// stringBytes is s's bytes, not a copy: the caller must not modify them.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
