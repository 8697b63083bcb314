package mvcc

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// KeyValueHash is a hash of the keyspace at one revision, as etcd's
// HashKV answers it.
type KeyValueHash struct {
	// Hash covers, per key in key order, every version with a revision in
	// (CompactRevision, Revision] and the newest version at or below
	// CompactRevision unless it is a tombstone.
	Hash uint32
	// CompactRevision is the compacted revision, -1 if none (as etcd).
	CompactRevision int64
	// Revision is the revision hashed.
	Revision int64
	// CurrentRevision is the store's revision when the hash was taken.
	CurrentRevision int64
}

// HashKV returns a hash of the keyspace as of rev (0 means the current
// revision) and the compacted revision (0 if none). See HashByRev.
func (s *Store) HashKV(rev int64) (hash uint32, compactRev int64, err error) {
	h, err := s.HashByRev(rev)
	return h.Hash, max(h.CompactRevision, 0), err
}

// HashByRev hashes the keyspace as of rev (0 means the current revision).
// It covers exactly what compaction keeps, so replicas agree at the same
// revision however far their physical removal of old versions got. Safe
// for concurrent use.
func (s *Store) HashByRev(rev int64) (_ KeyValueHash, err error) {
	v := s.openView()
	defer v.close()
	out := KeyValueHash{CompactRevision: v.compactRev, Revision: rev, CurrentRevision: v.rev}
	switch {
	case rev == 0:
		out.Revision = v.rev
	case rev > v.rev:
		return KeyValueHash{}, rpctypes.ErrGRPCFutureRev
	case rev < v.compactRev:
		return KeyValueHash{}, rpctypes.ErrGRPCCompacted
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return KeyValueHash{}, fmt.Errorf("hash kv: %w", err)
	}
	defer closeIter(it, &err)
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	// The hash starts with the name of what it covers, so an empty
	// keyspace does not hash to zero, which etcd's clients cannot tell
	// from an absent hash.
	h.Write(versionsStart)
	if err := hashVersions(it, h, max(v.compactRev, 0), out.Revision); err != nil {
		return KeyValueHash{}, fmt.Errorf("hash kv: %w", err)
	}
	out.Hash = h.Sum32()
	return out, nil
}

// hashVersions feeds h with the covered versions. Versions of a key come
// newest first; keptBelow tracks whether the key's newest version at or
// below compactRev was seen.
func hashVersions(it *pebble.Iterator, h hash.Hash32, compactRev, rev int64) error {
	var prefix []byte
	keptBelow := false
	for valid := it.First(); valid; valid = it.Next() {
		_, p, r := decodeVersionKey(it.Key())
		if prefix == nil || !hasVersionPrefix(it.Key(), prefix) {
			prefix, keptBelow = append(prefix[:0], p...), false
		}
		if r.main > rev || keptBelow {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if r.main <= compactRev {
			keptBelow = true
			if v[0] == kindTombstone {
				continue
			}
		}
		hashVersion(h, it.Key(), v)
	}
	return it.Error()
}

func hashVersion(h hash.Hash32, key, value []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write(key)
	binary.BigEndian.PutUint64(n[:], uint64(len(value)))
	h.Write(n[:])
	h.Write(value)
}
