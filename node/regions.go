package node

import "github.com/cockroachdb/pebble/v2"

// regionPrefixBytes is the length of the prefix that names a region of the
// state database: every key of the node and of the keyspace starts with
// two bytes that say what it is ("kv" versions, "ki" the key index, "kc"
// its chunks, "km" the keyspace's meta keys, "aa" the applied index, "am"
// members...).
const regionPrefixBytes = 2

// splitTablesAtRegions makes every table Pebble writes, by a flush or a
// compaction, hold keys of one region only.
//
// Why: one batch of puts writes a few keys in every region (a version, an
// index entry, a chunk count, the revision). A flushed table that held all
// of them would span from the chunks to the newest version, so it would
// overlap every table of the level below in between, and the compaction
// that moves it down would rewrite them all, however few of its keys
// landed there. Loading keys in order (a bulk load, a restore) then
// rewrote the whole key index and every version over and over: six bytes
// written at the bottom level per byte flushed, at a million keys. Split at
// the regions, a flush's versions and index entries overlap only their
// neighbours in key order, and the hot, small regions (chunks, meta keys)
// compact among themselves.
func splitTablesAtRegions(o *pebble.Options) {
	o.Experimental.SpanPolicyFunc = regionSpan
}

// regionSpan is a pebble.SpanPolicyFunc: the default policy, up to the end
// of start's region.
func regionSpan(start []byte) (pebble.SpanPolicy, []byte, error) {
	return pebble.SpanPolicy{}, regionEnd(start), nil
}

// regionEnd returns the first key after every key that shares start's
// region prefix, or nil if there is none (a prefix of 0xff bytes only).
func regionEnd(start []byte) []byte {
	end := append([]byte(nil), start[:min(len(start), regionPrefixBytes)]...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
