package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// checkLatestCache verifies the cache's structure: every record from head
// to tail has exactly one index slot, every slot points at a record, and
// the count and the bytes held agree with them.
func checkLatestCache(t *testing.T, c *latestCache) (keysOldestFirst []string) {
	t.Helper()
	ringLen := uint64(len(c.ring))
	if c.tail-c.head > ringLen {
		t.Fatalf("ring holds %d words of %d", c.tail-c.head, ringLen)
	}
	for pos := c.head; pos < c.tail; {
		at := pos % ringLen
		if c.ring[at] == recordPadMark {
			pos += ringLen - at
			continue
		}
		keyLen, payloadLen, dead := parseHeader(c.ring[at])
		if dead || payloadLen != latestMetaBytes {
			t.Fatalf("record at %d: dead %v, payload of %d bytes", at, dead, payloadLen)
		}
		key := make([]byte, 0, wordsOf(keyLen)*8)
		for j := range wordsOf(keyLen) {
			key = binary.LittleEndian.AppendUint64(key, c.ring[at+1+j])
		}
		key = key[:keyLen]
		i, found := c.find(key, ringHash(key))
		if !found || slotPos(c.slots[i], c.tail) != pos {
			t.Fatalf("record of %q at %d has no slot of its own", key, pos)
		}
		keysOldestFirst = append(keysOldestFirst, string(key))
		pos += recordWords(keyLen, payloadLen)
	}
	used := 0
	for _, slot := range c.slots {
		if slot != 0 {
			used++
		}
	}
	if used != c.count || len(keysOldestFirst) != c.count || c.count > c.countMax {
		t.Fatalf("%d slots used, %d records, count %d (max %d)", used, len(keysOldestFirst), c.count, c.countMax)
	}
	return keysOldestFirst
}

// TestLatestCacheIsAFirstInFirstOutCache puts keys of random lengths into
// caches of several sizes, against a model: the cache must hold the
// newest entries in the order they were first inserted (an update keeps
// its place), with their last metadata, and no other.
func TestLatestCacheIsAFirstInFirstOutCache(t *testing.T) {
	for _, tc := range []struct {
		bytesMax   int64
		keyPadding int // longest run of padding in a key
	}{
		{propLatestCacheBytes, 40}, {512, 40}, {4 << 10, 40}, {1 << 20, 40},
		{4 << 10, 0}, {1 << 20, 0},
		{4<<10 - 1, 0}, // short keys and half the index: the bound on the count binds first
	} {
		bytesMax := tc.bytesMax
		t.Run(fmt.Sprint(bytesMax, "/", tc.keyPadding), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(bytesMax), 7))
			c := newLatestCache(bytesMax)
			if c == nil {
				t.Fatal("no cache")
			}
			model := map[string]versionMeta{}
			var order []string // the model's insertion order, oldest first
			keys := 50 + int(bytesMax/20)
			for op := range 20000 {
				key := fmt.Sprint(strings.Repeat("k", rng.IntN(tc.keyPadding+1)), rng.IntN(keys))
				m := versionMeta{}
				if rng.IntN(4) != 0 {
					m = versionMeta{exists: true, createRevision: int64(op + 1), modRevision: int64(op + 2), version: int64(op % 13), lease: rng.Int64()}
				}
				if _, ok := c.get([]byte(key)); !ok {
					order = append(order, key)
				}
				model[key] = m
				c.put([]byte(key), m)
				if op%97 != 0 && op < 19990 {
					continue
				}
				held := checkLatestCache(t, c)
				if len(held) == 0 || !slices.Equal(held, order[len(order)-len(held):]) {
					t.Fatalf("after %d puts the cache holds %d keys, not the newest in insertion order", op+1, len(held))
				}
				for _, k := range held {
					if got, _ := c.get([]byte(k)); got != model[k] {
						t.Fatalf("%q: %+v, want %+v", k, got, model[k])
					}
				}
				order = slices.Clone(held)
			}
			if c.heldBytes() > bytesMax {
				t.Fatalf("holds %d bytes, over its bound %d", c.heldBytes(), bytesMax)
			}
		})
	}
}

func TestLatestCacheEvictsTheOldestAndAnUpdateKeepsItsPlace(t *testing.T) {
	// Room for three records of two-byte keys.
	c := newLatestCache(propLatestCacheBytes)
	for _, k := range []string{"k0", "k1", "k2"} {
		c.put([]byte(k), versionMeta{exists: true, createRevision: 1, version: 1})
	}
	c.put([]byte("k0"), versionMeta{exists: true, createRevision: 1, version: 2})
	c.put([]byte("k3"), versionMeta{})
	if _, ok := c.get([]byte("k0")); ok {
		t.Fatal("k0, inserted first and updated since, was not evicted first")
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, ok := c.get([]byte(k)); !ok {
			t.Fatalf("%s evicted", k)
		}
	}
}

func TestLatestCacheOffOrTooSmall(t *testing.T) {
	var off *latestCache = newLatestCache(0)
	off.put([]byte("k"), versionMeta{exists: true, createRevision: 1})
	if _, ok := off.get([]byte("k")); ok || off.heldBytes() != 0 {
		t.Fatal("a cache with no bytes holds an entry")
	}
	if c := newLatestCache(2 * latestRecordMinLen); c != nil {
		t.Fatalf("a cache of %d bytes has room for %d bytes of records", 2*latestRecordMinLen, len(c.ring))
	}
	c := newLatestCache(propLatestCacheBytes)
	long := string(bytes.Repeat([]byte("k"), 8*len(c.ring)))
	c.put([]byte(long), versionMeta{exists: true, createRevision: 1})
	if _, ok := c.get([]byte(long)); ok || c.heldBytes() != 0 {
		t.Fatal("an entry larger than the whole ring was cached")
	}
}

func TestLatestCacheHoldsADeletedKeyAsNotExisting(t *testing.T) {
	c := newLatestCache(1 << 20)
	c.put([]byte("k"), versionMeta{exists: true, createRevision: 3, version: 1})
	c.put([]byte("k"), versionMeta{}) // deleted
	if m, ok := c.get([]byte("k")); !ok || m.exists {
		t.Fatalf("a cached key deleted reads %+v, %v; want cached as not existing", m, ok)
	}
}
