package node

import (
	"fmt"
	"go.etcd.io/raft/v3/raftpb"
	"strings"
	"testing"
)

// TestSplitMemoryBudget: the parts add up to the total for budgets small
// and large, every part is positive, and a budget below the minimum is
// refused.
func TestSplitMemoryBudget(t *testing.T) {
	for _, total := range []int64{memoryBudgetBytesMin, DefaultMemoryBudgetBytes, 1<<30 + 7, 64 << 30} {
		b, err := SplitMemoryBudget(total)
		if err != nil {
			t.Fatal(err)
		}
		sum := b.BlockCacheBytes + memTablesBytes(b.MemTableBytes) + b.LatestVersionCacheBytes + b.LiveKeySetBytes + b.ReadCacheBytes + b.ProcessBytes + b.GoRuntimeBytes
		if sum != total {
			t.Fatalf("budget %d: parts add up to %d: %+v", total, sum, b)
		}
		for _, part := range []int64{b.BlockCacheBytes, b.MemTableBytes, b.LatestVersionCacheBytes, b.LiveKeySetBytes, b.ReadCacheBytes, b.RaftEntryCacheBytes, b.WatchWindowBytes, b.ProcessBytes} {
			if part <= 0 {
				t.Fatalf("budget %d: a part is not positive: %+v", total, b)
			}
		}
		if inHeap := b.RaftEntryCacheBytes + b.WatchWindowBytes; inHeap > b.GoRuntimeBytes/2 {
			t.Fatalf("budget %d: the Go heap's caches (%d) leave too little of its limit (%d) for requests in flight", total, inHeap, b.GoRuntimeBytes)
		}
	}
	if _, err := SplitMemoryBudget(memoryBudgetBytesMin - 1); err == nil {
		t.Fatal("a budget below the minimum was accepted")
	}
}

// TestMemoryBudgetsHoldUnderLargeValues: puts of 64 KiB values keep every
// bounded structure of a node within its budget after every Process, and
// the raft entry cache is in use (so the check checks something): a
// follower that hears nothing keeps the leader's entries wanted. A planted
// leak (the cache's own bound raised above the configured one) is caught.
func TestMemoryBudgetsHoldUnderLargeValues(t *testing.T) {
	const entryCacheBytes = 256 << 10
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.RaftEntryCacheBytes = entryCacheBytes })
	lead := h.leader()
	lagging := lead%3 + 1
	h.drop = func(m *raftpb.Message) bool { return m.GetTo() == lagging }
	value := strings.Repeat("v", 64<<10)
	check := func(i int) {
		if err := h.node(lead).CheckAllMemoryBudgets(); err != nil {
			t.Fatalf("after put %d: %v", i, err)
		}
	}
	for i := range 40 {
		h.put(lead, fmt.Sprint("k", i%5), value)
		check(i)
	}
	if got := h.node(lead).raftLog.RecentBytes(); got < entryCacheBytes/2 {
		t.Fatalf("the raft entry cache holds %d bytes after 40 puts of 64 KiB, expected close to its bound %d", got, entryCacheBytes)
	}
	// The five keys' values are in blob files: the newest version cache
	// holds them, and the node reports it among its budgets.
	var newest *MemoryUse
	for _, u := range h.node(lead).MemoryUses() {
		if u.Name == "newest version cache" {
			newest = &u
		}
	}
	if newest == nil || newest.Bytes == 0 || newest.Bytes > newest.Bound {
		t.Fatalf("newest version cache after 40 puts of 64 KiB over 5 keys: %+v, want some bytes within its bound", newest)
	}
	h.node(lead).raftLog.recentBytesMax = 1 << 40 // planted leak
	for i := range 10 {
		h.put(lead, fmt.Sprint("k", i%5), value)
	}
	if err := h.node(lead).CheckMemoryBudgets(); err == nil || !strings.Contains(err.Error(), "raft entry cache") {
		t.Fatalf("a raft entry cache over its budget was not reported: %v", err)
	}
}

// TestRaftEntryCacheReleasesWhatNoOneReads: entries applied and on every
// follower's disk leave the cache; a follower that lags keeps the leader's
// entries above its match in it, and catches up once it hears again.
func TestRaftEntryCacheReleasesWhatNoOneReads(t *testing.T) {
	single := newHarness(t, []uint64{1}, nil)
	for i := range 20 {
		single.put(1, fmt.Sprint("k", i), "v")
		if got := single.node(1).raftLog.RecentBytes(); got != 0 {
			t.Fatalf("a single member holds %d bytes of applied entries after put %d", got, i)
		}
	}

	h := newHarness(t, []uint64{1, 2, 3}, nil)
	lead := h.leader()
	lagging := lead%3 + 1
	h.drop = func(m *raftpb.Message) bool { return m.GetTo() == lagging }
	for i := range 20 {
		h.put(lead, fmt.Sprint("k", i), "v")
	}
	h.settle()
	if got := h.node(lead).raftLog.RecentBytes(); got == 0 {
		t.Fatal("the leader released the entries a lagging follower lacks")
	}
	for _, id := range h.ids {
		if id != lead && id != lagging {
			if got := h.node(id).raftLog.RecentBytes(); got != 0 {
				t.Fatalf("follower %d holds %d bytes of applied entries", id, got)
			}
		}
	}
	h.drop = nil
	for range 3 * h.node(lead).cfg.ElectionTicks {
		h.tick()
	}
	h.put(lead, "after", "v")
	h.settle()
	if got := h.node(lead).raftLog.RecentBytes(); got != 0 {
		t.Fatalf("the leader holds %d bytes of entries every follower has", got)
	}
	for i := range 20 {
		if v, found := h.get(lagging, fmt.Sprint("k", i)); !found || v != "v" {
			t.Fatalf("the lagging follower has k%d = %q, %v after catching up", i, v, found)
		}
	}
}

// BenchmarkCheckMemoryBudgets is the cost the simulator pays per step (a
// few nanoseconds), and that of reading Pebble's too.
func BenchmarkCheckMemoryBudgets(b *testing.B) {
	h := newHarness(&testing.T{}, []uint64{1}, nil)
	for i := range 100 {
		h.put(1, fmt.Sprint("k", i), "v")
	}
	b.Run("own", func(b *testing.B) {
		for b.Loop() {
			if err := h.node(1).CheckMemoryBudgets(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if err := h.node(1).CheckAllMemoryBudgets(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
