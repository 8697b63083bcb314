package raftlog

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// segments lists the log's segment numbers on disk.
func (h *logHarness) segments() []uint64 {
	h.t.Helper()
	names, err := h.fs.List(harnessDir)
	if err != nil {
		h.t.Fatal(err)
	}
	var seqs []uint64
	for _, name := range names {
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs
}

// segmentFile reads a segment file whole.
func (h *logHarness) segmentFile(seq uint64) []byte {
	h.t.Helper()
	f, err := h.fs.Open(h.fs.PathJoin(harnessDir, segmentName(seq)))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// rewrite replaces a segment file's bytes, as a bit flip, a bug or a crash
// would.
func (h *logHarness) rewrite(seq uint64, b []byte) {
	h.t.Helper()
	path := h.fs.PathJoin(harnessDir, segmentName(seq))
	f, err := h.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		h.t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		h.t.Fatal(err)
	}
}

// recordOffsets returns where each record of a segment starts, and where
// the last ends.
func recordOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	offs := []int{0}
	for at := 0; at < len(b); {
		_, size, ok := parseRecord(b[at:])
		if !ok {
			t.Fatalf("record at %d of %d bytes does not parse", at, len(b))
		}
		at += size
		offs = append(offs, at)
	}
	return offs
}

// A log larger than a segment spreads over several; truncation deletes the
// segments it empties after the next synced commit, and the log reads
// back the same from the segments that remain.
func TestSegmentsRotateAndGoWithTruncation(t *testing.T) {
	h := newLogHarnessWith(t, Options{SegmentBytes: 256})
	h.bootstrap(1, 1)
	for i := uint64(2); i <= 101; i += 10 {
		h.append(entries(i, i+9, 2)...)
	}
	h.wantIndexes(2, 101)
	if n := len(h.segments()); n != 10 {
		t.Fatalf("%d segments for 10 commits of 350 bytes each in 256-byte segments", n)
	}
	h.reopen()
	h.wantIndexes(2, 101)
	if got, err := h.s.Entries(2, 102, noLimit); err != nil || len(got) != 100 {
		t.Fatalf("Entries after reopen: %d, %v", len(got), err)
	}

	before := h.segments()
	if err := h.s.Truncate(80); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got := h.segments(); got[0] != before[0] {
		t.Fatalf("segments deleted after an unsynced truncation: %v, were %v", got, before)
	}
	h.commit(func() error { return nil })
	after := h.segments()
	if len(after) >= len(before) || after[len(after)-1] < before[len(before)-1] {
		t.Fatalf("segments after a synced truncation at 80: %v, were %v", after, before)
	}
	h.reopen()
	h.wantIndexes(81, 101)
	h.wantTerm(80, 2)
	if got, err := h.s.Entries(81, 102, noLimit); err != nil || len(got) != 21 || string(got[0].Data) != "t2" {
		t.Fatalf("Entries after truncation and reopen: %d, %v", len(got), err)
	}

	// An installed snapshot empties the log: every segment but the active
	// one goes.
	h.commit(func() error { return h.s.InstallSnapshot(500, 4, &raftpb.ConfState{Voters: []uint64{1}}) })
	if got := h.segments(); len(got) != 1 {
		t.Fatalf("segments after an install: %v", got)
	}
	h.reopen()
	h.wantIndexes(501, 500)
	h.wantTerm(500, 4)
	h.append(entries(501, 520, 4)...)
	h.reopen()
	h.wantIndexes(501, 520)
}

const noLimit = ^uint64(0)

// A segment older than a gap in the numbering was being deleted when the
// member stopped; it goes. A gap that leaves entries the log needs is
// corruption.
func TestSegmentGaps(t *testing.T) {
	h := newLogHarnessWith(t, Options{SegmentBytes: 128})
	h.bootstrap(1, 1)
	for i := uint64(2); i <= 41; i += 5 {
		h.append(entries(i, i+4, 2)...)
	}
	segs := h.segments()
	if len(segs) < 4 {
		t.Fatalf("only %d segments", len(segs))
	}
	h.close()
	if err := h.fs.Remove(h.fs.PathJoin(harnessDir, segmentName(segs[2]))); err != nil {
		t.Fatal(err)
	}
	err := h.tryOpen()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a segment missing in the middle: %v, want ErrCorrupt", err)
	}
	if got := h.segments(); slices.Contains(got, segs[0]) {
		t.Fatalf("segments older than the gap kept: %v", got)
	}
}

// A log whose newest segment ends in a torn record (a crash during a
// write that no sync covered) loses that record and what follows, and
// takes new records in its place; records a crash left beyond the tear
// never come back (their epoch is older).
func TestTornTailEndsTheLog(t *testing.T) {
	for _, tear := range []struct {
		name string
		fn   func(b []byte, at, end int) []byte
	}{
		{"cut short", func(b []byte, at, end int) []byte { return b[:at+headerBytes+3] }},
		{"zeroed", func(b []byte, at, end int) []byte {
			clear(b[at:end])
			return b
		}},
		{"bit flip", func(b []byte, at, end int) []byte {
			b[end-1] ^= 0x10
			return b
		}},
	} {
		t.Run(tear.name, func(t *testing.T) {
			h := newLogHarness(t)
			h.bootstrap(1, 1)
			for i := uint64(2); i <= 6; i++ {
				h.append(entry(i, 2, fmt.Sprintf("entry-%d-of-some-length", i)))
			}
			h.close()
			seq := h.segments()[0]
			b := h.segmentFile(seq)
			offs := recordOffsets(t, b)
			// Records: base, reset, hard state, then entries 2..6. Tear entry 4.
			at, end := offs[5], offs[6]
			h.rewrite(seq, tear.fn(b, at, end))
			h.open()
			h.wantIndexes(2, 3)
			// A shorter entry 4 of a new term, then read back: entries 5 and
			// 6, intact after the tear, must not return.
			h.append(entry(4, 3, "x"))
			h.reopen()
			h.wantIndexes(2, 4)
			h.wantTerm(4, 3)
			got, err := h.s.Entries(2, 5, noLimit)
			if err != nil || len(got) != 3 || string(got[2].Data) != "x" {
				t.Fatalf("Entries after the tear: %v, %v", got, err)
			}
		})
	}
}

// A record that fails its check in a segment that is not the newest is
// corruption, not a torn tail: a newer segment exists only once the older
// one was synced whole.
func TestCorruptRecordInAnOlderSegment(t *testing.T) {
	h := newLogHarnessWith(t, Options{SegmentBytes: 128})
	h.bootstrap(1, 1)
	for i := uint64(2); i <= 41; i += 5 {
		h.append(entries(i, i+4, 2)...)
	}
	h.close()
	seq := h.segments()[1]
	b := h.segmentFile(seq)
	b[len(b)-1] ^= 1
	h.rewrite(seq, b)
	if err := h.tryOpen(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a bit flipped in an older segment: %v, want ErrCorrupt", err)
	}
}

// A newest segment whose base record is torn was being made: it goes, and
// the log is what the segments before it hold.
func TestTornNewSegmentGoes(t *testing.T) {
	h := newLogHarnessWith(t, Options{SegmentBytes: 512})
	h.bootstrap(1, 1)
	for i := uint64(2); i <= 41 || h.s.activeEnd < 512; i += 5 {
		h.append(entries(i, i+4, 2)...)
	}
	last, _ := h.s.LastIndex()
	// Stage a record so that a new segment is made, but commit nothing.
	if err := h.s.SetHardState(&raftpb.HardState{Term: proto.Uint64(2), Commit: proto.Uint64(41)}); err != nil {
		t.Fatal(err)
	}
	h.close()
	segs := h.segments()
	newest := segs[len(segs)-1]
	if b := h.segmentFile(newest); len(b) != 0 {
		t.Fatalf("the new segment holds %d bytes before any commit", len(b))
	}
	h.open()
	h.wantIndexes(2, last)
	if got := h.segments(); slices.Contains(got, newest) {
		t.Fatalf("torn segment %d kept: %v", newest, got)
	}
	h.append(entries(last+1, last+9, 2)...)
	h.reopen()
	h.wantIndexes(2, last+9)
}

// Checks that fail Open, each on a log with one planted fault.
func TestCorruptLogIsDetected(t *testing.T) {
	t.Run("entry below the truncation point", func(t *testing.T) {
		h := newLogHarness(t)
		h.bootstrap(5, 1)
		h.s.pending.appendOwned(func(b []byte) []byte { return appendEntry(b, entry(3, 1, "old"), h.s.epoch) })
		if err := h.s.Commit(true); err != nil {
			t.Fatal(err)
		}
		h.close()
		if err := h.tryOpen(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with an entry below the truncation point: %v, want ErrCorrupt", err)
		}
	})
	t.Run("truncation beyond the last entry", func(t *testing.T) {
		h := newLogHarness(t)
		h.bootstrap(1, 1)
		h.append(entries(2, 5, 1)...)
		h.s.pending.appendOwned(func(b []byte) []byte { return appendPoint(b, kindTruncate, 9, 1, h.s.epoch) })
		if err := h.s.Commit(true); err != nil {
			t.Fatal(err)
		}
		h.close()
		if err := h.tryOpen(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with a truncation beyond the log: %v, want ErrCorrupt", err)
		}
	})
	t.Run("entry read back fails its check", func(t *testing.T) {
		h := newLogHarness(t)
		h.bootstrap(1, 1)
		h.append(entries(2, 5, 1)...)
		p := h.s.entries[2] // entry 4
		if _, err := h.s.active.WriteAt([]byte{0xff}, p.off+p.size-1); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.Entries(2, 6, noLimit); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Entries over a flipped byte: %v, want ErrCorrupt", err)
		}
	})
	t.Run("conf state", func(t *testing.T) {
		h := newLogHarness(t)
		h.bootstrap(1, 1)
		if err := h.stateDB.Set(keyConfState, []byte{0xff, 0xff, 0xff}, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		h.s.Close()
		if _, err := Open(h.fs, harnessDir, h.stateDB, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with an undecodable conf state: %v, want ErrCorrupt", err)
		}
	})
}

// A write or sync error stops the log: it takes nothing more, as what
// reached the disk is then unknown.
func TestWriteErrorsStick(t *testing.T) {
	for _, kind := range []errorfs.OpKind{errorfs.OpFileWriteAt, errorfs.OpFileSyncData} {
		t.Run(fmt.Sprint(kind), func(t *testing.T) {
			h := newLogHarness(t)
			h.bootstrap(1, 1)
			h.s.Close()
			failing := false
			fs := errorfs.Wrap(h.fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if failing && op.Kind == kind {
					return errorfs.ErrInjected
				}
				return nil
			}))
			s, err := Open(fs, harnessDir, h.stateDB, Options{})
			if err != nil {
				t.Fatal(err)
			}
			h.s = s
			h.append(entries(2, 3, 1)...)
			failing = true
			if err := h.s.Append(entries(4, 4, 1)); err != nil {
				t.Fatal(err)
			}
			if err := h.s.Commit(true); !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("commit with a failing %v: %v", kind, err)
			}
			failing = false
			if err := h.s.Append(entries(5, 5, 1)); err == nil {
				t.Fatal("append after a failed commit accepted")
			}
			if err := h.s.Commit(true); err == nil {
				t.Fatal("commit after a failed commit succeeded")
			}
		})
	}
}

// logModel is the log as the test staged it, after each record.
type logModel struct {
	truncIndex, truncTerm uint64
	terms                 []uint64 // of entries truncIndex+1...
	hardState             string
}

func (h *logHarness) model() logModel {
	m := logModel{truncIndex: h.s.truncatedIndex, truncTerm: h.s.truncatedTerm,
		hardState: h.s.HardState().String()}
	for _, p := range h.s.entries {
		m.terms = append(m.terms, p.term)
	}
	return m
}

func (m logModel) equal(o logModel) bool {
	return m.truncIndex == o.truncIndex && m.truncTerm == o.truncTerm && m.hardState == o.hardState &&
		slices.Equal(m.terms, o.terms)
}

// A crash at any moment, keeping any part of what was written since the
// last sync, leaves a log that Open reads as it was after one of the
// records written since that sync (or at it): never less than what a sync
// covered, never a state that no sequence of records made. Operations
// stage one record each, so every state the model records is one a
// prefix of records makes.
func TestCrashLeavesAPrefixOfTheRecords(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			h := newLogHarnessWith(t, Options{SegmentBytes: 256 + rng.Int64N(2048)})
			h.bootstrap(1, 1)
			states := []logModel{h.model()} // since the last sync
			term := uint64(2)
			for step := range 200 {
				last, _ := h.s.LastIndex()
				var err error
				switch op := rng.IntN(10); {
				case op < 5:
					from := last + 1
					if op == 0 && last > h.s.truncatedIndex {
						from = h.s.truncatedIndex + 1 + rng.Uint64N(last-h.s.truncatedIndex)
						term++
					}
					size := rng.IntN(300)
					if rng.IntN(10) == 0 {
						size = borrowDataBytesMin + rng.IntN(1000) // written from the caller's buffer
					}
					err = h.s.Append([]*raftpb.Entry{entry(from, term, string(make([]byte, size)))})
				case op < 7:
					err = h.s.SetHardState(&raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(uint64(step))})
				case op < 8 && last > h.s.truncatedIndex:
					err = h.s.Truncate(h.s.truncatedIndex + 1 + rng.Uint64N(last-h.s.truncatedIndex))
				case op < 9 && rng.IntN(8) == 0:
					err = h.s.InstallSnapshot(last+uint64(rng.IntN(5)), term, &raftpb.ConfState{Voters: []uint64{1}})
				default:
					sync := rng.IntN(2) == 0
					if err := h.s.Commit(sync); err != nil {
						t.Fatal(err)
					}
					if sync {
						states = states[len(states)-1:]
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				states = append(states, h.model())
			}
			if err := h.s.Commit(false); err != nil {
				t.Fatal(err)
			}
			crashed, err := durable.Crash(h.fs, rng.IntN(101), rng.Uint64())
			if err != nil {
				t.Fatal(err)
			}
			h.close()
			h.fs = crashed
			h.open()
			got := h.model()
			if !slices.ContainsFunc(states, got.equal) {
				t.Fatalf("log after the crash %+v is none of the %d states since the last sync (first %+v, last %+v)",
					got, len(states), states[0], states[len(states)-1])
			}
			// And it goes on: a new entry, a sync, a reopen.
			last, _ := h.s.LastIndex()
			h.append(entry(last+1, term+1, "after"))
			h.reopen()
			h.wantTerm(last+1, term+1)
		})
	}
}

// Entries staged and not yet committed read back from the staging buffers,
// large ones from the caller's data; committed, from the segment.
func TestEntriesReadStagedAndWritten(t *testing.T) {
	h := newLogHarness(t)
	h.bootstrap(1, 1)
	big := make([]byte, borrowDataBytesMin+5)
	for i := range big {
		big[i] = byte(i)
	}
	ents := []*raftpb.Entry{entry(2, 1, "small"), {Index: proto.Uint64(3), Term: proto.Uint64(1), Data: big}, entry(4, 1, "after")}
	if err := h.s.Append(ents); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		got, err := h.s.Entries(2, 5, noLimit)
		if err != nil || len(got) != 3 {
			t.Fatalf("%s: Entries: %d, %v", when, len(got), err)
		}
		for i := range got {
			if !proto.Equal(got[i], ents[i]) {
				t.Fatalf("%s: entry %d = %v, want %v", when, i+2, got[i], ents[i])
			}
		}
	}
	check("staged")
	if err := h.s.Commit(true); err != nil {
		t.Fatal(err)
	}
	check("committed")
	h.reopen()
	check("reopened")
}
