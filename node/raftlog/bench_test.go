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
// decoding) entries, not the disk: a synced commit costs a WAL write and a
// no-op sync. Pebble's background flushes and compactions still run, as
// they would under a member, and on this filesystem their writes are heap
// allocations, counted in B/op. Entries carry benchEntryDataBytes of data,
// a small put request; the log is bootstrapped at (1, 1) and written at
// term benchTerm, as by a leader elected in the first election.
const (
	benchEntryDataBytes = 256
	benchTerm           = 2
	benchMemTableBytes  = 16 << 20 // node.Config.MemTableBytes default
	// An append benchmark truncates its log (untimed) as the node does with
	// its defaults: once SnapshotCount+SnapshotCatchUpEntries entries
	// are past the truncation point, to the last SnapshotCatchUpEntries.
	// So memory stays bounded however long it runs.
	benchTruncateEntries = 10000 + 5000
	benchKeepEntries     = 5000
	// benchReadLogEntries is the length of the log the read benchmarks
	// read from: about 1.2 MB, inside one memtable.
	benchReadLogEntries = 4096
)

// benchLog is one bootstrapped raft log on an in-memory filesystem.
type benchLog struct {
	b  *testing.B
	db *pebble.DB
	s  *Storage
}

func newBenchLog(b *testing.B) *benchLog {
	b.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}, MemTableSize: benchMemTableBytes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := Open(db, db)
	if err != nil {
		b.Fatal(err)
	}
	l := &benchLog{b: b, db: db, s: s}
	l.commit(pebble.Sync, func(batch *pebble.Batch) error {
		return s.Bootstrap(batch, batch, 1, 1, &raftpb.ConfState{Voters: []uint64{1}})
	})
	return l
}

// commit stages with fn into one batch and commits it.
func (l *benchLog) commit(opts *pebble.WriteOptions, fn func(*pebble.Batch) error) {
	batch := l.db.NewBatch()
	defer batch.Close()
	if err := fn(batch); err != nil {
		l.b.Fatal(err)
	}
	if err := batch.Commit(opts); err != nil {
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
// them into the batch.
func (l *benchLog) persist(ents []*raftpb.Entry) {
	last, _ := l.s.LastIndex()
	for i, e := range ents {
		*e.Index = last + 1 + uint64(i)
	}
	hs := &raftpb.HardState{Term: proto.Uint64(benchTerm), Vote: proto.Uint64(1), Commit: proto.Uint64(last + uint64(len(ents)))}
	l.commit(pebble.Sync, func(batch *pebble.Batch) error {
		if err := l.s.Append(batch, ents); err != nil {
			return err
		}
		return l.s.SetHardState(batch, hs)
	})
}

// truncate removes every entry but the last keep, as the node's log
// truncation does (not synced).
func (l *benchLog) truncate(keep uint64) {
	last, _ := l.s.LastIndex()
	l.commit(pebble.NoSync, func(batch *pebble.Batch) error { return l.s.Truncate(batch, last-keep) })
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
// bootstrap point, all in sstables if flushed, else all in the memtable
// (where the node reads the entries it has just committed).
func newBenchReadLog(b *testing.B, flushed bool) *benchLog {
	b.Helper()
	l := newBenchLog(b)
	ents := benchEntries(256)
	for range benchReadLogEntries / len(ents) {
		l.persist(ents)
	}
	if flushed {
		if err := l.db.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// readLocations names where the read benchmarks find the entries.
var readLocations = []struct {
	name    string
	flushed bool
}{{"memtable", false}, {"sstable", true}}

// BenchmarkEntries reads n consecutive entries from a random point with
// no size limit, as raft reads committed entries to apply or to send to a
// follower. Bytes are the entries' data.
func BenchmarkEntries(b *testing.B) {
	for _, loc := range readLocations {
		for _, n := range []uint64{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/n=%d", loc.name, n), func(b *testing.B) {
				l := newBenchReadLog(b, loc.flushed)
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
}

// BenchmarkTerm asks the term of a random entry below the last, which Term
// reads from Pebble (the last entry's term is cached).
func BenchmarkTerm(b *testing.B) {
	for _, loc := range readLocations {
		b.Run(loc.name, func(b *testing.B) {
			l := newBenchReadLog(b, loc.flushed)
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
}
