package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
)

// The key index: one small entry per user key, saying when the key's latest
// incarnation was created and, if it was, deleted. It exists so that a
// range's count (etcd returns the number of keys in the whole range, however
// small the limit) costs one short entry per key instead of a walk over
// every version and value: Kubernetes lists with a limit, and a page of 100
// keys from a million would otherwise read the million values.
//
//	"ki" escape(userKey) 0x00 0x01 -> created(8 bytes BE) [deleted(8 bytes BE)]
//
// The key part is a version key's prefix with 'i' for 'v', so the index
// sorts like the keyspace. created is the create revision of the key's
// newest incarnation; deleted, present only when that incarnation's newest
// version is a tombstone, is the revision that deleted it. A put that
// creates a key and a delete write the entry; a put over a live key leaves
// it alone, so updates, the common write, cost nothing here.
//
// Invariant: a user key has an entry whenever it has a version; the entry
// describes its newest incarnation. Compaction removes the entry with the
// key's last version.
//
// The entry answers "does the key exist at rev?" for every rev at or above
// its newest event: deleted <= rev means no, created <= rev (and no
// deletion at or below rev) means yes. Below created the answer depends on
// older incarnations, so the count reads the version (countKeys).
const prefixKeyIndex = 'i'

// metaKeyIndexKey marks a store whose key index is complete. A store
// written before the index existed lacks it; Open builds the index then.
var metaKeyIndexKey = []byte{prefixAll, prefixMeta, 'k', 'e', 'y', 'i', 'n', 'd', 'e', 'x'}

// keyIndexEnd is an exclusive upper bound of the key index.
var keyIndexEnd = []byte{prefixAll, prefixKeyIndex + 1}

// keyState is a decoded key index entry.
type keyState struct {
	created int64
	deleted int64 // 0: the incarnation is live
}

// liveness is what a key index entry says about a key at one revision.
type liveness int

const (
	keyAbsent liveness = iota
	keyLive
	keyUnknown // the entry is younger than the revision: read the versions
)

func (st keyState) at(rev int64) liveness {
	switch {
	case st.deleted != 0 && st.deleted <= rev:
		return keyAbsent
	case st.created <= rev:
		return keyLive
	}
	return keyUnknown
}

func encodeKeyState(dst []byte, st keyState) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(st.created))
	if st.deleted != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(st.deleted))
	}
	return dst
}

func decodeKeyState(k, v []byte) keyState {
	switch len(v) {
	case 8:
		return keyState{created: int64(binary.BigEndian.Uint64(v))}
	case 16:
		return keyState{created: int64(binary.BigEndian.Uint64(v)), deleted: int64(binary.BigEndian.Uint64(v[8:]))}
	}
	panic(fmt.Sprintf("mvcc: corrupt key index entry %q: %d bytes", k, len(v)))
}

// appendIndexKey appends the key index key of userKey to dst.
func appendIndexKey(dst, userKey []byte) []byte {
	n := len(dst)
	dst = appendPrefix(dst, userKey)
	dst[n+1] = prefixKeyIndex
	return dst
}

// indexKeyOf returns the key index key with the body of k: the user key's
// whose version prefix k is, or the boundary's whose chunk key k is.
func indexKeyOf(k []byte) []byte { return rekey(k, prefixKeyIndex) }

// rekey returns a copy of the key k (a version prefix, key index or chunk
// key: "k", a kind byte, a body) with the kind byte set to kind.
func rekey(k []byte, kind byte) []byte {
	c := bytes.Clone(k)
	c[1] = kind
	return c
}

// userKeyOfIndexKey decodes the user key of a key index key.
func userKeyOfIndexKey(k []byte) []byte {
	v := append(append([]byte(nil), k...), make([]byte, revisionBytes)...)
	v[1] = prefixVersion
	return decodeUserKey(v)
}

// setKeyState records the state of userKey's newest incarnation.
func (w *Writer) setKeyState(userKey []byte, st keyState) error {
	w.scratch = appendIndexKey(w.scratch[:0], userKey)
	n := len(w.scratch)
	w.scratch = encodeKeyState(w.scratch, st)
	if err := w.b.Set(w.scratch[:n], w.scratch[n:], nil); err != nil {
		return fmt.Errorf("index %q: %w", userKey, err)
	}
	if w.s.live != nil && !w.s.opts.plantLiveKeysIgnoreWrites {
		w.liveChanges = append(w.liveChanges, liveKeyChange{fp: liveKeyFingerprint(userKey), live: st.deleted == 0})
	}
	return nil
}

// maxUnknownKeys bounds the keys a count reads versions for after its
// index pass. Beyond it (a read far in the past, where many keys were
// recreated since) the count walks the versions instead: the list would
// otherwise grow with the range.
const maxUnknownKeys = 1024

// countKeys returns the number of keys existing at atRev in the etcd range
// [key, rangeEnd), rangeEnd non-empty, from the key index and its chunks.
func countKeys(src *source, key, rangeEnd []byte, atRev int64) (int64, error) {
	if !isGteRange(rangeEnd) && bytes.Compare(rangeEnd, key) <= 0 {
		return 0, nil // an empty range, as scanRange has it
	}
	lower := appendIndexKey(nil, key)
	upper := keyIndexEnd
	if !isGteRange(rangeEnd) {
		upper = appendIndexKey(nil, rangeEnd)
	}
	c := &counter{src: src, atRev: atRev}
	if err := c.countRange(lower, upper); err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	if c.overflow {
		return countByVersions(src, key, rangeEnd, atRev)
	}
	for _, k := range c.unknown {
		meta, err := getLatestMeta(src, k, atRev)
		if err != nil {
			return 0, err
		}
		if meta.exists {
			c.count++
		}
	}
	return c.count, nil
}

// counter adds up, at one revision, what the key index and its chunks know
// about a range of keys, and lists the keys they cannot tell about.
type counter struct {
	src     *source
	atRev   int64
	count   int64
	unknown [][]byte
	// overflow is set when unknown would pass maxUnknownKeys: the caller
	// walks the versions instead.
	overflow bool
}

// maxDirtyChunks bounds the chunks a count walks entry by entry because
// they changed after the read's revision. Beyond it (a read far in the
// past) the count walks the rest of the range's entries instead: the list
// would otherwise grow with the range.
const maxDirtyChunks = 256

// countRange counts the index entries in [lower, upper): those before the
// first chunk boundary one by one, then whole chunks where their count
// holds at the read's revision, and the rest one by one.
func (c *counter) countRange(lower, upper []byte) error {
	first, err := c.walk(lower, upper, false)
	if err != nil || first == nil || c.overflow {
		return err
	}
	dirty, ok, err := c.addChunks(first, upper)
	if err != nil {
		return err
	}
	if !ok { // too many changed chunks
		_, err := c.walk(first, upper, true)
		return err
	}
	for _, d := range dirty {
		if _, err := c.walk(d, upper, true); err != nil || c.overflow {
			return err
		}
	}
	return nil
}

// walk counts the index entries from lower up to upper or the next chunk
// boundary, whose key it returns (nil at upper). The entry at lower itself
// may be a boundary: it is counted when inChunk says the walk covers that
// chunk, and ends the walk otherwise.
func (c *counter) walk(lower, upper []byte, inChunk bool) (boundary []byte, err error) {
	it := c.src.acquire(lower, upper)
	defer c.src.release()
	for valid := it.First(); valid; valid = it.NextPrefix() {
		k := it.Key()
		if isBoundary(k, c.src.chunkBits) && !(inChunk && bytes.Equal(k, lower)) {
			return bytes.Clone(k), nil
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		c.add(k, decodeKeyState(k, v))
		if c.overflow {
			return nil, nil
		}
	}
	return nil, it.Error()
}

func (c *counter) add(k []byte, st keyState) {
	switch st.at(c.atRev) {
	case keyLive:
		c.count++
	case keyUnknown:
		if len(c.unknown) == maxUnknownKeys {
			c.overflow = true
			return
		}
		c.unknown = append(c.unknown, userKeyOfIndexKey(k))
	}
}

// addChunks counts the whole chunks from the boundary first to upper whose
// count holds at the read's revision. A chunk is stored under the boundary
// that ends it, so those are the chunk keys above first's up to upper's.
// It returns the index keys where the chunks left to walk start: the
// changed ones, and the part before upper that no whole chunk covers. ok
// is false when more than maxDirtyChunks changed; then nothing was counted:
// walk everything from first.
func (c *counter) addChunks(first, upper []byte) (dirty [][]byte, ok bool, err error) {
	chunkUpper := keyChunksEnd // the last chunk is whole too
	if !bytes.Equal(upper, keyIndexEnd) {
		chunkUpper = append(chunkKeyOf(upper), 0)
	}
	it := c.src.acquire(append(chunkKeyOf(first), 0), chunkUpper)
	defer c.src.release()
	// The current chunk starts at first, then at the boundary of the
	// previous chunk key, kept in prev (reused: most chunks are whole).
	var prev []byte
	start := func() []byte {
		if prev == nil {
			return first
		}
		return indexKeyOf(prev)
	}
	sum, ended := int64(0), false
	for valid := it.First(); valid; valid = it.NextPrefix() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false, err
		}
		if ch := decodeChunk(it.Key(), v); ch.rev <= c.atRev {
			sum += ch.live
		} else if dirty = append(dirty, start()); len(dirty) > maxDirtyChunks {
			return nil, false, it.Error()
		}
		if ended = bytes.Equal(it.Key(), lastChunkKey); ended {
			break
		}
		prev = append(prev[:0], it.Key()...)
	}
	if err := it.Error(); err != nil {
		return nil, false, err
	}
	c.count += sum
	if rest := start(); !ended && !bytes.Equal(rest, upper) {
		dirty = append(dirty, rest)
	}
	return dirty, true, nil
}

// countByVersions counts the keys existing at atRev by walking their
// versions: what the key index saves.
func countByVersions(src *source, key, rangeEnd []byte, atRev int64) (int64, error) {
	count := int64(0)
	err := scanRange(src, key, rangeEnd, atRev, func(*entry) bool {
		count++
		return true
	})
	return count, err
}

// ensureKeyIndex builds the key index and its chunks for a store written
// before they existed, in batches of keyIndexBuildBatch keys, and marks
// them complete. A crash part-way leaves no mark, and the next Open builds
// them again: both derive from the versions alone, so rewriting them is
// harmless.
func (s *Store) ensureKeyIndex() (err error) {
	_, found, err := getCopy(s.db, metaKeyIndexKey)
	if err != nil || found {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	defer closeIter(it, &err)
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := s.buildKeyIndex(it, b); err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	if err := b.Set(metaKeyIndexKey, nil, nil); err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	// Flushed rather than synced: a member's database has no write-ahead
	// log.
	return durable.Flush(s.db, s.opts.BackgroundFailure)
}

// buildKeyIndex writes the index entry of every key and the chunks, into
// b, committing it every keyIndexBuildBatch entries.
func (s *Store) buildKeyIndex(it *pebble.Iterator, b *pebble.Batch) error {
	var chunk chunkBuilder
	for valid := it.First(); valid; valid = it.SeekGE(nextKeyBound(it.Key()[:len(it.Key())-revisionBytes])) {
		st, err := stateFromVersions(it)
		if err != nil {
			return err
		}
		indexKey := indexKeyOf(it.Key()[:len(it.Key())-revisionBytes])
		if err := b.Set(indexKey, encodeKeyState(nil, st), nil); err != nil {
			return err
		}
		if ended, c := chunk.add(indexKey, st, s.chunkBits); ended != nil {
			if err := b.Set(ended, encodeChunk(c), nil); err != nil {
				return err
			}
		}
		if b.Count() >= keyIndexBuildBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if key, c := chunk.last(); key != nil {
		return b.Set(key, encodeChunk(c), nil)
	}
	return nil
}

// chunkBuilder derives the chunks from the key index entries in key order.
type chunkBuilder struct {
	c       keyChunk
	entries bool // whether an entry was added
}

// add adds the entry at indexKey; at a boundary, the chunk before it ends
// and is returned with its key.
func (cb *chunkBuilder) add(indexKey []byte, st keyState, chunkBits int) (ended []byte, c keyChunk) {
	if isBoundary(indexKey, chunkBits) {
		ended, c = chunkKeyOf(indexKey), cb.c
		cb.c = keyChunk{}
	}
	cb.entries = true
	if st.deleted == 0 {
		cb.c.live++
	}
	cb.c.rev = max(cb.c.rev, st.created, st.deleted)
	return ended, c
}

// last returns the last chunk, if there was any entry.
func (cb *chunkBuilder) last() (key []byte, c keyChunk) {
	if !cb.entries {
		return nil, keyChunk{}
	}
	return lastChunkKey, cb.c
}

// keyIndexBuildBatch bounds the entries of one batch when building the
// key index, and so the memory the build takes.
const keyIndexBuildBatch = 10000

// stateFromVersions derives a key's index entry from its versions. It is
// positioned at the key's newest version and leaves it there: the newest
// version is a put (its create revision is the incarnation's) or a
// tombstone, whose incarnation began at the create revision of the put
// below it, if compaction left one.
func stateFromVersions(it *pebble.Iterator) (keyState, error) {
	k := it.Key()
	checkVersionKey(k)
	v, err := it.ValueAndErr()
	if err != nil {
		return keyState{}, err
	}
	newest := decodeRevision(k[len(k)-revisionBytes:])
	if kindOf(k, v) == kindPut {
		return keyState{created: decodeValue(nil, v).CreateRevision}, nil
	}
	st := keyState{created: newest.main, deleted: newest.main}
	prefix := append([]byte(nil), k[:len(k)-revisionBytes]...)
	if !it.Next() || !hasVersionPrefix(it.Key(), prefix) {
		// A tombstone alone: compaction at exactly its revision removed
		// the put under it (matchesVersions allows the entry's older
		// create revision). An entry created at the deletion reads
		// right: the count reads the versions below it.
		return st, repositionAt(it, prefix, newest)
	}
	pv, err := it.ValueAndErr()
	if err != nil {
		return keyState{}, err
	}
	if kv := decodeValue(nil, pv); kv != nil {
		st.created = kv.CreateRevision
	}
	return st, repositionAt(it, prefix, newest)
}

// repositionAt moves it back to the version of prefix at rev.
func repositionAt(it *pebble.Iterator, prefix []byte, rev revision) error {
	if !it.SeekGE(appendRevision(append([]byte(nil), prefix...), rev)) {
		return fmt.Errorf("version of %q at %v vanished", prefix, rev)
	}
	return nil
}

// VerifyKeyIndex checks the key index against the versions: every key with
// a version has the entry its versions imply, and no other entry exists.
// It reads the whole keyspace. Safe for concurrent use.
func (s *Store) VerifyKeyIndex() (err error) {
	v := s.openView()
	defer v.close()
	versions, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return fmt.Errorf("verify key index: %w", err)
	}
	defer closeIter(versions, &err)
	index, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAll, prefixKeyIndex}, UpperBound: keyIndexEnd})
	if err != nil {
		return fmt.Errorf("verify key index: %w", err)
	}
	defer closeIter(index, &err)
	if err := verifyKeyIndex(versions, index); err != nil {
		return err
	}
	chunks, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: keyChunksStart, UpperBound: keyChunksEnd})
	if err != nil {
		return fmt.Errorf("verify key index: %w", err)
	}
	defer closeIter(chunks, &err)
	return verifyKeyChunks(index, chunks, v.chunkBits)
}

// verifyKeyChunks derives the chunks from the index entries and compares
// them with the stored ones: the same keys and live counts, and a revision
// no older than any entry's.
func verifyKeyChunks(index, chunks *pebble.Iterator, chunkBits int) error {
	validChunk := chunks.First()
	check := func(key []byte, want keyChunk) error {
		if !validChunk || !bytes.Equal(chunks.Key(), key) {
			return fmt.Errorf("key index chunk %q missing", key)
		}
		v, err := chunks.ValueAndErr()
		if err != nil {
			return err
		}
		if got := decodeChunk(chunks.Key(), v); got.live != want.live || got.rev < want.rev {
			return fmt.Errorf("key index chunk %q says %+v, its entries %+v", key, got, want)
		}
		validChunk = chunks.Next()
		return nil
	}
	var cb chunkBuilder
	for valid := index.First(); valid; valid = index.Next() {
		v, err := index.ValueAndErr()
		if err != nil {
			return err
		}
		if ended, c := cb.add(index.Key(), decodeKeyState(index.Key(), v), chunkBits); ended != nil {
			if err := check(ended, c); err != nil {
				return err
			}
		}
	}
	if key, c := cb.last(); key != nil {
		if err := check(key, c); err != nil {
			return err
		}
	} else if validChunk && bytes.Equal(chunks.Key(), lastChunkKey) {
		// The last chunk outlives the keys: an empty one may remain.
		if err := check(lastChunkKey, keyChunk{}); err != nil {
			return err
		}
	}
	if validChunk {
		return fmt.Errorf("key index chunk %q without a boundary entry", chunks.Key())
	}
	return errors.Join(index.Error(), chunks.Error())
}

// matchesVersions reports whether the entry st agrees with fromVersions,
// what stateFromVersions derived. A tombstone alone (kept by a compaction
// at its own revision, the put under it removed) no longer shows when its
// incarnation was created, so any create revision up to the deletion
// agrees: the entry answers only for revisions at or above the deletion.
func (st keyState) matchesVersions(fromVersions keyState) bool {
	if fromVersions.deleted != 0 && fromVersions.created == fromVersions.deleted {
		return st.deleted == fromVersions.deleted && st.created <= st.deleted
	}
	return st == fromVersions
}

func verifyKeyIndex(versions, index *pebble.Iterator) error {
	validIndex := index.First()
	for valid := versions.First(); valid; valid = versions.SeekGE(nextKeyBound(versions.Key()[:len(versions.Key())-revisionBytes])) {
		// The entry's key is taken before stateFromVersions moves the
		// iterator: its Key is valid only until then.
		entryKey := indexKeyOf(versions.Key()[:len(versions.Key())-revisionBytes])
		want, err := stateFromVersions(versions)
		if err != nil {
			return err
		}
		if !validIndex || !bytes.Equal(index.Key(), entryKey) {
			return fmt.Errorf("key %q has versions but no key index entry", decodeUserKey(versions.Key()))
		}
		v, err := index.ValueAndErr()
		if err != nil {
			return err
		}
		if got := decodeKeyState(index.Key(), v); !got.matchesVersions(want) {
			return fmt.Errorf("key %q: key index says %+v, versions say %+v", decodeUserKey(versions.Key()), got, want)
		}
		validIndex = index.Next()
	}
	if validIndex {
		return fmt.Errorf("key index entry %q without versions", index.Key())
	}
	return errors.Join(versions.Error(), index.Error())
}

// indexCreated records in the key index and its chunks that userKey, which
// did not exist, exists from rev.
func (w *Writer) indexCreated(userKey []byte, rev int64) error {
	if err := w.keyCreated(appendIndexKey(nil, userKey), rev); err != nil {
		return err
	}
	return w.setKeyState(userKey, keyState{created: rev})
}

// indexDeleted records in the key index and its chunks that key, live
// since createRev, is deleted at rev.
func (w *Writer) indexDeleted(key []byte, createRev, rev int64) error {
	if err := w.keyDeleted(appendIndexKey(nil, key), rev); err != nil {
		return err
	}
	return w.setKeyState(key, keyState{created: createRev, deleted: rev})
}
