package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var (
	keyHardState = []byte("rh")
	keyConfState = []byte("rc")
	keyTruncated = []byte("rt")
	entryPrefix  = []byte("re")
)

// entryKey returns the Pebble key of the entry at index.
func entryKey(index uint64) []byte {
	k := make([]byte, len(entryPrefix)+8)
	copy(k, entryPrefix)
	binary.BigEndian.PutUint64(k[len(entryPrefix):], index)
	return k
}

// Storage is the raft log on Pebble. See the package documentation.
type Storage struct {
	db *pebble.DB

	hardState *raftpb.HardState
	confState *raftpb.ConfState

	// truncatedIndex and truncatedTerm identify the last entry removed from
	// the log (or the bootstrap point).
	// Invariant: truncatedIndex <= lastIndex; the entries
	// (truncatedIndex, lastIndex] are all present in Pebble.
	truncatedIndex uint64
	truncatedTerm  uint64
	lastIndex      uint64
	lastTerm       uint64

	snapshots SnapshotSource
}

var _ raft.Storage = (*Storage)(nil)

// Open loads the log's metadata from db, the log's database, and the
// ConfState from state, the database of the applied state it belongs to.
// An empty database yields an empty log (LastIndex 0), ready for
// Bootstrap.
func Open(db, state *pebble.DB) (*Storage, error) {
	s := &Storage{db: db, hardState: &raftpb.HardState{}, confState: &raftpb.ConfState{}}
	if err := getProto(db, keyHardState, s.hardState); err != nil {
		return nil, fmt.Errorf("load hard state: %w", err)
	}
	if err := getProto(state, keyConfState, s.confState); err != nil {
		return nil, fmt.Errorf("load conf state: %w", err)
	}
	if err := s.loadTruncated(); err != nil {
		return nil, err
	}
	if err := s.loadLast(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Storage) loadTruncated() error {
	v, closer, err := s.db.Get(keyTruncated)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load truncated state: %w", err)
	}
	defer closer.Close()
	if len(v) != 16 {
		return fmt.Errorf("truncated state: %d bytes, want 16: %w", len(v), ErrCorrupt)
	}
	s.truncatedIndex = binary.BigEndian.Uint64(v)
	s.truncatedTerm = binary.BigEndian.Uint64(v[8:])
	return nil
}

// loadLast finds the last entry by seeking to the end of the entry keys.
func (s *Storage) loadLast() error {
	s.lastIndex, s.lastTerm = s.truncatedIndex, s.truncatedTerm
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(0), UpperBound: entryKey(^uint64(0))})
	if err != nil {
		return fmt.Errorf("load last entry: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return it.Error()
	}
	index := binary.BigEndian.Uint64(it.Key()[len(entryPrefix):])
	if index <= s.truncatedIndex {
		return fmt.Errorf("last entry %d at or below truncated index %d: %w", index, s.truncatedIndex, ErrCorrupt)
	}
	term, err := decodeTerm(it.Value())
	if err != nil {
		return err
	}
	s.lastIndex, s.lastTerm = index, term
	return nil
}

// ErrCorrupt marks a raft log that contradicts itself. The node must stop.
var ErrCorrupt = errors.New("raft log corrupt")

func decodeTerm(v []byte) (uint64, error) {
	if len(v) < 8 {
		return 0, fmt.Errorf("entry value of %d bytes: %w", len(v), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
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

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	switch {
	case i == s.truncatedIndex:
		return s.truncatedTerm, nil
	case i < s.truncatedIndex:
		return 0, raft.ErrCompacted
	case i > s.lastIndex:
		return 0, raft.ErrUnavailable
	case i == s.lastIndex:
		return s.lastTerm, nil
	}
	v, closer, err := s.db.Get(entryKey(i))
	if err != nil {
		return 0, fmt.Errorf("term of entry %d: %w", i, err)
	}
	defer closer.Close()
	return decodeTerm(v)
}

// Entries implements raft.Storage: the entries [lo, hi), at most maxSize
// bytes of them but always at least one.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if lo <= s.truncatedIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex+1 {
		panic(fmt.Sprintf("raftlog: entries [%d, %d) asked beyond last index %d", lo, hi, s.lastIndex))
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(lo), UpperBound: entryKey(hi)})
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	defer it.Close()
	return readEntries(it, lo, hi, maxSize)
}

func readEntries(it *pebble.Iterator, lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	ents := make([]*raftpb.Entry, 0, min(hi-lo, 64))
	var size uint64
	for valid := it.First(); valid; valid = it.Next() {
		e, err := decodeEntry(it.Value())
		if err != nil {
			return nil, err
		}
		if want := lo + uint64(len(ents)); e.GetIndex() != want {
			return nil, fmt.Errorf("entry %d where %d expected: %w", e.GetIndex(), want, ErrCorrupt)
		}
		size += uint64(proto.Size(e))
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("entries [%d, %d) missing: %w", lo, hi, ErrCorrupt)
	}
	return ents, nil
}

func decodeEntry(v []byte) (*raftpb.Entry, error) {
	if len(v) < 8 {
		return nil, fmt.Errorf("entry value of %d bytes: %w", len(v), ErrCorrupt)
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(v[8:], e); err != nil {
		return nil, fmt.Errorf("decode entry: %v: %w", err, ErrCorrupt)
	}
	return e, nil
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

// Append stages ents into b, replacing any existing entries at or after the
// first one's index, and updates the in-memory view. The caller commits b
// (synced) before the entries may be acknowledged.
func (s *Storage) Append(b *pebble.Batch, ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if first <= s.truncatedIndex || first > s.lastIndex+1 {
		return fmt.Errorf("append at %d to log (%d, %d]: %w", first, s.truncatedIndex, s.lastIndex, ErrCorrupt)
	}
	for _, e := range ents {
		if err := setEntry(b, e); err != nil {
			return err
		}
	}
	last := ents[len(ents)-1]
	if last.GetIndex() < s.lastIndex {
		if err := b.DeleteRange(entryKey(last.GetIndex()+1), entryKey(s.lastIndex+1), nil); err != nil {
			return err
		}
	}
	s.lastIndex, s.lastTerm = last.GetIndex(), last.GetTerm()
	return nil
}

// setEntry stages e into b, encoded in place in the batch's buffer: an
// entry may be 1.5 MiB, and encoding it apart first would copy it twice.
func setEntry(b *pebble.Batch, e *raftpb.Entry) error {
	size := proto.Size(e)
	op := b.SetDeferred(len(entryPrefix)+8, 8+size)
	copy(op.Key, entryPrefix)
	binary.BigEndian.PutUint64(op.Key[len(entryPrefix):], e.GetIndex())
	binary.BigEndian.PutUint64(op.Value, e.GetTerm())
	v, err := proto.MarshalOptions{}.MarshalAppend(op.Value[:8], e)
	if err != nil || len(v) != len(op.Value) || &v[0] != &op.Value[0] {
		panic(fmt.Sprintf("raftlog: marshal entry %d in place: %d of %d bytes, %v", e.GetIndex(), len(v), len(op.Value), err))
	}
	return op.Finish()
}

// SetHardState stages hs into b.
func (s *Storage) SetHardState(b *pebble.Batch, hs *raftpb.HardState) error {
	s.hardState = proto.Clone(hs).(*raftpb.HardState)
	return setProto(b, keyHardState, hs)
}

// SetConfState stages cs into b, a batch of the applied state's database:
// the node writes it in the batch that applies the configuration change,
// next to the applied index, so the two never disagree after a crash.
func (s *Storage) SetConfState(b *pebble.Batch, cs *raftpb.ConfState) error {
	s.confState = proto.Clone(cs).(*raftpb.ConfState)
	return setProto(b, keyConfState, cs)
}

// Bootstrap stages the starting point of a new member's log into b: an
// empty log whose first index is index+1, as if it had been truncated at
// (index, term); and into state, a batch of the applied state's database,
// voters as its configuration. Every founding member of a cluster
// bootstraps with the same arguments, so their logs agree.
func (s *Storage) Bootstrap(b, state *pebble.Batch, index, term uint64, cs *raftpb.ConfState) error {
	if !s.IsEmpty() {
		return errors.New("raftlog: bootstrap of a non-empty log")
	}
	if err := setTruncated(b, index, term); err != nil {
		return err
	}
	s.truncatedIndex, s.truncatedTerm = index, term
	s.lastIndex, s.lastTerm = index, term
	hs := &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(index)}
	if err := s.SetHardState(b, hs); err != nil {
		return err
	}
	return s.SetConfState(state, cs)
}

func setProto(b *pebble.Batch, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("raftlog: marshal %T: %v", m, err))
	}
	return b.Set(key, v, nil)
}

// TruncatedIndex is the index of the last entry removed from the log.
func (s *Storage) TruncatedIndex() uint64 { return s.truncatedIndex }

// Truncate stages the removal of every entry up to and including index,
// which must be in the log. The caller must have made the state those
// entries produced durable first (or commit it before b).
func (s *Storage) Truncate(b *pebble.Batch, index uint64) error {
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
	if err := b.DeleteRange(entryKey(s.truncatedIndex+1), entryKey(index+1), nil); err != nil {
		return err
	}
	if err := setTruncated(b, index, term); err != nil {
		return err
	}
	s.truncatedIndex, s.truncatedTerm = index, term
	return nil
}

func setTruncated(b *pebble.Batch, index, term uint64) error {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, index)
	binary.BigEndian.PutUint64(v[8:], term)
	return b.Set(keyTruncated, v, nil)
}

// InstallSnapshot stages into b a log that is empty after index, as
// truncated at (index, term), for an applied state that reaches index: a
// snapshot's, installed, with cs its configuration. The HardState is kept
// but for its commit index, which covers the snapshot. Committing b need
// not be synced: Open redoes a lost install (Reconcile).
func (s *Storage) InstallSnapshot(b *pebble.Batch, index, term uint64, cs *raftpb.ConfState) error {
	if err := b.DeleteRange(entryKey(0), entryKey(^uint64(0)), nil); err != nil {
		return err
	}
	if err := setTruncated(b, index, term); err != nil {
		return err
	}
	s.truncatedIndex, s.truncatedTerm = index, term
	s.lastIndex, s.lastTerm = index, term
	s.confState = proto.Clone(cs).(*raftpb.ConfState)
	hs := proto.Clone(s.hardState).(*raftpb.HardState)
	hs.Commit = proto.Uint64(max(hs.GetCommit(), index))
	return s.SetHardState(b, hs)
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
