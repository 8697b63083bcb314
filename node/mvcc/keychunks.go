package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
)

// Key index chunks: the key index cut into runs of about 64 entries, each
// with the number of its keys that exist now. A count over a large range
// adds up chunks instead of reading every entry: a page of Kubernetes'
// paginated list over a million keys reads about 16,000 chunk entries and a
// few hundred index entries instead of a million.
//
//	"kc" escape(boundary) 0x00 0x01 -> live(8 bytes BE) rev(8 bytes BE)
//
// Chunk boundaries come from the keys themselves: an index entry whose
// encoded key hashes to zero in its low chunkBits bits starts a chunk, as
// does the empty key, which no etcd key can be (the first chunk, created
// with the first key). So boundaries do not move when other keys come and
// go, and a replica or a rebuild finds the same chunks. A chunk spans the
// index entries from its boundary to the next one; live is how many of them
// exist at the newest revision, rev the newest revision at which that
// number or the chunk's span changed.
//
// Invariants: "kc" B exists exactly for the empty key and every boundary B
// with a key index entry; live counts the chunk's entries without a
// deletion; rev is at least every created and deleted revision in the
// chunk.
//
// A read at revision R may use a chunk's live count only when rev <= R:
// nothing in the chunk changed after R, so what exists now existed at R.
// Other chunks, the partial chunks at the range's ends, and reads in the
// past walk their index entries.
const prefixKeyChunk = 'c'

// defaultChunkBits sets the expected chunk length, 2^chunkBits entries.
const defaultChunkBits = 6

// keyChunksEnd is an exclusive upper bound of the chunks.
var keyChunksEnd = []byte{prefixAll, prefixKeyChunk + 1}

// firstChunkKey is the chunk key of the empty key, the first boundary.
var firstChunkKey = []byte{prefixAll, prefixKeyChunk, escapeByte, terminatorByte}

var chunkHashTable = crc32.MakeTable(crc32.Castagnoli)

type keyChunk struct {
	live int64
	rev  int64
}

func encodeChunk(c keyChunk) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(c.live))
	return binary.BigEndian.AppendUint64(b, uint64(c.rev))
}

func decodeChunk(k, v []byte) keyChunk {
	if len(v) != 16 {
		panic(fmt.Sprintf("mvcc: corrupt key chunk %q: %d bytes", k, len(v)))
	}
	c := keyChunk{live: int64(binary.BigEndian.Uint64(v)), rev: int64(binary.BigEndian.Uint64(v[8:]))}
	if c.live < 0 {
		panic(fmt.Sprintf("mvcc: corrupt key chunk %q: %d live keys", k, c.live))
	}
	return c
}

// chunkKeyOf returns the chunk key whose boundary is the key of the given
// key index (or version prefix) key: the same body under "kc".
func chunkKeyOf(k []byte) []byte {
	c := append([]byte(nil), k...)
	c[1] = prefixKeyChunk
	return c
}

// isBoundary reports whether the key index (or chunk) key k starts a
// chunk, with chunks of about 2^chunkBits entries.
func isBoundary(k []byte, chunkBits int) bool {
	return crc32.Checksum(k[2:], chunkHashTable)&(1<<chunkBits-1) == 0
}

// indexKeyOfChunk returns the key index key of a chunk's boundary.
func indexKeyOfChunk(k []byte) []byte {
	c := append([]byte(nil), k...)
	c[1] = prefixKeyIndex
	return c
}

// findChunk returns the chunk holding the key index key k: the greatest
// chunk key at or below k's. found is false in an empty index.
func findChunk(src *source, k []byte) (key []byte, c keyChunk, found bool, err error) {
	upper := append(chunkKeyOf(k), 0) // just above k's own chunk key
	it := src.acquire(firstChunkKey, upper)
	defer src.release()
	if !it.Last() {
		return nil, keyChunk{}, false, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, keyChunk{}, false, err
	}
	return bytes.Clone(it.Key()), decodeChunk(it.Key(), v), true, nil
}

// keyCreated updates the chunks for a key that now exists at rev. indexKey
// is its key index key; isNew is set when it had no index entry before, so
// that a boundary key starts its chunk now.
func (w *Writer) keyCreated(indexKey []byte, isNew bool, rev int64) error {
	key, c, found, err := findChunk(w.src, indexKey)
	if err != nil {
		return err
	}
	if !found {
		key, c = firstChunkKey, keyChunk{}
	}
	if !isNew || !isBoundary(indexKey, w.s.chunkBits) {
		return w.setChunk(key, keyChunk{live: c.live + 1, rev: rev})
	}
	moved, err := liveUntilBoundary(w.src, indexKey)
	if err != nil {
		return err
	}
	if err := w.setChunk(key, keyChunk{live: c.live - moved, rev: rev}); err != nil {
		return err
	}
	return w.setChunk(chunkKeyOf(indexKey), keyChunk{live: moved + 1, rev: rev})
}

// keyDeleted updates the chunks for a key deleted at rev.
func (w *Writer) keyDeleted(indexKey []byte, rev int64) error {
	key, c, found, err := findChunk(w.src, indexKey)
	if err != nil {
		return err
	}
	if !found || c.live == 0 {
		return fmt.Errorf("mvcc: deleting %q found no live key in its chunk: corrupt key index", indexKey)
	}
	return w.setChunk(key, keyChunk{live: c.live - 1, rev: rev})
}

func (w *Writer) setChunk(key []byte, c keyChunk) error {
	if err := w.b.Set(key, encodeChunk(c), nil); err != nil {
		return fmt.Errorf("key chunk %q: %w", key, err)
	}
	return nil
}

// liveUntilBoundary counts the entries after the key index key k that exist
// now, up to the next boundary: those a new chunk at k takes over.
func liveUntilBoundary(src *source, k []byte) (int64, error) {
	it := src.acquire(append(bytes.Clone(k), 0), keyIndexEnd)
	defer src.release()
	live := int64(0)
	for valid := it.First(); valid && !isBoundary(it.Key(), src.chunkBits); valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		if decodeKeyState(it.Key(), v).deleted == 0 {
			live++
		}
	}
	return live, it.Error()
}

// chunkMerger folds the chunks of boundary keys that compaction removes
// into the chunk before them, across one CompactStep. Keys come in order,
// so the chunk before a removed boundary is the last surviving boundary
// seen in this step or, before the first, the one in the database; merges
// accumulate in into and are written when a later boundary survives or the
// step ends.
type chunkMerger struct {
	chunkBits int
	b         *pebble.Batch
	it        *pebble.Iterator // over the committed chunks
	into      []byte           // the chunk key merged into; nil: none yet
	c         keyChunk
	// dirty is set when c differs from what the database holds.
	dirty bool
}

// survived notes a key whose index entry stays: a boundary ends the run of
// merges before it.
func (m *chunkMerger) survived(indexKey []byte) error {
	if !isBoundary(indexKey, m.chunkBits) {
		return nil
	}
	if err := m.flush(); err != nil {
		return err
	}
	m.into = nil
	return nil
}

// removed notes a key whose index entry compaction deletes.
func (m *chunkMerger) removed(indexKey []byte) error {
	if !isBoundary(indexKey, m.chunkBits) {
		return nil
	}
	key := chunkKeyOf(indexKey)
	gone, err := m.read(key, false)
	if err != nil {
		return err
	}
	if m.into == nil {
		if m.into, err = m.readBefore(key); err != nil {
			return err
		}
	}
	m.c = keyChunk{live: m.c.live + gone.live, rev: max(m.c.rev, gone.rev)}
	m.dirty = true
	if err := m.b.Delete(key, nil); err != nil {
		return fmt.Errorf("merge key chunk %q: %w", key, err)
	}
	return nil
}

// readBefore loads the committed chunk before key into m.c.
func (m *chunkMerger) readBefore(key []byte) ([]byte, error) {
	m.it.SetBounds(firstChunkKey, key)
	if !m.it.Last() {
		return nil, fmt.Errorf("mvcc: no key chunk before %q: corrupt key index", key)
	}
	into := bytes.Clone(m.it.Key())
	c, err := m.read(into, true)
	m.c = c
	return into, err
}

// read returns the committed chunk at key; positioned says the iterator
// is on it already.
func (m *chunkMerger) read(key []byte, positioned bool) (keyChunk, error) {
	if !positioned {
		m.it.SetBounds(key, append(bytes.Clone(key), 0))
		if !m.it.First() {
			return keyChunk{}, fmt.Errorf("mvcc: boundary %q has no key chunk: corrupt key index (%v)", key, m.it.Error())
		}
	}
	v, err := m.it.ValueAndErr()
	if err != nil {
		return keyChunk{}, err
	}
	return decodeChunk(key, v), nil
}

func (m *chunkMerger) flush() error {
	if !m.dirty {
		return nil
	}
	m.dirty = false
	if err := m.b.Set(m.into, encodeChunk(m.c), nil); err != nil {
		return fmt.Errorf("merge key chunk %q: %w", m.into, err)
	}
	return nil
}
