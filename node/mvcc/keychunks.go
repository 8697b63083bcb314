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
//	"kd"                            -> the same, for the last chunk
//
// Chunk boundaries come from the keys themselves: an index entry whose
// encoded key hashes to zero in its low chunkBits bits starts a chunk. So
// boundaries do not move when other keys come and go, and a replica or a
// rebuild finds the same chunks. A chunk spans the index entries from one
// boundary (or the start) up to the next boundary, and is stored under that
// next boundary's key, or under "kd" for the last one: the chunk holding a
// key is then the first chunk key above it, found by a forward seek, which
// in Pebble costs the same however often the chunk was rewritten (a reverse
// seek steps back over every rewrite still in the memtable). live is how
// many of the chunk's entries exist at the newest revision, rev the newest
// revision at which that number or the chunk's span changed.
//
// Invariants: "kc" B exists exactly for every boundary B with a key index
// entry, and "kd" once any entry was written; live counts the chunk's
// entries without a deletion; rev is at least every created and deleted
// revision in the chunk.
//
// A read at revision R may use a chunk's live count only when rev <= R:
// nothing in the chunk changed after R, so what exists now existed at R.
// Other chunks, the partial chunks at the range's ends, and reads in the
// past walk their index entries.
const prefixKeyChunk = 'c'

// defaultChunkBits sets the expected chunk length, 2^chunkBits entries.
const defaultChunkBits = 6

// lastChunkKey is the key of the last chunk, after every boundary's.
var lastChunkKey = []byte{prefixAll, prefixKeyChunk + 1}

// keyChunksStart and keyChunksEnd bound the chunk keys.
var (
	keyChunksStart = []byte{prefixAll, prefixKeyChunk}
	keyChunksEnd   = []byte{prefixAll, prefixKeyChunk + 1, 0}
)

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
func chunkKeyOf(k []byte) []byte { return rekey(k, prefixKeyChunk) }

// isBoundary reports whether the key index (or chunk) key k starts a
// chunk, with chunks of about 2^chunkBits entries.
func isBoundary(k []byte, chunkBits int) bool {
	return crc32.Checksum(k[2:], chunkHashTable)&(1<<chunkBits-1) == 0
}

// seekChunk returns the chunk holding the key index key whose own chunk
// key is own (chunkKeyOf): the first chunk key above own. found is false in
// an empty index.
func seekChunk(src *source, own []byte) (key []byte, c keyChunk, found bool, err error) {
	lower := append(append(src.scratch(), own...), 0)
	src.keep(lower)
	it := src.acquire(lower, keyChunksEnd)
	defer src.release()
	if !it.First() {
		return nil, keyChunk{}, false, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, keyChunk{}, false, err
	}
	return bytes.Clone(it.Key()), decodeChunk(it.Key(), v), true, nil
}

// findChunk returns the chunk holding the key index key indexKey: the
// Writer's last found chunk if it holds it, else seekChunk's. Keys created
// or deleted in key order (a bulk load, a prefix deleted) land in the
// chunk of the key before them, and the seek for it was most of such a
// key's index upkeep.
func (w *Writer) findChunk(indexKey []byte) (key []byte, c keyChunk, found bool, err error) {
	own := chunkKeyOf(indexKey)
	if key, c, ok := w.chunk.lookup(own); ok {
		return key, c, true, nil
	}
	if w.chunkSrc == nil {
		it, err := w.b.NewIter(&pebble.IterOptions{LowerBound: keyChunksStart, UpperBound: keyChunksEnd})
		if err != nil {
			return nil, keyChunk{}, false, fmt.Errorf("open batch iterator: %w", err)
		}
		w.chunkSrc = newSource(it, true, w.s.chunkBits)
	}
	if key, c, found, err = seekChunk(w.chunkSrc, own); found {
		w.chunk = lastChunk{from: own, key: key, c: c, valid: true}
	}
	return key, c, found, err
}

// lastChunk is the chunk a Writer found last, and the span of chunk keys
// known to lead to it: no chunk key lies strictly between from and key, so
// the first chunk key above any chunk key in [from, key) is key.
//
// Only the Writer changes chunks while it is unpublished (CompactStep,
// which merges them, runs between Writers), so the span stays true until
// the Writer writes a chunk: a write of this chunk changes its count, any
// other may be a new chunk key inside the span.
type lastChunk struct {
	from, key []byte
	c         keyChunk
	valid     bool
}

func (l *lastChunk) lookup(own []byte) ([]byte, keyChunk, bool) {
	if !l.valid || bytes.Compare(own, l.from) < 0 || bytes.Compare(own, l.key) >= 0 {
		return nil, keyChunk{}, false
	}
	return l.key, l.c, true
}

func (l *lastChunk) wrote(key []byte, c keyChunk) {
	if l.valid && bytes.Equal(key, l.key) {
		l.c = c
		return
	}
	l.valid = false
}

// keyCreated updates the chunks for a key that now exists at rev. indexKey
// is its key index key. A boundary key without an index entry before
// splits its chunk: the entries before it stay, under its own chunk key.
func (w *Writer) keyCreated(indexKey []byte, rev int64) error {
	key, c, found, err := w.findChunk(indexKey)
	if err != nil {
		return err
	}
	if !found {
		key, c = lastChunkKey, keyChunk{}
	}
	split := false
	if isBoundary(indexKey, w.s.chunkBits) {
		_, had, err := getCopy(w.b, indexKey)
		if err != nil {
			return err
		}
		split = !had
	}
	if !split {
		return w.setChunk(key, keyChunk{live: c.live + 1, rev: rev})
	}
	moved, err := liveUntilBoundary(w.src, indexKey)
	if err != nil {
		return err
	}
	if err := w.setChunk(key, keyChunk{live: moved + 1, rev: rev}); err != nil {
		return err
	}
	return w.setChunk(chunkKeyOf(indexKey), keyChunk{live: c.live - moved, rev: rev})
}

// keyDeleted updates the chunks for a key deleted at rev.
func (w *Writer) keyDeleted(indexKey []byte, rev int64) error {
	key, c, found, err := w.findChunk(indexKey)
	if err != nil {
		return err
	}
	if !found || c.live == 0 {
		return fmt.Errorf("mvcc: deleting %q found no live key in its chunk: corrupt key index", indexKey)
	}
	return w.setChunk(key, keyChunk{live: c.live - 1, rev: rev})
}

func (w *Writer) setChunk(key []byte, c keyChunk) error {
	w.chunk.wrote(key, c)
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
	for valid := it.First(); valid && !isBoundary(it.Key(), src.chunkBits); valid = it.NextPrefix() {
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

// chunkMerger folds the chunk ending at each boundary key that compaction
// removes into the chunk after it, across one CompactStep. Keys come in
// order, so the removed chunks' counts are carried forward to the next
// surviving boundary seen in this step or, at the step's end, to the next
// chunk in the database.
type chunkMerger struct {
	chunkBits int
	b         *pebble.Batch
	it        *pebble.Iterator // over the committed chunks
	// carry is what removed chunks hand on; lastRemoved is the chunk key
	// of the last of them, nil when nothing is carried.
	carry       keyChunk
	lastRemoved []byte
}

// removed notes a key whose index entry compaction deletes.
func (m *chunkMerger) removed(indexKey []byte) error {
	if !isBoundary(indexKey, m.chunkBits) {
		return nil
	}
	key := chunkKeyOf(indexKey)
	gone, err := m.read(key)
	if err != nil {
		return err
	}
	m.carry = keyChunk{live: m.carry.live + gone.live, rev: max(m.carry.rev, gone.rev)}
	m.lastRemoved = key
	if err := m.b.Delete(key, nil); err != nil {
		return fmt.Errorf("merge key chunk %q: %w", key, err)
	}
	return nil
}

// survived notes a key whose index entry stays: a boundary's chunk takes
// what is carried.
func (m *chunkMerger) survived(indexKey []byte) error {
	if m.lastRemoved == nil || !isBoundary(indexKey, m.chunkBits) {
		return nil
	}
	return m.handOn(chunkKeyOf(indexKey))
}

// flush hands what is carried to the chunk after the last removed one,
// at the end of a step.
func (m *chunkMerger) flush() error {
	if m.lastRemoved == nil {
		return nil
	}
	m.it.SetBounds(append(bytes.Clone(m.lastRemoved), 0), keyChunksEnd)
	if !m.it.First() {
		return fmt.Errorf("mvcc: no key chunk after %q: corrupt key index (%v)", m.lastRemoved, m.it.Error())
	}
	return m.handOn(bytes.Clone(m.it.Key()))
}

func (m *chunkMerger) handOn(key []byte) error {
	c, err := m.read(key)
	if err != nil {
		return err
	}
	c = keyChunk{live: c.live + m.carry.live, rev: max(c.rev, m.carry.rev)}
	m.carry, m.lastRemoved = keyChunk{}, nil
	if err := m.b.Set(key, encodeChunk(c), nil); err != nil {
		return fmt.Errorf("merge key chunk %q: %w", key, err)
	}
	return nil
}

// read returns the committed chunk at key.
func (m *chunkMerger) read(key []byte) (keyChunk, error) {
	m.it.SetBounds(key, append(bytes.Clone(key), 0))
	if !m.it.First() {
		return keyChunk{}, fmt.Errorf("mvcc: boundary %q has no key chunk: corrupt key index (%v)", key, m.it.Error())
	}
	v, err := m.it.ValueAndErr()
	if err != nil {
		return keyChunk{}, err
	}
	return decodeChunk(key, v), nil
}
