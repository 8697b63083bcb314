package mvcc

// latestCache holds the metadata (create revision, version, lease) of the
// newest version of recently written or read keys, so that a put or a
// delete need not read the version it replaces from Pebble. That read is
// a seek through every level of the LSM (11 % of a leader's CPU under
// puts of 256 B values), and for a value stored in a blob file it also
// reads the whole value, because the metadata is encoded with it: with
// 1 MiB values, a read of 1 MiB from disk, its checksum and a block cache
// entry before every put.
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
// It is bounded in bytes (Options.LatestCacheBytes) and evicts the
// entries inserted first (first in, first out: deterministic, unlike a
// map's iteration order, so a seed replays the same reads). It takes in
// only keys whose newest version is stored in at least storedBytesMin
// bytes (Options.LatestCacheStoredBytesMin): those whose values Pebble
// keeps in blob files, where reading the metadata costs reading the value.
// A small version's metadata is read from the sstable block that holds
// it, and caching it gained nothing measurable; an entry already cached
// is kept up to date whatever the size.
type latestCache struct {
	bytesMax       int64
	storedBytesMin int
	bytes          int64
	entries        map[string]versionMeta
	// order holds the keys in the order they were inserted, from head on;
	// an updated key keeps its place.
	order []string
	head  int
}

// latestEntryOverheadBytes is what one entry costs besides its key: the
// map's slot (key header, versionMeta, hash bits), the order slice's
// string header, and the map's spare capacity, rounded up.
const latestEntryOverheadBytes = 96

func newLatestCache(bytesMax int64, storedBytesMin int) *latestCache {
	if bytesMax <= 0 {
		return nil
	}
	return &latestCache{bytesMax: bytesMax, storedBytesMin: storedBytesMin, entries: map[string]versionMeta{}}
}

// get returns the cached metadata of key's newest version; ok is false if
// the key is not cached.
func (c *latestCache) get(key []byte) (m versionMeta, ok bool) {
	if c == nil {
		return versionMeta{}, false
	}
	m, ok = c.entries[string(key)]
	return m, ok
}

// put records m as the metadata of key's newest version in the published
// state, stored in storedBytes (0 for a tombstone), evicting the oldest
// entries while over the bound.
func (c *latestCache) put(key string, m versionMeta, storedBytes int) {
	if c == nil {
		return
	}
	if _, ok := c.entries[key]; ok {
		c.entries[key] = m
		return
	}
	if storedBytes < c.storedBytesMin {
		return
	}
	cost := int64(len(key)) + latestEntryOverheadBytes
	if cost > c.bytesMax {
		return
	}
	c.entries[key] = m
	c.order = append(c.order, key)
	c.bytes += cost
	for c.bytes > c.bytesMax {
		c.evictOldest()
	}
}

func (c *latestCache) evictOldest() {
	key := c.order[c.head]
	c.order[c.head] = ""
	c.head++
	delete(c.entries, key)
	c.bytes -= int64(len(key)) + latestEntryOverheadBytes
	// Reclaim the evicted prefix of order once it is half the slice, so
	// that order stays within twice the entries it holds.
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

// takes reports whether a version of key stored in storedBytes belongs in
// the cache: a large one, or any newer version of a key it holds.
func (c *latestCache) takes(key []byte, storedBytes int) bool {
	if storedBytes >= c.storedBytesMin {
		return true
	}
	_, ok := c.entries[string(key)]
	return ok
}

// heldBytes is what the cache holds, by its own accounting.
func (c *latestCache) heldBytes() int64 {
	if c == nil {
		return 0
	}
	return c.bytes
}

// writtenKeys is the newest version of each key one Writer's batch wrote
// that the cache may take (Writer.noteWritten), in the order the keys were
// first written, so that Publish enters them into the cache in an order a
// seed reproduces.
type writtenKeys struct {
	index   map[string]int
	entries []writtenKey
}

type writtenKey struct {
	key         string
	meta        versionMeta
	storedBytes int
}

func (wk *writtenKeys) note(key []byte, m versionMeta, storedBytes int) {
	if i, ok := wk.index[string(key)]; ok {
		wk.entries[i].meta, wk.entries[i].storedBytes = m, storedBytes
		return
	}
	if wk.index == nil {
		wk.index = map[string]int{}
	}
	k := string(key)
	wk.index[k] = len(wk.entries)
	wk.entries = append(wk.entries, writtenKey{key: k, meta: m, storedBytes: storedBytes})
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
		c.put(e.key, e.meta, e.storedBytes)
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
