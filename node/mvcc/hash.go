package mvcc

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// HashKV returns a hash of the keyspace as of rev (0 means the current
// revision) and the compacted revision. It covers, per key in key order,
// every version with a revision in (compactRev, rev] and the newest version
// at or below compactRev unless it is a tombstone: exactly what compaction
// keeps, so replicas agree however far their physical removal got. Safe for
// concurrent use.
func (s *Store) HashKV(rev int64) (hash uint32, compactRev int64, err error) {
	v := s.openView()
	defer v.close()
	compactRev = max(v.compactRev, 0)
	switch {
	case rev == 0:
		rev = v.rev
	case rev > v.rev:
		return 0, 0, rpctypes.ErrGRPCFutureRev
	case rev < v.compactRev:
		return 0, 0, rpctypes.ErrGRPCCompacted
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return 0, 0, fmt.Errorf("hash kv: %w", err)
	}
	defer closeIter(it, &err)
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if err := hashVersions(it, h, compactRev, rev); err != nil {
		return 0, 0, fmt.Errorf("hash kv: %w", err)
	}
	return h.Sum32(), compactRev, nil
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
