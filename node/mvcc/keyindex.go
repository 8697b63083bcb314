package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

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

// indexKeyOfPrefix returns the key index key of the user key whose version
// prefix is given.
func indexKeyOfPrefix(prefix []byte) []byte {
	k := append([]byte(nil), prefix...)
	k[1] = prefixKeyIndex
	return k
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
	return nil
}

// maxUnknownKeys bounds the keys a count reads versions for after its
// index pass. Beyond it (a read far in the past, where many keys were
// recreated since) the count walks the versions instead: the list would
// otherwise grow with the range.
const maxUnknownKeys = 1024

// countKeys returns the number of keys existing at atRev in the etcd range
// [key, rangeEnd), rangeEnd non-empty, from the key index.
func countKeys(src *source, key, rangeEnd []byte, atRev int64) (int64, error) {
	count, unknown, ok, err := countFromIndex(src, key, rangeEnd, atRev)
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", key, err)
	}
	if !ok {
		return countByVersions(src, key, rangeEnd, atRev)
	}
	for _, k := range unknown {
		kv, err := getLatest(src, k, atRev)
		if err != nil {
			return 0, err
		}
		if kv != nil {
			count++
		}
	}
	return count, nil
}

// countFromIndex counts the keys the index knows to exist at atRev and
// returns those it cannot tell about; ok is false when there are more of
// those than maxUnknownKeys.
func countFromIndex(src *source, key, rangeEnd []byte, atRev int64) (count int64, unknown [][]byte, ok bool, err error) {
	buf := appendIndexKey(src.scratch(), key)
	n := len(buf)
	upper := keyIndexEnd
	if !isGteRange(rangeEnd) {
		buf = appendIndexKey(buf, rangeEnd)
		upper = buf[n:]
	}
	src.keep(buf)
	it := src.acquire(buf[:n], upper)
	defer src.release()
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, nil, false, err
		}
		switch decodeKeyState(it.Key(), v).at(atRev) {
		case keyLive:
			count++
		case keyUnknown:
			if len(unknown) == maxUnknownKeys {
				return 0, nil, false, it.Error()
			}
			unknown = append(unknown, userKeyOfIndexKey(it.Key()))
		}
	}
	return count, unknown, true, it.Error()
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

// ensureKeyIndex builds the key index of a store written before it existed,
// in batches of keyIndexBuildBatch keys, and marks it complete. A crash
// part-way leaves no mark, and the next Open builds it again: entries are
// derived from the versions alone, so rewriting them is harmless.
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
	for valid := it.First(); valid; valid = it.SeekGE(nextKeyBound(it.Key()[:len(it.Key())-revisionBytes])) {
		st, err := stateFromVersions(it)
		if err != nil {
			return fmt.Errorf("build key index: %w", err)
		}
		if err := b.Set(indexKeyOfPrefix(it.Key()[:len(it.Key())-revisionBytes]), encodeKeyState(nil, st), nil); err != nil {
			return fmt.Errorf("build key index: %w", err)
		}
		if b.Count() >= keyIndexBuildBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("build key index: %w", err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	if err := b.Set(metaKeyIndexKey, nil, nil); err != nil {
		return fmt.Errorf("build key index: %w", err)
	}
	return b.Commit(pebble.Sync)
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
		// Compaction keeps the put under a kept tombstone, so this is not
		// expected; an entry created at the deletion still reads right:
		// the count reads the versions below it.
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
	return verifyKeyIndex(versions, index)
}

func verifyKeyIndex(versions, index *pebble.Iterator) error {
	validIndex := index.First()
	for valid := versions.First(); valid; valid = versions.SeekGE(nextKeyBound(versions.Key()[:len(versions.Key())-revisionBytes])) {
		prefix := versions.Key()[:len(versions.Key())-revisionBytes]
		want, err := stateFromVersions(versions)
		if err != nil {
			return err
		}
		if !validIndex || !bytes.Equal(index.Key(), indexKeyOfPrefix(prefix)) {
			return fmt.Errorf("key %q has versions but no key index entry", decodeUserKey(versions.Key()))
		}
		v, err := index.ValueAndErr()
		if err != nil {
			return err
		}
		if got := decodeKeyState(index.Key(), v); got != want {
			return fmt.Errorf("key %q: key index says %+v, versions say %+v", decodeUserKey(versions.Key()), got, want)
		}
		validIndex = index.Next()
	}
	if validIndex {
		return fmt.Errorf("key index entry %q without versions", index.Key())
	}
	return errors.Join(versions.Error(), index.Error())
}
