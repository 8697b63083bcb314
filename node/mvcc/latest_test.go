package mvcc

import (
	"fmt"
	"testing"
)

func TestLatestCacheStaysWithinItsBoundAndEvictsTheOldest(t *testing.T) {
	const keys = 5
	entryBytes := int64(len("key0") + latestEntryOverheadBytes)
	c := newLatestCache(keys*entryBytes, 0)
	for i := range 1000 {
		c.put(fmt.Sprint("key", i%10), versionMeta{exists: true, version: int64(i)}, 1)
		if c.heldBytes() > c.bytesMax {
			t.Fatalf("after %d puts the cache holds %d bytes, over its bound %d", i+1, c.heldBytes(), c.bytesMax)
		}
		if len(c.entries) > keys || len(c.order)-c.head != len(c.entries) || len(c.order) > 2*keys+1 {
			t.Fatalf("after %d puts: %d entries, order %d from %d", i+1, len(c.entries), len(c.order), c.head)
		}
	}
	// The last five keys written are key5..key9 (puts 995-999), in order.
	for i := range 10 {
		m, ok := c.get(fmt.Append(nil, "key", i))
		if ok != (i >= 5) {
			t.Fatalf("key%d cached: %v", i, ok)
		}
		if ok && m.version != int64(990+i) {
			t.Fatalf("key%d: version %d, want %d", i, m.version, 990+i)
		}
	}
	// An update keeps an entry's place: key5, the oldest, goes first.
	c.put("key5", versionMeta{exists: true, version: 1}, 1)
	c.put("new", versionMeta{}, 1)
	if _, ok := c.get([]byte("key5")); ok {
		t.Fatal("key5, inserted first, was not evicted first")
	}
	if m, ok := c.get([]byte("new")); !ok || m.exists {
		t.Fatalf("new: %+v, %v", m, ok)
	}
}

func TestLatestCacheOffOrTooSmall(t *testing.T) {
	var off *latestCache = newLatestCache(0, 0)
	off.put("k", versionMeta{exists: true}, 1)
	if _, ok := off.get([]byte("k")); ok || off.heldBytes() != 0 {
		t.Fatal("a cache with no bytes holds an entry")
	}
	c := newLatestCache(latestEntryOverheadBytes, 0)
	c.put("k", versionMeta{exists: true}, 1)
	if _, ok := c.get([]byte("k")); ok || c.heldBytes() != 0 {
		t.Fatal("an entry larger than the whole bound was cached")
	}
}

func TestLatestCacheTakesInOnlyLargeVersionsButUpdatesAny(t *testing.T) {
	c := newLatestCache(1<<20, 100)
	c.put("small", versionMeta{exists: true}, 99)
	if _, ok := c.get([]byte("small")); ok {
		t.Fatal("a version stored in 99 bytes was taken in, the minimum is 100")
	}
	c.put("k", versionMeta{exists: true, version: 1}, 100)
	c.put("k", versionMeta{}, 0) // deleted: a tombstone, stored in no value
	if m, ok := c.get([]byte("k")); !ok || m.exists {
		t.Fatalf("a cached key deleted reads %+v, %v; want cached as not existing", m, ok)
	}
}
