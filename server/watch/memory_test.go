package watch

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Shape of TestMemoryBoundedUnderLargeWrites: 160 MiB of values, as the
// production driver feeds them: a batch of puts per Process call, the
// events to the hub.
const (
	leakTestValueBytes  = 128 << 10
	leakTestPuts        = 1280
	leakTestBatchPuts   = 32
	leakTestKeys        = 50
	leakTestHeapSlackMB = 24 // the runtime's own, the test's, Pebble's Go objects
	leakTestRoundsMax   = 1000
)

// seqRand is a deterministic node.Rand.
type seqRand struct{ n uint64 }

func (r *seqRand) Uint64() uint64 { r.n++; return r.n * 0x9e3779b97f4a7c15 }

// TestMemoryBoundedUnderLargeWrites is issue 16's leak as a test: a node
// driven directly with the default memory budget, its events fed to a
// hub with one watcher that reads and one that never does, takes 160 MiB
// of puts; then, after a GC, the Go heap holds no more than it did before
// the writes plus the budgets of the structures that live in it (the
// watch window, the raft entry cache, the stalled watcher's queue) and a
// fixed slack, and every bounded structure is within its budget. Before
// the window was bounded in bytes, the heap held every value twice (event
// and previous value) and grew by about 320 MiB.
func TestMemoryBoundedUnderLargeWrites(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory is not the program's heap")
	}
	budget, err := node.SplitMemoryBudget(node.DefaultMemoryBudgetBytes)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Config{ID: 1, InitialVoters: []uint64{1}, Dir: t.TempDir(), Rand: &seqRand{},
		CacheBytes: budget.BlockCacheBytes, MemTableBytes: budget.MemTableBytes, RaftEntryCacheBytes: budget.RaftEntryCacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	hub := New(NodeStore(n.Store()), Config{RecentBytesMax: int(budget.WatchWindowBytes), ResyncInterval: time.Hour}, nil)
	defer hub.Close()
	reader, stalled := hub.NewStream(), hub.NewStream()
	for _, s := range []*Stream{reader, stalled} {
		s.Create(&pb.WatchCreateRequest{Key: []byte("k"), RangeEnd: []byte("l"), PrevKv: true})
	}
	process := func() {
		out, err := n.Process()
		if err != nil {
			t.Fatal(err)
		}
		hub.Notify(out.Events)
		reader.Take()
	}
	for round := 0; !n.Status().IsLeader; round++ { // the single voter wins its election
		if round == leakTestRoundsMax {
			t.Fatal("no leader")
		}
		process()
	}
	before := heapAfterGC()
	start := time.Now()
	for i := 0; i < leakTestPuts; i += leakTestBatchPuts {
		for j := i; j < i+leakTestBatchPuts; j++ {
			// Every value distinct, so that no two events can share one.
			value := bytes.Repeat([]byte{byte(j)}, leakTestValueBytes)
			n.Start(node.Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%d", j%leakTestKeys), Value: value}})
		}
		for round := 0; n.HasReady(); round++ {
			if round == leakTestRoundsMax {
				t.Fatal("the node does not settle")
			}
			process()
		}
		if err := n.CheckAllMemoryBudgets(); err != nil {
			t.Fatal(err)
		}
		if got := hub.RecentBytes(); got > int(budget.WatchWindowBytes) {
			t.Fatalf("the watch window holds %d bytes, budget %d", got, budget.WatchWindowBytes)
		}
	}
	if rev := n.Store().Rev(); rev < leakTestPuts {
		t.Fatalf("revision %d after %d puts", rev, leakTestPuts)
	}
	after := heapAfterGC()
	allowed := budget.WatchWindowBytes + budget.RaftEntryCacheBytes + 4<<20 /* the stalled watcher's queue */ + leakTestHeapSlackMB<<20
	t.Logf("%d MiB of puts in %v: heap %d MiB before, %d MiB after, allowed growth %d MiB",
		leakTestPuts*leakTestValueBytes>>20, time.Since(start).Round(time.Millisecond), before>>20, after>>20, allowed>>20)
	if grown := int64(after) - int64(before); grown > allowed {
		t.Fatalf("the heap grew by %d MiB over %d MiB of puts, budget %d MiB: something holds values", grown>>20, leakTestPuts*leakTestValueBytes>>20, allowed>>20)
	}
	runtime.KeepAlive(stalled)
}

// heapAfterGC is the heap in use after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
