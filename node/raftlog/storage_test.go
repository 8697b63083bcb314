package raftlog

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logHarness is a raft log on an in-memory filesystem that can crash,
// beside the state database that holds its ConfState; reopen closes and
// reopens both as a restart would.
type logHarness struct {
	t       *testing.T
	fs      *vfs.MemFS
	opts    Options
	stateDB *pebble.DB
	s       *Storage
}

const harnessDir = "wal"

func newLogHarness(t *testing.T) *logHarness {
	return newLogHarnessWith(t, Options{})
}

func newLogHarnessWith(t *testing.T, opts Options) *logHarness {
	t.Helper()
	h := &logHarness{t: t, fs: vfs.NewCrashableMem(), opts: opts}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *logHarness) close() {
	if h.s != nil {
		h.s.Close()
		h.s = nil
	}
	if h.stateDB != nil {
		h.stateDB.Close()
		h.stateDB = nil
	}
}

func (h *logHarness) open() {
	h.t.Helper()
	if err := h.tryOpen(); err != nil {
		h.t.Fatalf("open raft log: %v", err)
	}
}

func (h *logHarness) tryOpen() error {
	db, err := pebble.Open("state", &pebble.Options{FS: h.fs, Logger: quietPebble{}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.stateDB = db
	h.s, err = Open(h.fs, harnessDir, db, h.opts)
	return err
}

func (h *logHarness) reopen() {
	h.t.Helper()
	h.close()
	h.open()
}

// commit stages with fn and commits it synced.
func (h *logHarness) commit(fn func() error) {
	h.t.Helper()
	if err := fn(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.s.Commit(true); err != nil {
		h.t.Fatal(err)
	}
}

// stateBatch stages with fn into a batch of the state database and
// commits it.
func (h *logHarness) stateBatch(fn func(b *pebble.Batch) error) {
	h.t.Helper()
	b := h.stateDB.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		h.t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		h.t.Fatal(err)
	}
}

func (h *logHarness) bootstrap(index, term uint64) {
	h.t.Helper()
	h.stateBatch(func(b *pebble.Batch) error {
		return h.s.Bootstrap(b, index, term, &raftpb.ConfState{Voters: []uint64{1, 2, 3}})
	})
	h.commit(func() error { return nil })
}

func (h *logHarness) append(ents ...*raftpb.Entry) {
	h.t.Helper()
	h.commit(func() error { return h.s.Append(ents) })
}

func entry(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: raftpb.EntryNormal.Enum(), Data: []byte(data)}
}

// entries returns entries lo..hi (inclusive) of term, with data "t<term>".
func entries(lo, hi, term uint64) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, entry(i, term, "t"+string(rune('0'+term))))
	}
	return out
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic("pebble fatal: " + format)
}

func (h *logHarness) wantIndexes(first, last uint64) {
	h.t.Helper()
	f, _ := h.s.FirstIndex()
	l, _ := h.s.LastIndex()
	if f != first || l != last {
		h.t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

func (h *logHarness) wantTerm(i, term uint64) {
	h.t.Helper()
	got, err := h.s.Term(i)
	if err != nil || got != term {
		h.t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, term)
	}
}

func TestEmptyLogAndBootstrap(t *testing.T) {
	h := newLogHarness(t)
	if !h.s.IsEmpty() {
		t.Fatal("a new database's log is not empty")
	}
	h.wantIndexes(1, 0)
	h.bootstrap(5, 2)
	if h.s.IsEmpty() {
		t.Fatal("log empty after Bootstrap")
	}
	h.wantIndexes(6, 5)
	h.wantTerm(5, 2)

	b := h.stateDB.NewBatch()
	defer b.Close()
	if err := h.s.Bootstrap(b, 5, 2, &raftpb.ConfState{Voters: []uint64{1}}); err == nil {
		t.Fatal("second Bootstrap accepted")
	}
	h.reopen()
	if h.s.IsEmpty() {
		t.Fatal("log empty after reopen")
	}
	h.wantIndexes(6, 5)
	h.wantTerm(5, 2)
	b = h.stateDB.NewBatch()
	defer b.Close()
	if err := h.s.Bootstrap(b, 5, 2, &raftpb.ConfState{Voters: []uint64{1}}); err == nil {
		t.Fatal("Bootstrap after reopen accepted")
	}
	hs, cs, err := h.s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetTerm() != 2 || hs.GetCommit() != 5 {
		t.Fatalf("bootstrap hard state %v, want term 2 commit 5", hs)
	}
	if !proto.Equal(cs, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}) {
		t.Fatalf("bootstrap conf state %v", cs)
	}
}

func TestTermAndBounds(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(3, 1)
	h.append(entries(4, 8, 2)...)
	h.wantIndexes(4, 8)
	h.wantTerm(3, 1) // the truncation point keeps its term
	for i := uint64(4); i <= 8; i++ {
		h.wantTerm(i, 2)
	}
	if _, err := h.s.Term(2); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Term below the truncation point: %v, want ErrCompacted", err)
	}
	if _, err := h.s.Term(9); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term beyond the last index: %v, want ErrUnavailable", err)
	}
	if _, err := h.s.Entries(3, 5, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries at the truncation point: %v, want ErrCompacted", err)
	}
	if _, err := h.s.Snapshot(); !errors.Is(err, raft.ErrSnapshotTemporarilyUnavailable) {
		t.Fatalf("Snapshot: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Entries beyond the last index did not panic")
			}
		}()
		h.s.Entries(4, 10, 1<<20)
	}()
}

func TestEntriesMaxSize(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(1, 1)
	h.append(entries(2, 11, 1)...)
	size := uint64(proto.Size(entry(2, 1, "t1")))

	all, err := h.s.Entries(2, 12, 1<<20)
	if err != nil || len(all) != 10 {
		t.Fatalf("Entries(2, 12): %d entries, %v; want 10", len(all), err)
	}
	for i, e := range all {
		if e.GetIndex() != uint64(2+i) || e.GetTerm() != 1 || string(e.Data) != "t1" {
			t.Fatalf("entry %d is %v", i, e)
		}
	}
	for _, tc := range []struct {
		maxSize uint64
		want    int
	}{
		{0, 1},           // always at least one entry
		{size - 1, 1},    // even if it is larger than maxSize
		{size, 1},        // exactly one fits
		{2*size - 1, 1},  // the second does not fit
		{3 * size, 3},    // exact fit
		{3*size + 1, 3},  // not quite four
		{100 * size, 10}, // all, bounded by hi
		{^uint64(0), 10}, // no limit
	} {
		got, err := h.s.Entries(2, 12, tc.maxSize)
		if err != nil || len(got) != tc.want {
			t.Errorf("Entries(2, 12, %d): %d entries, %v; want %d", tc.maxSize, len(got), err, tc.want)
		}
	}
	mid, err := h.s.Entries(5, 7, 1<<20)
	if err != nil || len(mid) != 2 || mid[0].GetIndex() != 5 || mid[1].GetIndex() != 6 {
		t.Fatalf("Entries(5, 7) = %v, %v", mid, err)
	}
}

func TestAppendOverwritesConflictingSuffix(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(1, 1)
	h.append(entries(2, 10, 1)...)
	h.wantIndexes(2, 10)

	// A new leader at term 2 replaces 6..10 with 6..7: 8..10 must go.
	h.append(entries(6, 7, 2)...)
	h.wantIndexes(2, 7)
	h.wantTerm(5, 1)
	h.wantTerm(6, 2)
	h.wantTerm(7, 2)
	if _, err := h.s.Term(8); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(8) after the tail was replaced: %v", err)
	}
	check := func() {
		t.Helper()
		got, err := h.s.Entries(2, 8, 1<<20)
		if err != nil || len(got) != 6 {
			t.Fatalf("Entries(2, 8): %v, %v", got, err)
		}
		for _, e := range got {
			want := uint64(1)
			if e.GetIndex() >= 6 {
				want = 2
			}
			if e.GetTerm() != want {
				t.Fatalf("entry %d has term %d, want %d", e.GetIndex(), e.GetTerm(), want)
			}
		}
	}
	check()
	// The replaced tail stays replaced when the log is read back.
	h.reopen()
	h.wantIndexes(2, 7)
	h.wantTerm(7, 2)
	check()

	// Appending past the end extends; appending the same range again with a
	// longer suffix replaces and extends.
	h.append(entries(8, 9, 2)...)
	h.wantIndexes(2, 9)
	h.append(entries(4, 12, 3)...)
	h.wantIndexes(2, 12)
	h.wantTerm(3, 1)
	h.wantTerm(12, 3)
	h.reopen()
	h.wantIndexes(2, 12)
	h.wantTerm(4, 3)
	h.wantTerm(12, 3)
}

func TestAppendRejectsGaps(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(5, 1)
	h.append(entries(6, 7, 1)...)
	if err := h.s.Append(entries(9, 10, 1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("append leaving a gap: %v, want ErrCorrupt", err)
	}
	if err := h.s.Append([]*raftpb.Entry{entry(8, 1, "a"), entry(10, 1, "b")}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("append of entries with a gap between them: %v, want ErrCorrupt", err)
	}
	if err := h.s.Append(entries(5, 6, 1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("append at the truncation point: %v, want ErrCorrupt", err)
	}
	h.wantIndexes(6, 7)
}

func TestHardAndConfStatePersist(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(1, 1)
	hs := &raftpb.HardState{Term: proto.Uint64(7), Vote: proto.Uint64(3), Commit: proto.Uint64(4)}
	cs := &raftpb.ConfState{Voters: []uint64{1, 3}, Learners: []uint64{9}}
	h.append(entries(2, 4, 7)...)
	h.commit(func() error { return h.s.SetHardState(hs) })
	h.stateBatch(func(b *pebble.Batch) error { return h.s.SetConfState(b, cs) })
	// The Storage keeps its own copies: a caller changing its value later
	// must not change the staged state.
	hs.Commit = proto.Uint64(99)
	if h.s.HardState().GetCommit() != 4 {
		t.Fatalf("Storage aliases the caller's HardState")
	}
	h.reopen()
	gotHS, gotCS, err := h.s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	want := &raftpb.HardState{Term: proto.Uint64(7), Vote: proto.Uint64(3), Commit: proto.Uint64(4)}
	if !proto.Equal(gotHS, want) || !proto.Equal(h.s.HardState(), want) {
		t.Fatalf("hard state after reopen %v, want %v", gotHS, want)
	}
	if !proto.Equal(gotCS, cs) || !proto.Equal(h.s.ConfState(), cs) {
		t.Fatalf("conf state after reopen %v, want %v", gotCS, cs)
	}
	h.wantIndexes(2, 4)
	h.wantTerm(4, 7)
	// InitialState hands out copies raft may keep.
	gotHS.Term = proto.Uint64(100)
	if h.s.HardState().GetTerm() != 7 {
		t.Fatal("InitialState returned the Storage's own HardState")
	}
}

// Covers tells a log that goes on from an applied state from one that an
// install never cut; InstallSnapshot cuts it, and the cut survives a
// reopen with the HardState's term and vote kept and its commit raised.
func TestCoversAndInstallSnapshot(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(1, 1)
	h.append(entries(2, 10, 2)...)
	h.commit(func() error {
		return h.s.SetHardState(&raftpb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(2), Commit: proto.Uint64(8)})
	})
	for _, c := range []struct {
		index, term uint64
		want        bool
	}{
		{1, 1, true},   // the bootstrap point
		{7, 2, true},   // an entry of the log
		{10, 2, true},  // the last one
		{7, 3, false},  // another term at that index: a snapshot's state
		{11, 2, false}, // past the log
	} {
		got, err := h.s.Covers(c.index, c.term)
		if err != nil || got != c.want {
			t.Errorf("Covers(%d, %d) = %v, %v; want %v", c.index, c.term, got, err, c.want)
		}
	}
	h.commit(func() error { return h.s.InstallSnapshot(20, 3, &raftpb.ConfState{Voters: []uint64{1, 2}}) })
	h.reopen()
	h.wantIndexes(21, 20)
	h.wantTerm(20, 3)
	if _, err := h.s.Covers(19, 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Covers below the truncation point: %v, want ErrCorrupt", err)
	}
	hs := h.s.HardState()
	if hs.GetTerm() != 3 || hs.GetVote() != 2 || hs.GetCommit() != 20 {
		t.Fatalf("HardState after the install: %v, want term 3, vote 2, commit 20", hs)
	}
	if got := h.s.ConfState().GetVoters(); len(got) != 3 {
		t.Fatalf("ConfState from the state database: voters %v; the install's is the state's to write", got)
	}
}
