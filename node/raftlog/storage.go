package raftlog

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// keyConfState is the ConfState's key in the applied state's database.
var keyConfState = []byte("rc")

// ErrCorrupt marks a raft log that contradicts itself or fails its checks
// where no crash can explain it. The node must stop.
var ErrCorrupt = errors.New("raft log corrupt")

// SegmentBytesDefault is the size past which the log starts a new segment.
const SegmentBytesDefault = 64 << 20

// preallocateBytes is how much of a segment is allocated at a time.
const preallocateBytes = 4 << 20

// entryPos is where one entry's record is, and its term.
type entryPos struct {
	seq  uint64 // 0: in a segment already deleted (only while opening)
	off  int64
	size int64 // the whole record's
	term uint64
}

// Storage is the raft log in segment files. See the package documentation.
type Storage struct {
	fs              vfs.FS
	dir             string
	segmentBytesMax int64

	hardState *raftpb.HardState
	confState *raftpb.ConfState

	// truncatedIndex and truncatedTerm identify the last entry removed from
	// the log (or the bootstrap point); lastIndex and lastTerm its last.
	// Invariant: truncatedIndex <= lastIndex, and entries[i] is where
	// entry truncatedIndex+1+i is, for every entry up to lastIndex.
	truncatedIndex, truncatedTerm uint64
	lastIndex, lastTerm           uint64
	entries                       []entryPos

	// segments are the sequence numbers of the segment files kept, oldest
	// first, consecutive; the last is active: written at activeEnd. Empty
	// until the first write.
	segments  []uint64
	active    vfs.File
	activeEnd int64
	// allocatedEnd is how far the active segment's blocks were allocated
	// ahead of its records (preallocateBytes at a time), so that most
	// writes do not allocate blocks before their sync.
	allocatedEnd int64
	// pending are records staged since the last Commit, to be written at
	// activeEnd; dirDirty says a segment was made since the directory was
	// last synced.
	pending  staged
	dirDirty bool
	// epoch marks every record written since Open (see record.go).
	epoch uint32
	// reader is the last older segment read from, kept open.
	reader    vfs.File
	readerSeq uint64
	// err is the first write or sync error: the log takes no more writes
	// after one, as what reached the disk is then unknown.
	err error

	snapshots SnapshotSource
}

var _ raft.Storage = (*Storage)(nil)

// Options are how Open lays out a log.
type Options struct {
	// SegmentBytes is the size past which a new segment starts
	// (SegmentBytesDefault if 0).
	SegmentBytes int64
}

// Open opens the log in dir on fs, creating dir if it does not exist, and
// loads the ConfState from state, the database of the applied state it
// belongs to. A log never written is empty (LastIndex 0), ready for
// Bootstrap.
func Open(fs vfs.FS, dir string, state *pebble.DB, opts Options) (*Storage, error) {
	s := &Storage{fs: fs, dir: dir, segmentBytesMax: opts.SegmentBytes,
		hardState: &raftpb.HardState{}, confState: &raftpb.ConfState{}}
	if s.segmentBytesMax == 0 {
		s.segmentBytesMax = SegmentBytesDefault
	}
	if err := getProto(state, keyConfState, s.confState); err != nil {
		return nil, fmt.Errorf("load conf state: %w", err)
	}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func getProto(db *pebble.DB, key []byte, m proto.Message) error {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// Close closes the log's files. What was committed without a sync is
// written but not durable.
func (s *Storage) Close() error {
	var err error
	if s.active != nil {
		err = s.active.Close()
		s.active = nil
	}
	if s.reader != nil {
		err = errors.Join(err, s.reader.Close())
		s.reader = nil
	}
	return err
}

// IsEmpty reports whether the log was never bootstrapped.
func (s *Storage) IsEmpty() bool {
	return s.lastIndex == 0 && raft.IsEmptyHardState(s.hardState)
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	return proto.Clone(s.hardState).(*raftpb.HardState), proto.Clone(s.confState).(*raftpb.ConfState), nil
}

// HardState returns the last HardState staged by SetHardState.
func (s *Storage) HardState() *raftpb.HardState { return s.hardState }

// ConfState returns the last ConfState staged by SetConfState.
func (s *Storage) ConfState() *raftpb.ConfState { return s.confState }

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) { return s.truncatedIndex + 1, nil }

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) { return s.lastIndex, nil }

// TruncatedIndex is the index of the last entry removed from the log.
func (s *Storage) TruncatedIndex() uint64 { return s.truncatedIndex }

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	switch {
	case i == s.truncatedIndex:
		return s.truncatedTerm, nil
	case i < s.truncatedIndex:
		return 0, raft.ErrCompacted
	case i > s.lastIndex:
		return 0, raft.ErrUnavailable
	}
	return s.entries[i-s.truncatedIndex-1].term, nil
}

// Entries implements raft.Storage: the entries [lo, hi), at most maxSize
// bytes of them but always at least one. Their data share buffers the
// call allocated.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if lo <= s.truncatedIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex+1 {
		panic(fmt.Sprintf("raftlog: entries [%d, %d) asked beyond last index %d", lo, hi, s.lastIndex))
	}
	positions := s.entries[lo-s.truncatedIndex-1 : hi-s.truncatedIndex-1]
	// Raft counts an entry's protobuf size; its data alone is a lower
	// bound, so this reads every entry the exact count below may keep.
	var size uint64
	for i, p := range positions {
		size += uint64(p.size - headerBytes - entryFixedBytes)
		if i > 0 && size > maxSize {
			positions = positions[:i]
			break
		}
	}
	ents := make([]*raftpb.Entry, 0, len(positions))
	size = 0
	for len(positions) > 0 {
		// One read for every entry in the same segment.
		n := 1
		for n < len(positions) && positions[n].seq == positions[0].seq {
			n++
		}
		run := positions[:n]
		positions = positions[n:]
		buf, err := s.readSpan(run[0].seq, run[0].off, run[n-1].off+run[n-1].size)
		if err != nil {
			return nil, fmt.Errorf("read entries from %d: %w", lo, err)
		}
		for _, p := range run {
			rec := buf[p.off-run[0].off : p.off-run[0].off+p.size]
			r, _, ok := parseRecord(rec)
			if !ok || r.kind != kindEntry {
				return nil, fmt.Errorf("entry %d's record in segment %d at %d fails its check: %w",
					lo+uint64(len(ents)), p.seq, p.off, ErrCorrupt)
			}
			e, err := decodeEntry(r.payload)
			if err != nil {
				return nil, err
			}
			if want := lo + uint64(len(ents)); e.GetIndex() != want {
				return nil, fmt.Errorf("entry %d where %d expected: %w", e.GetIndex(), want, ErrCorrupt)
			}
			if size += uint64(proto.Size(e)); len(ents) > 0 && size > maxSize {
				return ents, nil
			}
			ents = append(ents, e)
		}
	}
	return ents, nil
}

// SnapshotSource makes a snapshot of the member's state when raft needs one
// to send to a member whose log is behind the truncation point.
type SnapshotSource func() (*raftpb.Snapshot, error)

// SetSnapshotSource sets where Snapshot gets its snapshots.
func (s *Storage) SetSnapshotSource(src SnapshotSource) { s.snapshots = src }

// Snapshot implements raft.Storage.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	if s.snapshots == nil {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return s.snapshots()
}

// The write methods stage records, and update what the log's readers see
// at once; Commit writes what they staged, synced or not. The node commits
// before anything may depend on a staged change surviving a crash.

// Append stages ents, replacing any entries at or after the first one's
// index.
func (s *Storage) Append(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if first <= s.truncatedIndex || first > s.lastIndex+1 {
		return fmt.Errorf("append at %d to log (%d, %d]: %w", first, s.truncatedIndex, s.lastIndex, ErrCorrupt)
	}
	for i, e := range ents {
		if e.GetIndex() != first+uint64(i) {
			return fmt.Errorf("append of entry %d after %d: %w", e.GetIndex(), first+uint64(i)-1, ErrCorrupt)
		}
	}
	if err := s.stage(); err != nil {
		return err
	}
	s.cutAfter(first - 1)
	seq := s.segments[len(s.segments)-1]
	for _, e := range ents {
		off := s.activeEnd + s.pending.bytes
		if len(e.GetData()) >= borrowDataBytesMin {
			s.pending.appendOwned(func(b []byte) []byte { return appendEntryHead(b, e, s.epoch) })
			s.pending.borrow(e.GetData())
		} else {
			s.pending.appendOwned(func(b []byte) []byte { return appendEntry(b, e, s.epoch) })
		}
		s.entries = append(s.entries, entryPos{seq: seq, off: off, size: int64(entryRecordBytes(e)), term: e.GetTerm()})
	}
	last := ents[len(ents)-1]
	s.lastIndex, s.lastTerm = last.GetIndex(), last.GetTerm()
	return nil
}

// cutAfter forgets the entries after index, which is in the log.
func (s *Storage) cutAfter(index uint64) {
	s.entries = s.entries[:index-s.truncatedIndex]
	s.lastIndex = index
	s.lastTerm = s.truncatedTerm
	if n := len(s.entries); n > 0 {
		s.lastTerm = s.entries[n-1].term
	}
}

// SetHardState stages hs.
func (s *Storage) SetHardState(hs *raftpb.HardState) error {
	if err := s.stage(); err != nil {
		return err
	}
	s.hardState = proto.Clone(hs).(*raftpb.HardState)
	s.pending.appendOwned(func(b []byte) []byte { return appendHardState(b, hs, s.epoch) })
	return nil
}

// SetConfState stages cs into b, a batch of the applied state's database:
// the node writes it in the batch that applies the configuration change,
// next to the applied index, so the two never disagree after a crash.
func (s *Storage) SetConfState(b *pebble.Batch, cs *raftpb.ConfState) error {
	s.confState = proto.Clone(cs).(*raftpb.ConfState)
	v, err := proto.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("raftlog: marshal conf state: %v", err))
	}
	return b.Set(keyConfState, v, nil)
}

// Bootstrap stages the starting point of a new member's log: an empty log
// whose first index is index+1, as if it had been truncated at (index,
// term); and into state, a batch of the applied state's database, voters
// as its configuration. Every founding member of a cluster bootstraps with
// the same arguments, so their logs agree.
func (s *Storage) Bootstrap(state *pebble.Batch, index, term uint64, cs *raftpb.ConfState) error {
	if !s.IsEmpty() {
		return errors.New("raftlog: bootstrap of a non-empty log")
	}
	if err := s.reset(index, term); err != nil {
		return err
	}
	hs := &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(index)}
	if err := s.SetHardState(hs); err != nil {
		return err
	}
	return s.SetConfState(state, cs)
}

// Restore stages, into a log never written, a log that is empty after
// (index, term) with the HardState hs: the start of a log moved from
// another store, whose entries are appended next.
func (s *Storage) Restore(index, term uint64, hs *raftpb.HardState) error {
	if !s.IsEmpty() {
		return errors.New("raftlog: restore into a non-empty log")
	}
	if err := s.reset(index, term); err != nil {
		return err
	}
	return s.SetHardState(hs)
}

// reset stages a log that is empty after (index, term).
func (s *Storage) reset(index, term uint64) error {
	if err := s.stage(); err != nil {
		return err
	}
	s.entries = s.entries[:0]
	s.truncatedIndex, s.truncatedTerm = index, term
	s.lastIndex, s.lastTerm = index, term
	s.pending.appendOwned(func(b []byte) []byte { return appendPoint(b, kindReset, index, term, s.epoch) })
	return nil
}

// Truncate stages the removal of every entry up to and including index,
// which must be in the log. The caller must have made the state those
// entries produced durable first. The segments that hold nothing else are
// deleted after the next synced commit.
func (s *Storage) Truncate(index uint64) error {
	if index <= s.truncatedIndex {
		return nil
	}
	if index > s.lastIndex {
		return fmt.Errorf("raftlog: truncate to %d beyond last index %d", index, s.lastIndex)
	}
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	if err := s.stage(); err != nil {
		return err
	}
	s.dropThrough(index, term)
	s.pending.appendOwned(func(b []byte) []byte { return appendPoint(b, kindTruncate, index, term, s.epoch) })
	return nil
}

// dropThrough forgets the entries up to index, whose term is term.
func (s *Storage) dropThrough(index, term uint64) {
	s.entries = s.entries[index-s.truncatedIndex:]
	// A long-lived log drops entries from the front: copy the rest once
	// the slice holds mostly dropped space, so memory stays with the log.
	if cap(s.entries) > 2*len(s.entries)+64 {
		s.entries = append([]entryPos(nil), s.entries...)
	}
	s.truncatedIndex, s.truncatedTerm = index, term
}

// InstallSnapshot stages a log that is empty after index, as truncated at
// (index, term), for an applied state that reaches index: a snapshot's,
// installed, with cs its configuration. The HardState is kept but for its
// commit index, which covers the snapshot. Committing it need not be
// synced: Open redoes a lost install (the node's recovery).
func (s *Storage) InstallSnapshot(index, term uint64, cs *raftpb.ConfState) error {
	if err := s.reset(index, term); err != nil {
		return err
	}
	s.confState = proto.Clone(cs).(*raftpb.ConfState)
	hs := proto.Clone(s.hardState).(*raftpb.HardState)
	hs.Commit = proto.Uint64(max(hs.GetCommit(), index))
	return s.SetHardState(hs)
}

// Covers reports whether the log goes on from an applied state that reaches
// (index, term): it holds that entry, or was truncated exactly there. If
// not, and the applied state is newer than the log's start, the state is a
// snapshot's whose install did not reach the log: InstallSnapshot redoes
// it. An applied state older than the log's start is lost data.
func (s *Storage) Covers(index, term uint64) (bool, error) {
	if index < s.truncatedIndex {
		return false, fmt.Errorf("log truncated at %d, after the applied state's %d: %w", s.truncatedIndex, index, ErrCorrupt)
	}
	if index > s.lastIndex {
		return false, nil
	}
	t, err := s.Term(index)
	if err != nil {
		return false, err
	}
	return t == term, nil
}

// Commit writes what was staged since the last Commit and, with sync,
// makes it and everything before it durable. After a synced commit the
// segments that hold nothing the log still needs are deleted.
func (s *Storage) Commit(sync bool) error {
	if s.err != nil {
		return s.err
	}
	if s.active == nil {
		return nil // never written: nothing to make durable
	}
	if s.pending.bytes > 0 {
		if end := s.activeEnd + s.pending.bytes; end > s.allocatedEnd {
			grow := max(end-s.allocatedEnd, min(preallocateBytes, s.segmentBytesMax))
			if err := s.active.Preallocate(s.allocatedEnd, grow); err != nil {
				return s.fail(fmt.Errorf("allocate raft log segment: %w", err))
			}
			s.allocatedEnd += grow
		}
		if err := s.pending.writeAt(s.active, s.activeEnd); err != nil {
			return s.fail(fmt.Errorf("write raft log: %w", err))
		}
		s.activeEnd += s.pending.bytes
		s.pending.reset()
	}
	if !sync {
		return nil
	}
	if err := s.active.SyncData(); err != nil {
		return s.fail(fmt.Errorf("sync raft log: %w", err))
	}
	if err := s.syncDirIfDirty(); err != nil {
		return err
	}
	return s.deleteObsolete()
}

// ErrWriteFailed is wrapped by every error of a write, sync or removal the
// log could not make: the node must stop, as what reached the disk is
// then unknown.
var ErrWriteFailed = errors.New("raft log write failed")

// fail records the log's first write error and returns it.
func (s *Storage) fail(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
	}
	return s.err
}
