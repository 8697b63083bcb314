package raftlog

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The benchmarks run the log on Pebble's in-memory filesystem, so they
// measure the CPU of encoding, staging and committing (and of reading and
// decoding) entries, not the disk: a synced commit costs a write into
// memory and a no-op sync. Entries carry benchEntryDataBytes of data, a
// small put request; the log is bootstrapped at (1, 1) and written at term
// benchTerm, as by a leader elected in the first election.
const (
	benchEntryDataBytes = 256
	benchTerm           = 2
	// An append benchmark truncates its log (untimed) as the node does with
	// its defaults: once SnapshotCount+SnapshotCatchUpEntries entries
	// are past the truncation point, to the last SnapshotCatchUpEntries.
	// With small segments, whole segments are then deleted, so memory
	// stays bounded however long it runs.
	benchTruncateEntries = 10000 + 5000
	benchKeepEntries     = 5000
	benchSegmentBytes    = 1 << 20
	// benchReadLogEntries is the length of the log the read benchmarks
	// read from: about 1.2 MB.
	benchReadLogEntries = 4096
)

// benchLog is one bootstrapped raft log on an in-memory filesystem.
type benchLog struct {
	b *testing.B
	s *Storage
}

func newBenchLog(b *testing.B) *benchLog {
	b.Helper()
	fs := vfs.NewMem()
	state, err := pebble.Open("state", &pebble.Options{FS: fs, Logger: quietPebble{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { state.Close() })
	s, err := Open(fs, "wal", state, Options{SegmentBytes: benchSegmentBytes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	l := &benchLog{b: b, s: s}
	batch := state.NewBatch()
	defer batch.Close()
	l.commit(true, func() error { return s.Bootstrap(batch, 1, 1, &raftpb.ConfState{Voters: []uint64{1}}) })
	return l
}

// commit stages with fn and commits it.
func (l *benchLog) commit(sync bool, fn func() error) {
	if err := fn(); err != nil {
		l.b.Fatal(err)
	}
	if err := l.s.Commit(sync); err != nil {
		l.b.Fatal(err)
	}
}

// benchEntries returns n entries of benchEntryDataBytes random data each.
// Their indexes are set by persist before each use.
func benchEntries(n int) []*raftpb.Entry {
	rng := rand.New(rand.NewPCG(1, 2))
	ents := make([]*raftpb.Entry, n)
	for i := range ents {
		data := make([]byte, benchEntryDataBytes)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		ents[i] = &raftpb.Entry{Index: proto.Uint64(0), Term: proto.Uint64(benchTerm), Type: raftpb.EntryNormal.Enum(), Data: data}
	}
	return ents
}

// persist writes ents after the last entry as the node persists one Ready:
// the entries and a HardState committing them, in one synced commit. The
// entries are reused, so only their indexes are set here; Append copies
// them into the staged records.
func (l *benchLog) persist(ents []*raftpb.Entry) {
	last, _ := l.s.LastIndex()
	for i, e := range ents {
		*e.Index = last + 1 + uint64(i)
	}
	hs := &raftpb.HardState{Term: proto.Uint64(benchTerm), Vote: proto.Uint64(1), Commit: proto.Uint64(last + uint64(len(ents)))}
	l.commit(true, func() error {
		if err := l.s.Append(ents); err != nil {
			return err
		}
		return l.s.SetHardState(hs)
	})
}

// truncate removes every entry but the last keep, as the node's log
// truncation does (not synced).
func (l *benchLog) truncate(keep uint64) {
	last, _ := l.s.LastIndex()
	l.commit(false, func() error { return l.s.Truncate(last - keep) })
}

// BenchmarkAppend persists one Ready of batch entries per op: Append,
// SetHardState and a synced commit. Bytes are the entries' data.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			l := newBenchLog(b)
			ents := benchEntries(batch)
			b.SetBytes(int64(batch * benchEntryDataBytes))
			b.ReportAllocs()
			for b.Loop() {
				l.persist(ents)
				if last, _ := l.s.LastIndex(); last-l.s.TruncatedIndex() > benchTruncateEntries {
					b.StopTimer()
					l.truncate(benchKeepEntries)
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
			if last, _ := l.s.LastIndex(); last != 1+uint64(b.N*batch) {
				b.Fatalf("last index %d after %d appends of %d", last, b.N, batch)
			}
		})
	}
}

// newBenchReadLog returns a log of benchReadLogEntries entries after the
// bootstrap point.
func newBenchReadLog(b *testing.B) *benchLog {
	b.Helper()
	l := newBenchLog(b)
	ents := benchEntries(256)
	for range benchReadLogEntries / len(ents) {
		l.persist(ents)
	}
	return l
}

// BenchmarkEntries reads n consecutive entries from a random point with
// no size limit, as raft reads committed entries to apply or to send to a
// follower. Bytes are the entries' data.
func BenchmarkEntries(b *testing.B) {
	for _, n := range []uint64{1, 16, 256} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			l := newBenchReadLog(b)
			first, _ := l.s.FirstIndex()
			rng := rand.New(rand.NewPCG(3, 4))
			b.SetBytes(int64(n * benchEntryDataBytes))
			b.ReportAllocs()
			for b.Loop() {
				lo := first + rng.Uint64N(benchReadLogEntries-n+1)
				ents, err := l.s.Entries(lo, lo+n, math.MaxUint64)
				if err != nil || uint64(len(ents)) != n || ents[0].GetIndex() != lo {
					b.Fatalf("Entries(%d, %d): %d entries, %v", lo, lo+n, len(ents), err)
				}
			}
		})
	}
}

// BenchmarkTerm asks the term of a random entry below the last, which the
// log keeps in memory with the entry's place.
func BenchmarkTerm(b *testing.B) {
	b.Run("any", func(b *testing.B) {
		l := newBenchReadLog(b)
		first, _ := l.s.FirstIndex()
		rng := rand.New(rand.NewPCG(5, 6))
		b.ReportAllocs()
		for b.Loop() {
			i := first + rng.Uint64N(benchReadLogEntries-1)
			if term, err := l.s.Term(i); err != nil || term != benchTerm {
				b.Fatalf("Term(%d) = %d, %v", i, term, err)
			}
		}
	})
}
