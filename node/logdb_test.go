package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A crash loses the applied state's unflushed writes, and the member
// applies the raft log's entries again: it restarts with every
// acknowledged write, even after its log was truncated.
func TestCrashReappliesTheLogSinceTheStateFlush(t *testing.T) {
	for _, name := range []string{"", "truncate-before-state-flush"} {
		t.Run(fmt.Sprintf("plant=%q", name), func(t *testing.T) {
			h := newHarness(t, []uint64{1}, func(c *Config) {
				c.SnapshotCount, c.SnapshotCatchUpEntries = 8, 2
				c.Knobs.TruncateLogBeforeStateFlush = name != ""
			})
			for i := range 30 {
				h.put(1, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
			}
			if h.node(1).log.TruncatedIndex() <= bootstrapIndex {
				t.Fatal("the log was never truncated: the test shows nothing")
			}
			before := h.node(1).RaftState()
			h.crash(1)
			err := h.tryOpen(1)
			if name != "" {
				if !errors.Is(err, raftlog.ErrCorrupt) {
					t.Fatalf("open after a crash with the log truncated past the durable state: %v, want a corrupt log", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckRecovery(before, h.node(1).RaftState(), 0, false); err != nil {
				t.Fatal(err)
			}
			h.settle()
			for i := range 30 {
				if v, ok := h.get(1, fmt.Sprintf("k%02d", i)); !ok || v != fmt.Sprint(i) {
					t.Fatalf("k%02d after the crash: %q, %v; want %d", i, v, ok, i)
				}
			}
		})
	}
}

// The raft log is cut no further than the applied state's newest flush
// that has ended, and the cut still happens: the node starts the flush it
// needs and truncates in a later call, without waiting inside one.
func TestLogIsTruncatedNoFurtherThanTheDurableState(t *testing.T) {
	for _, plant := range []bool{false, true} {
		t.Run(fmt.Sprintf("plant=%v", plant), func(t *testing.T) {
			h := newHarness(t, []uint64{1}, func(c *Config) {
				c.SnapshotCount, c.SnapshotCatchUpEntries = 8, 2
				c.Knobs.TruncateLogBeforeStateFlush = plant
			})
			n := h.node(1)
			passed := false
			for i := range 40 {
				h.put(1, fmt.Sprintf("k%02d", i), "v")
				if n.log.TruncatedIndex() > n.stateFlushes.durableApplied {
					passed = true
				}
			}
			if passed != plant {
				t.Fatalf("truncated past the durable state: %v, want %v (truncated %d, durable %d)",
					passed, plant, n.log.TruncatedIndex(), n.stateFlushes.durableApplied)
			}
			if n.log.TruncatedIndex() <= bootstrapIndex {
				t.Fatal("the log was never truncated")
			}
		})
	}
}

// A member whose raft log is in Pebble, in a database of its own or in its
// state database (the layouts before segment files), moves it into
// segments when it opens, and goes on with the same log and HardState.
func TestOpenMovesTheRaftLogOutOfPebble(t *testing.T) {
	for _, layout := range []string{"log database", "state database"} {
		t.Run(layout, func(t *testing.T) {
			h := newHarness(t, []uint64{1}, func(c *Config) {
				c.SnapshotCount, c.SnapshotCatchUpEntries = 8, 2
			})
			for i := range 20 {
				h.put(1, fmt.Sprintf("k%d", i), "v")
			}
			n := h.node(1)
			if n.log.TruncatedIndex() <= bootstrapIndex {
				t.Fatal("the log was never truncated: the move of a truncated log is not tested")
			}
			before := n.RaftState()
			hs := n.log.HardState()
			truncIndex, truncTerm := n.log.TruncatedIndex(), mustTerm(t, n.log, n.log.TruncatedIndex())
			last, _ := n.log.LastIndex()
			ents, err := n.log.Entries(truncIndex+1, last+1, noLimit)
			if err != nil {
				t.Fatal(err)
			}
			m := h.members[1]
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			// Make the old layout, and no segments.
			dir := pebbleLogDBName
			if layout == "state database" {
				if dir, err = liveDBName(m.fs, m.cfg.Dir); err != nil {
					t.Fatal(err)
				}
			}
			db, err := pebble.Open(m.fs.PathJoin(m.cfg.Dir, dir), &pebble.Options{FS: m.fs, Logger: quietPebbleLogger{}})
			if err != nil {
				t.Fatal(err)
			}
			writePebbleLog(t, db, hs, truncIndex, truncTerm, ents)
			if err := errors.Join(db.Flush(), db.Close(), m.fs.RemoveAll(m.fs.PathJoin(m.cfg.Dir, logDirName))); err != nil {
				t.Fatal(err)
			}

			h.open(1)
			if got := h.node(1).RaftState(); got != before {
				t.Fatalf("raft state after the move: %+v, want %+v", got, before)
			}
			if _, err := m.fs.Stat(m.fs.PathJoin(m.cfg.Dir, pebbleLogDBName)); err == nil {
				t.Fatal("the old log database is still there after the move")
			}
			h.settle()
			h.put(1, "after", "move")
			for _, k := range []string{"k0", "k19", "after"} {
				if _, ok := h.get(1, k); !ok {
					t.Fatalf("%s missing after the move", k)
				}
			}
			// The log's keys are gone from the state database.
			h.crash(1)
			h.open(1)
			if err := h.node(1).db.Set([]byte("rz"), nil, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			it, err := h.node(1).db.NewIter(&pebble.IterOptions{LowerBound: []byte("re"), UpperBound: []byte("ru")})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			if it.First() {
				t.Fatalf("state database still holds the log's key %q", it.Key())
			}
		})
	}
}

func mustTerm(t *testing.T, log *raftlog.Storage, index uint64) uint64 {
	t.Helper()
	term, err := log.Term(index)
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// writePebbleLog writes a raft log into db as the layouts before segment
// files kept it (logdb.go describes the keys).
func writePebbleLog(t *testing.T, db *pebble.DB, hs *raftpb.HardState, truncIndex, truncTerm uint64, ents []*raftpb.Entry) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	v, err := proto.Marshal(hs)
	if err != nil {
		t.Fatal(err)
	}
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	check(b.Set([]byte("rh"), v, nil))
	check(b.Set([]byte("rt"), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, truncIndex), truncTerm), nil))
	for _, e := range ents {
		v, err := proto.Marshal(e)
		check(err)
		check(b.Set(binary.BigEndian.AppendUint64([]byte("re"), e.GetIndex()),
			append(binary.BigEndian.AppendUint64(nil, e.GetTerm()), v...), nil))
	}
	check(b.Commit(pebble.Sync))
}

// Every flush of the applied state begins in a call into the node and is
// counted by StateFlushes, even one Pebble starts by itself at commit
// because the batch is large: the simulator waits for counted flushes
// before it takes a crash image, and an uncounted one raced with it. The
// txn below is under the node's own flush threshold (5/8 of a memtable in
// its accounting) but reserves more than half a memtable in Pebble's.
func TestPebbleFlushesOfLargeBatchesAreCounted(t *testing.T) {
	var pebbleFlushes atomic.Int64
	h := newHarness(t, []uint64{1}, func(c *Config) {
		c.MemTableBytes = 256 << 10
		c.PebbleOptions = func(o *pebble.Options) {
			o.EventListener = &pebble.EventListener{FlushBegin: func(pebble.FlushInfo) { pebbleFlushes.Add(1) }}
		}
	})
	n := h.node(1)
	waitIdle := func() {
		for n.StorageBusy() {
			time.Sleep(time.Millisecond)
		}
	}
	waitIdle()
	flushesBefore, countedBefore := pebbleFlushes.Load(), n.StateFlushes()
	txn := &pb.TxnRequest{}
	for i := range 128 {
		txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{
			RequestPut: &pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i), Value: make([]byte, 1000)}}})
	}
	h.write(1, &pb.InternalRaftRequest{Txn: txn})
	waitIdle()
	flushed, counted := pebbleFlushes.Load()-flushesBefore, int64(n.StateFlushes()-countedBefore)
	if flushed == 0 {
		t.Fatal("Pebble flushed nothing: the batch was not large enough to show anything")
	}
	if flushed > counted {
		t.Fatalf("Pebble began %d flushes, the node counted %d", flushed, counted)
	}
}
