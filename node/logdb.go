package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A member keeps its raft log in segment files (node/raftlog, directory
// logDirName) and its applied state in a Pebble database without a
// write-ahead log (docs/architecture.md, "The raft log and the applied
// state"). Each entry is then written once before it is applied and its
// effect once when the state's memtable is flushed. The price is
// recovery: after a crash the state is as of its last flush, and Open
// applies the log's entries since then again. Three rules keep that
// possible:
//
//   - the log is never truncated past the state's durable applied index
//     (maybeTruncateLog cuts it no further than a flush seen to end);
//   - an installed snapshot is named in CURRENT before the log is cut at
//     it, so a crash between the two leaves a state newer than its log,
//     which recoverLog cuts as the install would have;
//   - bootstrap makes the state durable before the log.

// logDirName is the directory of the raft log's segments, beside the live
// state database.
const logDirName = "wal"

// Earlier layouts kept the raft log in Pebble: in a database of its own,
// pebbleLogDBName, and before that in the state database. Their keys:
// "re" + index (8 bytes big-endian) → term (8 bytes big-endian) and the
// entry's protobuf; "rh" → the HardState's protobuf; "rt" → the index and
// term (8 bytes big-endian each) of the last entry truncated. Everything
// under "r" but the ConfState ("rc") is the log's.
const pebbleLogDBName = "raftlog"

var pebbleLogKeys = [][2][]byte{{[]byte("re"), []byte("rf")}, {[]byte("rh"), []byte("ri")}, {[]byte("rt"), []byte("ru")}}

// openRaftLog opens the member's raft log. A member whose log is still in
// Pebble, in a database of its own or in its state database, has it
// moved: written into new segments under a temporary name, synced,
// renamed into place, and then deleted from Pebble.
func openRaftLog(cfg Config, state *pebble.DB, cache *pebble.Cache) (*raftlog.Storage, error) {
	path := cfg.FS.PathJoin(cfg.Dir, logDirName)
	opts := raftlog.Options{SegmentBytes: cfg.LogSegmentBytes}
	if _, err := cfg.FS.Stat(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else if err != nil {
		if err := moveLogOutOfPebble(cfg, state, cache, opts); err != nil {
			return nil, fmt.Errorf("move the raft log out of Pebble: %w", err)
		}
	}
	if err := dropPebbleLog(cfg, state); err != nil {
		return nil, fmt.Errorf("drop the moved raft log: %w", err)
	}
	return raftlog.Open(cfg.FS, path, state, opts)
}

// moveLogOutOfPebble writes the log a member kept in Pebble, if any, into
// the segment directory; a member with no log gets an empty directory.
func moveLogOutOfPebble(cfg Config, state *pebble.DB, cache *pebble.Cache, opts raftlog.Options) error {
	src := state
	oldPath := cfg.FS.PathJoin(cfg.Dir, pebbleLogDBName)
	if _, err := cfg.FS.Stat(oldPath); err == nil {
		db, err := openPebbleAt(cfg, pebbleLogDBName, cache, pebbleLogDB)
		if err != nil {
			return err
		}
		defer db.Close()
		src = db
	}
	const movingName = logDirName + ".moving"
	moving := cfg.FS.PathJoin(cfg.Dir, movingName)
	if err := cfg.FS.RemoveAll(moving); err != nil {
		return err
	}
	if err := createDurably(cfg.FS, moving); err != nil {
		return err
	}
	dst, err := raftlog.Open(cfg.FS, moving, state, opts)
	if err != nil {
		return err
	}
	err = copyPebbleLog(src, dst)
	if err = errors.Join(err, dst.Close()); err != nil {
		return err
	}
	if err := cfg.FS.Rename(moving, cfg.FS.PathJoin(cfg.Dir, logDirName)); err != nil {
		return err
	}
	return durable.SyncDir(cfg.FS, cfg.Dir)
}

// moveBatchBytesMax bounds the entries one commit of a moved raft log
// writes (entries may be 1.5 MiB each).
const moveBatchBytesMax = 64 << 20

// copyPebbleLog writes the log src holds in Pebble's keys into dst, an
// empty log, and syncs it. A src without a HardState holds no log.
func copyPebbleLog(src *pebble.DB, dst *raftlog.Storage) error {
	hs := &raftpb.HardState{}
	v, closer, err := src.Get([]byte("rh"))
	if errors.Is(err, pebble.ErrNotFound) {
		return dst.Commit(true)
	}
	if err != nil {
		return err
	}
	err = proto.Unmarshal(v, hs)
	closer.Close()
	if err != nil {
		return fmt.Errorf("hard state: %v: %w", err, errCorrupt)
	}
	var truncIndex, truncTerm uint64
	if v, closer, err := src.Get([]byte("rt")); err == nil {
		if len(v) == 16 {
			truncIndex, truncTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		}
		closer.Close()
		if len(v) != 16 {
			return fmt.Errorf("truncated state of %d bytes: %w", len(v), errCorrupt)
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if err := dst.Restore(truncIndex, truncTerm, hs); err != nil {
		return err
	}
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: pebbleLogKeys[0][0], UpperBound: pebbleLogKeys[0][1]})
	if err != nil {
		return err
	}
	defer it.Close()
	var batch []*raftpb.Entry
	var batchBytes int
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		e := &raftpb.Entry{}
		if len(v) < 8 || proto.Unmarshal(v[8:], e) != nil {
			return fmt.Errorf("entry at key %x: %w", it.Key(), errCorrupt)
		}
		if e.GetIndex() <= truncIndex {
			continue
		}
		batch = append(batch, e)
		if batchBytes += len(e.GetData()); batchBytes >= moveBatchBytesMax {
			if err := errors.Join(dst.Append(batch), dst.Commit(false)); err != nil {
				return err
			}
			batch, batchBytes = nil, 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := dst.Append(batch); err != nil {
		return err
	}
	return dst.Commit(true)
}

// dropPebbleLog removes what is left of a log kept in Pebble once the
// segments hold it: the old log database, and the log's keys in the state
// database. A crash before this is done only leaves it for the next Open.
func dropPebbleLog(cfg Config, state *pebble.DB) error {
	if err := cfg.FS.RemoveAll(cfg.FS.PathJoin(cfg.Dir, pebbleLogDBName)); err != nil {
		return err
	}
	it, err := state.NewIter(&pebble.IterOptions{LowerBound: pebbleLogKeys[0][0], UpperBound: pebbleLogKeys[len(pebbleLogKeys)-1][1]})
	if err != nil {
		return err
	}
	found := false
	for valid := it.First(); valid && !found; valid = it.Next() {
		found = !bytes.HasPrefix(it.Key(), []byte("rc"))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil || !found {
		return err
	}
	b := state.NewBatch()
	defer b.Close()
	for _, span := range pebbleLogKeys {
		if err := b.DeleteRange(span[0], span[1], nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
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
	switch {
	case !covers && term == 0:
		return 0, fmt.Errorf("applied index %d has no term, and the raft log does not reach it: %w", applied, errCorrupt)
	case !covers:
		if err := n.log.InstallSnapshot(applied, term, n.log.ConfState()); err != nil {
			return 0, err
		}
	case n.log.HardState().GetCommit() < applied:
		hs := proto.Clone(n.log.HardState()).(*raftpb.HardState)
		hs.Commit = proto.Uint64(applied)
		if err := n.log.SetHardState(hs); err != nil {
			return 0, err
		}
	default:
		return applied, nil
	}
	// Not synced: both fixes derive from the applied state, so an Open
	// after a crash that lost them makes them again, and the next synced
	// commit of the log makes them durable. (A sync here would also fail
	// on a disk whose syncs fail, where Open has nothing to sync.)
	if err := n.log.Commit(false); err != nil {
		return 0, fmt.Errorf("recover the raft log at the applied index %d: %w", applied, err)
	}
	return applied, nil
}

// cutLogAtSnapshot makes the raft log start after an installed snapshot's
// index. It need not be synced once CURRENT names the snapshot's state: if
// it is lost, recoverLog cuts the log again; if a later synced commit of
// the log survives, so does this.
func (n *Node) cutLogAtSnapshot(meta *raftpb.SnapshotMetadata, sync bool) error {
	if err := n.log.InstallSnapshot(meta.GetIndex(), meta.GetTerm(), meta.GetConfState()); err != nil {
		return err
	}
	if err := n.log.Commit(sync); err != nil {
		return fmt.Errorf("cut the raft log at the installed snapshot %d: %w", meta.GetIndex(), err)
	}
	return nil
}

// stateFlushes paces the flushes of the applied state's database. Without
// a write-ahead log, a memtable Pebble rotated on its own would be
// flushed on its goroutine at a moment no driver sees: the node flushes
// first, when what it wrote since the last flush reaches 5/8 of a memtable
// (each batch is at most about a quarter of one, applyBatchBytes), so
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
	// inFlight are the flushes the node started and has not yet seen end,
	// oldest first. Pebble flushes memtables in order, so each one's end
	// means the ones before it ended too.
	inFlight []stateFlush
	// durableApplied is the applied index that the newest flush seen to
	// end made durable: what a crash keeps of the applied state, and so
	// how far the raft log may be truncated.
	durableApplied uint64
}

// begin counts a flush the node is about to start, after which nothing
// committed is unflushed, and returns f.
func (f *stateFlushes) begin() *stateFlushes {
	f.unflushedBytes.Store(0)
	f.started.Add(1)
	return f
}

// stateFlush is a flush of the applied state's database the node started.
type stateFlush struct {
	// done is closed when the flush has ended (pebble.DB.AsyncFlush).
	done <-chan struct{}
	// applied is the applied index of the newest batch the flush holds.
	applied uint64
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
	// largeBatchMarginBytes covers what Pebble takes from a memtable's
	// size before halving it for the large-batch threshold (its empty
	// skiplist).
	largeBatchMarginBytes = 4 << 10
)

// largeBatchEntryBytes is what Pebble reserves in a memtable for each
// entry of a batch beyond its key and value: a skiplist node with a full
// tower (184 bytes), the key's trailer and alignment. Pebble turns a
// batch whose reservation reaches half a memtable into a memtable of its
// own and flushes it at once, on its own goroutine.
const largeBatchEntryBytes = 200

// commitState commits b, a batch of the applied state's database, without
// a sync (it has no write-ahead log), and starts a flush when it is due.
//
// A batch that Pebble may flush by itself at commit (largeBatchEntryBytes)
// is counted as a flush, and followed by one the node starts, so that no
// flush begins unseen by the driver and the memtable is empty after it
// whether Pebble flushed or not. b.Len() bounds the batch's keys and
// values from above, so the estimate never misses a batch Pebble flushes.
func (n *Node) commitState(b *pebble.Batch, applied uint64) error {
	f := &n.stateFlushes
	large := int64(b.Len())+int64(b.Count())*largeBatchEntryBytes >= f.memTableBytes/2-largeBatchMarginBytes
	if large {
		f.started.Add(1)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	written := int64(b.Len()) + int64(b.Count())*memTableEntryOverheadBytes
	if f.unflushedBytes.Add(written) < f.memTableBytes*stateFlushNumerator/stateFlushDenominator && !large {
		return nil
	}
	return n.startStateFlush(applied)
}

// startStateFlush starts a flush of the applied state's database, which
// holds the state as of applied, without waiting for it.
func (n *Node) startStateFlush(applied uint64) error {
	f := n.stateFlushes.begin()
	done, err := n.db.AsyncFlush()
	if err != nil {
		return fmt.Errorf("flush applied state: %w", err)
	}
	f.inFlight = append(f.inFlight, stateFlush{done: done, applied: applied})
	return nil
}

// noteEndedStateFlushes advances durableApplied past the flushes that have
// ended, without waiting for any. Process calls it first, so the answer
// does not depend on how far a flush started in the same call got: the
// simulator waits for every flush a call started before the next call.
func (n *Node) noteEndedStateFlushes() {
	f := &n.stateFlushes
	for len(f.inFlight) > 0 {
		select {
		case <-f.inFlight[0].done:
			f.durableApplied = max(f.durableApplied, f.inFlight[0].applied)
			f.inFlight = f.inFlight[1:]
		default:
			return
		}
	}
}

// flushState flushes the applied state's database and waits until it is
// durable.
func (n *Node) flushState() error {
	f := n.stateFlushes.begin()
	if err := n.storageFailed(durable.Flush(n.db, n.cfg.backgroundFailure)); err != nil {
		return err
	}
	// Every flush started before this one has ended too.
	f.inFlight = f.inFlight[:0]
	f.durableApplied = max(f.durableApplied, n.applied)
	return nil
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
