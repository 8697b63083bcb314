package node

import (
	"fmt"
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
		sum := b.BlockCacheBytes + memTablesBytes(b.MemTableBytes) + b.ProcessBytes + b.GoRuntimeBytes
		if sum != total {
			t.Fatalf("budget %d: parts add up to %d: %+v", total, sum, b)
		}
		for _, part := range []int64{b.BlockCacheBytes, b.MemTableBytes, b.RaftEntryCacheBytes, b.WatchWindowBytes, b.ProcessBytes} {
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
// the raft entry cache is in use (so the check checks something). A
// planted leak (the cache's own bound raised above the configured one) is
// caught.
func TestMemoryBudgetsHoldUnderLargeValues(t *testing.T) {
	const entryCacheBytes = 256 << 10
	h := newHarness(t, []uint64{1}, func(c *Config) { c.RaftEntryCacheBytes = entryCacheBytes })
	value := strings.Repeat("v", 64<<10)
	check := func(i int) {
		if err := h.node(1).CheckAllMemoryBudgets(); err != nil {
			t.Fatalf("after put %d: %v", i, err)
		}
	}
	for i := range 40 {
		h.put(1, fmt.Sprint("k", i%5), value)
		check(i)
	}
	if got := h.node(1).raftLog.RecentBytes(); got < entryCacheBytes/2 {
		t.Fatalf("the raft entry cache holds %d bytes after 40 puts of 64 KiB, expected close to its bound %d", got, entryCacheBytes)
	}
	// The five keys' values are in blob files: the newest version cache
	// holds them, and the node reports it among its budgets.
	var newest *MemoryUse
	for _, u := range h.node(1).MemoryUses() {
		if u.Name == "newest version cache" {
			newest = &u
		}
	}
	if newest == nil || newest.Bytes == 0 || newest.Bytes > newest.Bound {
		t.Fatalf("newest version cache after 40 puts of 64 KiB over 5 keys: %+v, want some bytes within its bound", newest)
	}
	h.node(1).raftLog.recentBytesMax = 1 << 40 // planted leak
	for i := range 10 {
		h.put(1, fmt.Sprint("k", i%5), value)
	}
	if err := h.node(1).CheckMemoryBudgets(); err == nil || !strings.Contains(err.Error(), "raft entry cache") {
		t.Fatalf("a raft entry cache over its budget was not reported: %v", err)
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
