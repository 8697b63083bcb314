package mvcc

import (
	"context"
	"fmt"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
)

// CompactPending reports whether a published compaction still has versions
// to remove. Apply goroutine only.
func (s *Store) CompactPending() bool { return s.compaction.pending }

// CompactStep removes, into b, the versions made obsolete by the pending
// compaction for at most maxKeys user keys, and records in b where the next
// step continues. It reads committed state, so b need not be indexed; the
// caller commits b before the next step. done reports that nothing is left.
//
// Per key, the newest version at or below the compaction's revision stays
// unless it is a tombstone below that revision; older versions go. Readers are unaffected: they
// never read below the compacted revision, and a removed tombstone reads
// the same as nothing.
func (s *Store) CompactStep(b *pebble.Batch, maxKeys int) (done bool, err error) {
	if maxKeys <= 0 {
		panic(fmt.Sprintf("mvcc: CompactStep with maxKeys %d", maxKeys))
	}
	if s.writerActive {
		// An unpublished Writer's cached chunk (lastChunk) would miss the
		// chunks this step merges.
		panic("mvcc: CompactStep while a Writer is unpublished")
	}
	if s.compaction.recorded {
		// A Compact in an unpublished Writer will reset the cursor; a
		// cursor written now could overwrite that reset in the same batch.
		return false, nil
	}
	if !s.compaction.pending {
		return true, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return false, fmt.Errorf("compact step: %w", err)
	}
	defer closeIter(it, &err)
	chunks, err := s.db.NewIter(&pebble.IterOptions{LowerBound: keyChunksStart, UpperBound: keyChunksEnd})
	if err != nil {
		return false, fmt.Errorf("compact step: %w", err)
	}
	defer closeIter(chunks, &err)
	m := &chunkMerger{chunkBits: s.chunkBits, b: b, it: chunks}
	plan := compactPlan{target: s.compaction.target, dropNewestAtTarget: s.opts.CompactDropsNewestAtTarget}
	cursor, err := compactKeys(it, b, m, s.compaction.cursor, plan, maxKeys)
	if err == nil {
		err = m.flush()
	}
	if err != nil {
		return false, fmt.Errorf("compact step: %w", err)
	}
	return s.saveCursor(b, cursor)
}

// saveCursor records progress in b; a nil cursor means the compaction is
// complete.
func (s *Store) saveCursor(b *pebble.Batch, cursor []byte) (bool, error) {
	if cursor == nil {
		s.compaction.pending, s.compaction.cursor = false, nil
		if err := b.Delete(metaCursorKey, nil); err != nil {
			return false, fmt.Errorf("compact step: %w", err)
		}
		return true, nil
	}
	s.compaction.cursor = cursor
	if err := b.Set(metaCursorKey, cursor, nil); err != nil {
		return false, fmt.Errorf("compact step: %w", err)
	}
	return false, nil
}

// compactKeys visits up to maxKeys user keys from cursor and deletes their
// obsolete versions into b. It returns the next cursor, nil at the end.
// compactPlan is what one compaction removes: versions made obsolete by
// a compaction at target; dropNewestAtTarget plants a bug (see
// Options.CompactDropsNewestAtTarget).
type compactPlan struct {
	target             int64
	dropNewestAtTarget bool
}

func compactKeys(it *pebble.Iterator, b *pebble.Batch, m *chunkMerger, cursor []byte, plan compactPlan, maxKeys int) ([]byte, error) {
	valid := it.SeekGE(cursor)
	for n := 0; valid && n < maxKeys; n++ {
		_, prefix, _ := decodeVersionKey(it.Key())
		removed, err := compactKey(it, b, prefix, plan)
		if err == nil && removed {
			err = m.removed(indexKeyOf(prefix))
		} else if err == nil {
			err = m.survived(indexKeyOf(prefix))
		}
		if err != nil {
			return nil, err
		}
		valid = it.SeekGE(nextKeyBound(prefix))
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if !valid {
		return nil, nil
	}
	_, prefix, _ := decodeVersionKey(it.Key())
	return append([]byte(nil), prefix...), nil
}

// compactKey deletes the versions of one key that a compaction at target
// makes obsolete: all below the newest at or below target, and that one
// too if it is a tombstone below target.
//
// it is positioned at the key's newest version. When that one is a
// tombstone below target, the key goes entirely, with its key index entry.
func compactKey(it *pebble.Iterator, b *pebble.Batch, prefix []byte, plan compactPlan) (removed bool, err error) {
	target := plan.target
	newest := decodeRevision(it.Key()[len(prefix):])
	valid := it.SeekGE(seekAtOrBelow(prefix, target))
	if !valid || !hasVersionPrefix(it.Key(), prefix) {
		return false, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return false, err
	}
	// A tombstone exactly at target stays until a later compaction, so a
	// watch from the compacted revision still sees that revision's
	// deletes (as etcd 3.7 does).
	atOrBelow := decodeRevision(it.Key()[len(prefix):])
	if plan.dropNewestAtTarget && atOrBelow.main == target && newest.main > target {
		if err := b.Delete(it.Key(), nil); err != nil {
			return false, err
		}
	}
	if len(v) > 0 && v[0] == kindTombstone && atOrBelow.main < target {
		if err := b.Delete(it.Key(), nil); err != nil {
			return false, err
		}
		if newest.main <= target {
			removed = true
			if err := b.Delete(indexKeyOf(prefix), nil); err != nil {
				return false, err
			}
		}
	}
	for it.Next() && hasVersionPrefix(it.Key(), prefix) {
		if err := b.Delete(it.Key(), nil); err != nil {
			return false, err
		}
	}
	return removed, it.Error()
}

// Defragment rewrites the whole database with Pebble's manual compaction,
// dropping the space of removed versions and deleted keys. Reads and
// writes proceed meanwhile: Pebble compacts in the background of its
// published version, and commits never wait for it. It returns when the
// compaction has finished or ctx is done.
func (s *Store) Defragment(ctx context.Context) error {
	if err := s.db.Compact(ctx, defragStart, defragEnd, true); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	return nil
}

// defragStart and defragEnd span every key the member writes: all of them
// begin with a printable ASCII letter.
var (
	defragStart = []byte{0x00}
	defragEnd   = []byte{0xff}
)

// Checkpoint writes a consistent copy of the whole database into dir
// (hard links where it can), its memtables flushed first: a member's
// database has no write-ahead log, so what is not flushed would not be in
// it. Safe for concurrent use with reads and writes.
func (s *Store) Checkpoint(dir string) error {
	if err := durable.Flush(s.db, s.opts.BackgroundFailure); err != nil {
		return fmt.Errorf("flush for checkpoint: %w", err)
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
