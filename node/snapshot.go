package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A member's directory holds:
//
//	CURRENT           the name of the live database directory
//	db, db-<index>    Pebble databases: the first one, or one installed from
//	                  the snapshot at that raft index
//	snap/<index>      checkpoints this member made to send as snapshots
//	incoming/<index>  snapshots received and not yet installed
//
// A snapshot is a Pebble checkpoint of the whole database at an applied
// index. Installing one swaps the live database for it by writing CURRENT
// atomically; a crash before that leaves the old database live and the
// snapshot is simply received again. snapshot_transfer.go moves a
// checkpoint from snap/ on the sender to incoming/ on the receiver.
const (
	currentFile    = "CURRENT"
	firstDBName    = "db"
	SnapshotsDir   = "snap"
	IncomingDir    = "incoming"
	indexNameWidth = 16
)

func indexName(index uint64) string { return fmt.Sprintf("%0*x", indexNameWidth, index) }

// liveDBName reads CURRENT; a member without one uses the first database.
func liveDBName(fs vfs.FS, dir string) (string, error) {
	f, err := fs.Open(fs.PathJoin(dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return firstDBName, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", currentFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", currentFile, err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, "/\\") {
		return "", fmt.Errorf("%s names %q: %w", currentFile, name, errCorrupt)
	}
	return name, nil
}

// setLiveDBName replaces CURRENT atomically and durably.
func setLiveDBName(fs vfs.FS, dir, name string) error {
	return durable.ReplaceFile(fs, fs.PathJoin(dir, currentFile), []byte(name+"\n"))
}

// removeStale deletes databases other than the live one and snapshots not
// yet installed: leftovers of a crash in the middle of an install.
func removeStale(fs vfs.FS, dir, live string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		isDB := name == firstDBName || strings.HasPrefix(name, firstDBName+"-")
		if (isDB && name != live) || name == IncomingDir {
			if err := fs.RemoveAll(fs.PathJoin(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeSnapshot is the raft log's snapshot source: a checkpoint of the
// database at the applied index. The newest checkpoint is reused while the
// log still holds every entry after it and the configuration has not
// changed since (raft refuses a snapshot whose configuration does not
// include its recipient, such as a learner added after it was made).
func (n *Node) makeSnapshot() (*raftpb.Snapshot, error) {
	s, err := n.makeSnapshotOrFail()
	if err != nil {
		// Raft panics on any error of its storage but this one. The disk
		// failed: the member fail-stops at its next Process, as on any
		// other storage failure, and sends nothing meanwhile.
		if n.failed == nil {
			n.failed = fmt.Errorf("%w: make a snapshot: %v", ErrStorageFailed, err)
		}
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return s, nil
}

func (n *Node) makeSnapshotOrFail() (*raftpb.Snapshot, error) {
	if s := n.lastSnapshot; s != nil && s.GetMetadata().GetIndex() >= n.log.TruncatedIndex() &&
		proto.Equal(s.GetMetadata().GetConfState(), n.log.ConfState()) {
		return s, nil
	}
	index := n.applied
	term, err := n.log.Term(index)
	if err != nil {
		return nil, fmt.Errorf("snapshot at %d: %w", index, err)
	}
	rel := madeSnapshotPath(index)
	abs := n.cfg.FS.PathJoin(n.cfg.Dir, rel)
	if err := n.cfg.FS.RemoveAll(abs); err != nil {
		return nil, err
	}
	// The applied state has no write-ahead log: what is not flushed is
	// not in a checkpoint.
	if err := n.flushState(); err != nil {
		return nil, fmt.Errorf("flush for snapshot at %d: %w", index, err)
	}
	if err := n.db.Checkpoint(abs); err != nil {
		return nil, fmt.Errorf("checkpoint for snapshot at %d: %w", index, err)
	}
	n.removeSnapshotsBefore(index)
	n.lastSnapshot = &raftpb.Snapshot{
		Data: []byte(rel),
		Metadata: &raftpb.SnapshotMetadata{
			Index:     proto.Uint64(index),
			Term:      proto.Uint64(term),
			ConfState: proto.Clone(n.log.ConfState()).(*raftpb.ConfState),
		},
	}
	return n.lastSnapshot, nil
}

// removeSnapshotsBefore keeps the newest checkpoint and the one before it
// (a transfer of it may still be under way).
func (n *Node) removeSnapshotsBefore(index uint64) {
	if n.lastSnapshot == nil {
		return
	}
	keep := indexName(n.lastSnapshot.GetMetadata().GetIndex())
	dir := n.cfg.FS.PathJoin(n.cfg.Dir, SnapshotsDir)
	names, _ := n.cfg.FS.List(dir)
	for _, name := range names {
		if name != keep && name != indexName(index) {
			n.cfg.FS.RemoveAll(n.cfg.FS.PathJoin(dir, name))
		}
	}
}

// installSnapshot replaces the member's database with a received snapshot.
// snap.Data names the snapshot's directory relative to the member's
// directory (a SnapshotStager completed it under incoming/).
func (n *Node) installSnapshot(snap *raftpb.Snapshot) error {
	meta := snap.GetMetadata()
	if string(snap.GetData()) != incomingSnapshotPath(meta.GetIndex()) {
		return fmt.Errorf("node: snapshot at %d is not a staged one (%q)", meta.GetIndex(), snap.GetData())
	}
	staged := n.cfg.FS.PathJoin(n.cfg.Dir, string(snap.GetData()))
	name := firstDBName + "-" + indexName(meta.GetIndex())
	live := n.cfg.FS.PathJoin(n.cfg.Dir, name)
	if err := n.cfg.FS.RemoveAll(live); err != nil {
		return err
	}
	if err := n.cfg.FS.Rename(staged, live); err != nil {
		return fmt.Errorf("install snapshot at %d: %w", meta.GetIndex(), err)
	}
	return n.switchDB(name, meta)
}

// switchDB opens the installed database, names it in CURRENT, publishes it
// to readers and only then cuts the raft log at the snapshot. Each step is
// durable before the next starts but the cut, so a crash leaves CURRENT
// naming either the old database, intact, with the log as it was, or the
// installed one, with the log as it was or already cut: Open cuts it then
// (recoverLog). Cutting the log first would leave, after a crash, the old
// state with a log that no longer holds the entries that follow it. The
// old database stays open for the reads in flight on it: it is retired,
// and closed and removed by the loop once they are done (StoreView.reap).
func (n *Node) switchDB(name string, meta *raftpb.SnapshotMetadata) error {
	// openPebbleAt syncs the member's directory: the renamed snapshot
	// directory is durable from here on.
	db, err := openPebbleAt(n.cfg, name, n.cache, stateDB)
	if err != nil {
		return err
	}
	n.db = db
	n.stateFlushes.unflushedBytes.Store(0) // a checkpoint holds only flushed tables
	applied, _, err := loadAppliedIndex(n.db)
	if err != nil {
		return err
	}
	if applied != meta.GetIndex() {
		return fmt.Errorf("snapshot at %d holds state applied to %d: %w", meta.GetIndex(), applied, errCorrupt)
	}
	// The old database's flushes say nothing of the new one's files,
	// which are durable as received.
	n.stateFlushes.inFlight, n.stateFlushes.durableApplied = nil, applied
	if n.cfg.Knobs.CutLogBeforeSwitch {
		if err := n.cutLogAtSnapshot(meta, true); err != nil {
			return err
		}
	}
	if err := setLiveDBName(n.cfg.FS, n.cfg.Dir, name); err != nil {
		return fmt.Errorf("switch to installed snapshot: %w", err)
	}
	if !n.cfg.Knobs.CutLogBeforeSwitch {
		if err := n.cutLogAtSnapshot(meta, false); err != nil {
			return err
		}
	}
	if err := n.adoptSnapshotState(meta); err != nil {
		return err
	}
	n.view.publish(n.store, n.db, n.cfg.FS.PathJoin(n.cfg.Dir, name))
	return n.view.reap(n.removeAll)
}

// adoptSnapshotState opens the keyspace and the rest of the applied state
// the installed database holds.
func (n *Node) adoptSnapshotState(meta *raftpb.SnapshotMetadata) error {
	store, err := n.openStore()
	if err != nil {
		return fmt.Errorf("open installed keyspace: %w", err)
	}
	n.store = store
	members, err := loadMembers(n.db)
	if err != nil {
		return fmt.Errorf("load installed members: %w", err)
	}
	n.members.set(members)
	alarms, err := loadAlarms(n.db)
	if err != nil {
		return fmt.Errorf("load installed alarms: %w", err)
	}
	n.alarms.set(alarms)
	downgrade, err := loadDowngrade(n.db)
	if err != nil {
		return err
	}
	n.downgrade.p.Store(downgrade)
	if err := n.loadAuth(); err != nil {
		return fmt.Errorf("load installed auth state: %w", err)
	}
	n.applied = meta.GetIndex()
	n.lastSnapshot = nil
	return nil
}

// maybeTruncateLog removes old entries once SnapshotCount of them have been
// applied since the last truncation, keeping SnapshotCatchUpEntries so a
// member a little behind catches up from the log, not a snapshot.
//
// The log is the applied state's only record until the state is flushed,
// so it is cut no further than the newest flush seen to end
// (durableApplied). When that is not far enough, the node starts a flush
// if none is under way and truncates in a later call, once it has ended:
// waiting for it here stalled every request for the length of a flush
// (8-32 ms, 14 times in a 10 s run of one member's puts).
func (n *Node) maybeTruncateLog() error {
	if n.applied < n.log.TruncatedIndex()+n.cfg.SnapshotCount+n.cfg.SnapshotCatchUpEntries {
		return nil
	}
	upTo := n.applied - n.cfg.SnapshotCatchUpEntries
	if f := &n.stateFlushes; !n.cfg.Knobs.TruncateLogBeforeStateFlush {
		upTo = min(upTo, f.durableApplied)
		if upTo < n.log.TruncatedIndex()+n.cfg.SnapshotCount {
			if len(f.inFlight) > 0 {
				return nil
			}
			return n.startStateFlush(n.applied)
		}
	}
	if err := n.log.Truncate(upTo); err != nil {
		return fmt.Errorf("truncate raft log: %w", err)
	}
	// Not synced: losing it only keeps entries longer. The segments it
	// empties go after the next synced commit.
	return n.log.Commit(false)
}

// madeSnapshotPath is where, relative to the member's directory, the
// checkpoint made for sending the snapshot at index lives.
func madeSnapshotPath(index uint64) string { return SnapshotsDir + "/" + indexName(index) }

// incomingSnapshotPath is where, relative to the member's directory, a
// SnapshotStager completes the snapshot at index; the MsgSnap handed to the
// node names it in Snapshot.Data.
func incomingSnapshotPath(index uint64) string { return IncomingDir + "/" + indexName(index) }
