package mvcc

import (
	"encoding/binary"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// readCache holds the newest version, value included, of recently written
// keys, so that a single-key range of one needs neither a Pebble iterator
// nor a seek through the memtables and every level: under serializable
// gets of 10,000 keys those were a fifth of a member's CPU (opening the
// iterator 9 %, half of it growing the reading goroutine's stack for
// Pebble's large frames; the memtable's skiplist 10 %), where etcd answers
// from its in-memory key index and bbolt's mapped pages.
//
// Only the apply goroutine changes it, in Publish: before it publishes a
// revision it removes every key the batch wrote and enters the newest
// version of each key the batch put (enterWrites). So an entry, a version
// made at modRev, is the key's newest at every revision from modRev up to
// the published one: a later write removes it before its revision is
// published. Readers on any goroutine look keys up without a lock
// (recordRing.lookup) and take an entry only for a read at or above its
// modRev; a read at an older revision, or of a key not written since the
// store opened or evicted since, reads Pebble. Compaction removes no key's
// newest version unless it is a tombstone, which the cache does not hold.
// A database replaced as a whole (a snapshot installed, a restore) gets a
// new Store and a new cache.
//
// It is bounded in bytes (Options.ReadCacheBytes) like the cache of
// newest versions' metadata, in a recordRing of its own; a record's
// payload is the version's revision (8 bytes) and its stored encoding
// (appendPut).
type readCache struct {
	recs *recordRing
	// valueBytesMax is the largest value the cache takes: a sixty-fourth
	// of its bound, so one large value does not evict hundreds of small
	// ones.
	valueBytesMax int
	// encoded is enterWrites' buffer for a version's payload.
	encoded []byte
	// hits counts the lookups the cache answered, for tests.
	hits atomic.Int64
}

const readCacheRevBytes = 8

// readCacheSlotsShare sizes the index for records of 160-320 bytes, a
// version with a value of about 256 bytes: a thirty-second to a sixteenth
// of the cache. A cache of smaller values holds fewer than its bound
// allows: 49,152 versions in the default 8 MiB. An index sized for the
// newest version cache's records, 2 MiB of the 8, cost as much RSS for
// 10,000 keys, each page touched by a few of them.
const readCacheSlotsShare = 16

// readCacheBytesMin is the smallest bound that makes a cache.
const readCacheBytesMin = 4 << 10

// newReadCache returns a cache within bytesMax bytes; nil (no cache) below
// readCacheBytesMin.
func newReadCache(bytesMax int64) *readCache {
	if bytesMax < readCacheBytesMin {
		return nil
	}
	recs := newRecordRing(bytesMax, readCacheBytesMin/2, readCacheSlotsShare)
	if recs == nil {
		return nil
	}
	return &readCache{recs: recs, valueBytesMax: int(min(bytesMax, ringBytesMax) / 64)}
}

// get returns the newest version of key at rev if the cache holds it and
// it was made at or below rev; the key-value is the caller's. Safe for
// concurrent use, with the apply goroutine's enterWrites too.
func (c *readCache) get(key []byte, rev int64) (*mvccpb.KeyValue, bool) {
	if c == nil {
		return nil, false
	}
	payload, ok := c.recs.lookup(key, nil, uint64(readCacheRevBytes+c.valueBytesMax+putOverheadBytesMax))
	if !ok || int64(binary.LittleEndian.Uint64(payload)) > rev {
		return nil, false
	}
	c.hits.Add(1)
	return decodeValue(append([]byte(nil), key...), payload[readCacheRevBytes:]), true
}

// putOverheadBytesMax bounds what appendPut adds to a value: the kind, four
// varint fields and the value's tag and length.
const putOverheadBytesMax = 1 + 4*(1+10) + 1 + 10

// enterWrites removes every key wk holds, which a batch about to be
// published wrote, and enters the newest version of each key the batch
// put, from its events. The apply goroutine's: Publish calls it before it
// publishes the batch's revision.
// keepDeleted plants a bug (Options.ReadCacheKeepsDeleted).
func (c *readCache) enterWrites(wk *writtenKeys, events []*mvccpb.Event, keepDeleted bool) {
	if c == nil || len(wk.entries) == 0 {
		return
	}
	for _, e := range wk.entries {
		if keepDeleted && !e.meta.exists {
			continue
		}
		key := stringBytes(e.key)
		if i, found := c.recs.find(key, ringHash(key)); found {
			c.recs.remove(i)
		}
	}
	for _, ev := range events {
		kv := ev.Kv
		if ev.Type != mvccpb.Event_PUT || len(kv.Value) > c.valueBytesMax {
			continue
		}
		if m, _ := wk.get(kv.Key); !m.exists || m.modRevision != kv.ModRevision {
			continue // the batch wrote the key again later
		}
		c.encoded = appendPut(binary.LittleEndian.AppendUint64(c.encoded[:0], uint64(kv.ModRevision)), kv)
		if p, ok := c.recs.reserve(kv.Key, len(c.encoded)); ok {
			c.recs.storeBytes(p, c.encoded)
			c.recs.link(kv.Key, ringHash(kv.Key))
		}
	}
}

// heldBytes is what the cache holds (recordRing.heldBytes); 0 without a
// cache.
func (c *readCache) heldBytes() int64 {
	if c == nil {
		return 0
	}
	return c.recs.heldBytes()
}
