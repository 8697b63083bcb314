package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A member keeps two Pebble databases (docs/architecture.md, "Two
// databases"): the raft log, with a write-ahead log synced once per Ready,
// and the applied state, without one. Each entry is then written once
// before it is applied and its effect once when the state's memtable is
// flushed, instead of both going through one write-ahead log and then
// being flushed too. The price is recovery: after a crash the state is as
// of its last flush, and Open applies the log's entries since then again.
// Three rules keep that possible:
//
//   - the log is never truncated past the state's durable applied index
//     (maybeTruncateLog flushes the state first);
//   - an installed snapshot is named in CURRENT before the log is cut at
//     it, so a crash between the two leaves a state newer than its log,
//     which recoverLog cuts as the install would have;
//   - bootstrap makes the state durable before the log.

// logKeys are the raft log's keys in a database written before the log had
// its own: everything under "r" but the ConfState ("rc"), which stays with
// the applied state.
var logKeys = [][2][]byte{{[]byte("re"), []byte("rf")}, {[]byte("rh"), []byte("ri")}, {[]byte("rt"), []byte("ru")}}

// openLogDB opens the member's log database. A member whose state database
// still holds its raft log (written before the log had a database of its
// own) has it moved: copied into a new log database under a temporary
// name, synced, renamed into place, then deleted from the state.
func openLogDB(cfg Config, state *pebble.DB, cache *pebble.Cache) (*pebble.DB, error) {
	path := cfg.FS.PathJoin(cfg.Dir, logDBName)
	if _, err := cfg.FS.Stat(path); err == nil {
		return openPebbleAt(cfg, logDBName, cache, logDB)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	const movingName = logDBName + ".moving"
	if err := cfg.FS.RemoveAll(cfg.FS.PathJoin(cfg.Dir, movingName)); err != nil {
		return nil, err
	}
	moving, err := openPebbleAt(cfg, movingName, cache, logDB)
	if err != nil {
		return nil, err
	}
	moved, err := copySpans(state, moving, logKeys)
	if err == nil {
		err = moving.Flush()
	}
	if err = errors.Join(err, moving.Close()); err != nil {
		return nil, fmt.Errorf("move the raft log to its own database: %w", err)
	}
	if err := cfg.FS.Rename(cfg.FS.PathJoin(cfg.Dir, movingName), path); err != nil {
		return nil, err
	}
	if err := durable.SyncDir(cfg.FS, cfg.Dir); err != nil {
		return nil, err
	}
	if moved {
		b := state.NewBatch()
		for _, span := range logKeys {
			if err := b.DeleteRange(span[0], span[1], nil); err != nil {
				b.Close()
				return nil, err
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return nil, fmt.Errorf("drop the moved raft log: %w", err)
		}
	}
	return openPebbleAt(cfg, logDBName, cache, logDB)
}

// moveBatchBytesMax bounds one batch of a moved raft log (entries may be
// 1.5 MiB each).
const moveBatchBytesMax = 64 << 20

// copySpans copies the keys of spans from src into dst and reports whether
// there were any.
func copySpans(src, dst *pebble.DB, spans [][2][]byte) (bool, error) {
	found := false
	for _, span := range spans {
		it, err := src.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return false, err
		}
		b := dst.NewBatch()
		for valid := it.First(); valid; valid = it.Next() {
			v, err := it.ValueAndErr()
			if err == nil {
				err = b.Set(bytes.Clone(it.Key()), bytes.Clone(v), nil)
			}
			if err == nil && b.Len() > moveBatchBytesMax {
				err = b.Commit(pebble.NoSync)
				b.Close()
				b = dst.NewBatch()
			}
			if err != nil {
				it.Close()
				b.Close()
				return false, err
			}
			found = true
		}
		err = errors.Join(it.Close(), b.Commit(pebble.NoSync))
		b.Close()
		if err != nil {
			return false, err
		}
	}
	return found, nil
}

// recoverLog loads the applied index and makes the log go on from it: a
// state that a crash left newer than its log is an installed snapshot's
// whose log was never cut (see above), and the log is cut now. The
// HardState's commit index, written without a sync when only it changes,
// may be older than the applied state a flush made durable; it is raised
// to the applied index, which only committed entries reach.
func (n *Node) recoverLog() (uint64, error) {
	applied, term, err := loadAppliedIndex(n.db)
	if err != nil {
		return 0, err
	}
	if applied == 0 {
		return 0, nil // a joining member, empty until its first snapshot
	}
	covers, err := n.log.Covers(applied, term)
	if err != nil {
		return 0, err
	}
	b := n.logDB.NewBatch()
	defer b.Close()
	switch {
	case !covers && term == 0:
		return 0, fmt.Errorf("applied index %d has no term, and the raft log does not reach it: %w", applied, errCorrupt)
	case !covers:
		if err := n.log.InstallSnapshot(b, applied, term, n.log.ConfState()); err != nil {
			return 0, err
		}
	case n.log.HardState().GetCommit() < applied:
		hs := proto.Clone(n.log.HardState()).(*raftpb.HardState)
		hs.Commit = proto.Uint64(applied)
		if err := n.log.SetHardState(b, hs); err != nil {
			return 0, err
		}
	default:
		return applied, nil
	}
	// Not synced: both fixes derive from the applied state, so an Open
	// after a crash that lost them makes them again, and the next synced
	// commit of the log makes them durable. (A sync here would also fail
	// on a disk whose syncs fail, where Open has nothing to sync.)
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("recover the raft log at the applied index %d: %w", applied, err)
	}
	return applied, nil
}

// cutLogAtSnapshot makes the raft log start after an installed snapshot's
// index. It need not be synced once CURRENT names the snapshot's state: if
// it is lost, recoverLog cuts the log again; if a later synced commit of
// the log survives, so does this.
func (n *Node) cutLogAtSnapshot(meta *raftpb.SnapshotMetadata, opts *pebble.WriteOptions) error {
	b := n.logDB.NewBatch()
	defer b.Close()
	if err := n.log.InstallSnapshot(b, meta.GetIndex(), meta.GetTerm(), meta.GetConfState()); err != nil {
		return err
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("cut the raft log at the installed snapshot %d: %w", meta.GetIndex(), err)
	}
	return nil
}

// stateFlushes paces the flushes of the applied state's database. Without
// a write-ahead log, a memtable Pebble rotated on its own would be
// flushed on its goroutine at a moment no driver sees: the node flushes
// first, when what it wrote since the last flush reaches 5/8 of a memtable
// (each batch is at most about a quarter of one, persistBatchBytes), so
// every flush starts inside a call into the node,
// and a driver that must know (the simulator waits for flushes to end
// before a crash) counts them with StateFlushes.
type stateFlushes struct {
	// memTableBytes is the state database's memtable size, as opened.
	memTableBytes int64
	// unflushedBytes is what was committed to the state database since
	// its last flush began: the applied state a crash would lose, counted
	// in the database's size (DBSize). Read by other goroutines.
	unflushedBytes atomic.Int64
	// started counts the flushes the node started.
	started atomic.Uint64
}

// stateFlushNumerator / stateFlushDenominator of a memtable written since
// the last flush starts the next one. A batch takes more of a memtable
// than its own length: memTableEntryOverheadBytes per entry is about what
// Pebble's skiplist adds to each (a node and its tower), so many tiny
// writes still start the flush before the memtable is full.
const (
	stateFlushNumerator        = 5
	stateFlushDenominator      = 8
	memTableEntryOverheadBytes = 64
)

// commitState commits b, a batch of the applied state's database, without
// a sync (it has no write-ahead log), and starts a flush when it is due.
func (n *Node) commitState(b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	f := &n.stateFlushes
	written := int64(b.Len()) + int64(b.Count())*memTableEntryOverheadBytes
	if f.unflushedBytes.Add(written) < f.memTableBytes*stateFlushNumerator/stateFlushDenominator {
		return nil
	}
	f.unflushedBytes.Store(0)
	f.started.Add(1)
	if _, err := n.db.AsyncFlush(); err != nil {
		return fmt.Errorf("flush applied state: %w", err)
	}
	return nil
}

// flushState flushes the applied state's database and waits until it is
// durable.
func (n *Node) flushState() error {
	n.stateFlushes.unflushedBytes.Store(0)
	n.stateFlushes.started.Add(1)
	return n.db.Flush()
}

// StateFlushes counts the flushes of the applied state's database the node
// started; safe for concurrent use. A driver that waits for storage to be
// idle checks when it moved.
func (n *Node) StateFlushes() uint64 { return n.stateFlushes.started.Load() }

// FlushAppliedState makes the applied state durable, so that the next Open
// need not apply the raft log's entries again: a member stopping cleanly
// calls it before Close. A crash without it loses nothing but time.
func (n *Node) FlushAppliedState() error {
	if n.db == nil {
		return ErrStopped
	}
	if err := n.flushState(); err != nil {
		return fmt.Errorf("flush applied state: %w", err)
	}
	return nil
}
