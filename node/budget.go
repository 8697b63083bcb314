package node

import "fmt"

// DefaultMemoryBudgetBytes is a member's memory budget unless configured
// (cairn's --memory-budget): about what etcd 3.7 uses under sustained
// writes of 20 KiB values (docs/benchmarks.md).
const DefaultMemoryBudgetBytes = 320 << 20

// memoryBudgetBytesMin is the smallest budget SplitMemoryBudget accepts:
// below it the fixed costs of a Go process leave nothing to split.
const memoryBudgetBytesMin = 128 << 20

// MemoryBudget is a member's memory budget split among the structures that
// hold user data, each bounded in bytes, and the Go runtime. The parts add
// up to TotalBytes; docs/architecture.md ("Memory budgets") explains the
// shares.
type MemoryBudget struct {
	// TotalBytes is the whole budget: what a member's resident memory
	// stays within under sustained writes.
	TotalBytes int64
	// BlockCacheBytes is Pebble's block cache (Config.CacheBytes), outside
	// the Go heap.
	BlockCacheBytes int64
	// MemTableBytes is one memtable of the applied state's database
	// (Config.MemTableBytes), outside the Go heap. The database holds up
	// to memTablesQueued of them (memTablesBytes).
	MemTableBytes int64
	// RaftEntryCacheBytes is the raft entries kept after append
	// (Config.RaftEntryCacheBytes), in the Go heap.
	RaftEntryCacheBytes int64
	// LatestVersionCacheBytes is the cache of keys' newest version
	// metadata (Config.LatestVersionCacheBytes), in a mapping of its own
	// outside the Go heap.
	LatestVersionCacheBytes int64
	// LiveKeySetBytes is the set of live keys' fingerprints
	// (Config.LiveKeySetBytes), in a mapping of its own outside the Go
	// heap.
	LiveKeySetBytes int64
	// ReadCacheBytes is the cache of newest versions that single-key
	// ranges read (Config.ReadCacheBytes), in a mapping of its own outside
	// the Go heap. It is a share of what the block cache would otherwise
	// take: both hold data a read would otherwise read from the disk.
	ReadCacheBytes int64
	// WatchWindowBytes is the watch hub's window of recent events, in the
	// Go heap.
	WatchWindowBytes int64
	// ProcessBytes is the allowance for what a Go process holds outside
	// its heap: the program's text and data, thread stacks, the C
	// allocator's own overhead.
	ProcessBytes int64
	// GoRuntimeBytes is the rest: the Go runtime's memory limit
	// (debug.SetMemoryLimit), covering the raft entry cache, the watch
	// window, requests in flight and garbage not yet collected.
	// Invariant: the parts above, with memTablesBytes(MemTableBytes) for
	// the memtables, and this add up to TotalBytes.
	GoRuntimeBytes int64
}

// memTablesQueued is how many memtables one database holds at most with
// Pebble's default stop-writes threshold (2): the queue that stalls writes
// when full plus the mutable one.
const memTablesQueued = 3

// memTablesBytes is the most the state database's memtables hold. Its
// flushes all overlap (versions are keyed by user key), so each flush fewer
// saves compaction work: with 20 KiB values, a memtable of 16 MiB instead
// of 8 took a member from about 2,400 to 3,500 puts/s and from 4.3 to 3.8
// bytes written per byte put.
func memTablesBytes(stateBytes int64) int64 { return memTablesQueued * stateBytes }

// SplitMemoryBudget divides totalBytes (at least 128 MiB) among the
// bounded structures: 3/10 Pebble's block cache and the read cache (1/40
// of it), 3/20 its memtables (three of 1/20 for the applied state),
// 1/40 the cache of newest versions, 1/80 the live key set, 1/10 the
// watch window, 1/40 the raft entry cache, a fixed 24 MiB for the
// process, and the rest the Go
// runtime's limit (which the watch window and the raft entry cache live
// in).
func SplitMemoryBudget(totalBytes int64) (MemoryBudget, error) {
	if totalBytes < memoryBudgetBytesMin {
		return MemoryBudget{}, fmt.Errorf("node: memory budget %d bytes is below the minimum %d", totalBytes, memoryBudgetBytesMin)
	}
	b := MemoryBudget{
		TotalBytes:              totalBytes,
		BlockCacheBytes:         totalBytes/10*3 - totalBytes/40,
		MemTableBytes:           totalBytes / 20,
		WatchWindowBytes:        totalBytes / 10,
		RaftEntryCacheBytes:     totalBytes / 40,
		LatestVersionCacheBytes: totalBytes / 40,
		LiveKeySetBytes:         totalBytes / 80,
		ReadCacheBytes:          totalBytes / 40,
		ProcessBytes:            24 << 20,
	}
	b.GoRuntimeBytes = totalBytes - b.BlockCacheBytes - memTablesBytes(b.MemTableBytes) - b.LatestVersionCacheBytes - b.LiveKeySetBytes - b.ReadCacheBytes - b.ProcessBytes
	return b, nil
}

// MemoryUse is what one bounded structure holds, and its bound.
type MemoryUse struct {
	Name         string
	Bytes, Bound int64
}

// MemoryUses reports the bounded structures the node holds user data in:
// the raft entry cache, Pebble's block cache and its memtables (which may
// include a large batch Pebble applies as a memtable of its own). Reading
// Pebble's metrics costs tens of microseconds.
func (n *Node) MemoryUses() []MemoryUse {
	m := n.db.Metrics()
	return []MemoryUse{
		n.raftEntryCacheUse(),
		n.latestVersionCacheUse(),
		n.liveKeySetUse(),
		n.readCacheUse(),
		{Name: "pebble block cache", Bytes: m.BlockCache.Size, Bound: n.cfg.CacheBytes},
		{Name: "pebble memtables", Bytes: int64(m.MemTable.Size), Bound: memTablesBound(n.cfg)},
	}
}

func (n *Node) latestVersionCacheUse() MemoryUse {
	return MemoryUse{Name: "newest version cache", Bytes: n.store.LatestCacheBytes(), Bound: max(n.cfg.LatestVersionCacheBytes, 0)}
}

func (n *Node) liveKeySetUse() MemoryUse {
	return MemoryUse{Name: "live key set", Bytes: n.store.LiveKeySetBytes(), Bound: max(n.cfg.LiveKeySetBytes, 0)}
}

func (n *Node) readCacheUse() MemoryUse {
	return MemoryUse{Name: "read cache", Bytes: n.store.ReadCacheBytes(), Bound: max(n.cfg.ReadCacheBytes, 0)}
}

func (n *Node) raftEntryCacheUse() MemoryUse {
	return MemoryUse{Name: "raft entry cache", Bytes: int64(n.raftLog.RecentBytes()), Bound: n.cfg.RaftEntryCacheBytes}
}

// CheckMemoryBudgets reports a structure of the node's own code holding
// more than its budget: a leak. It costs a few comparisons, so the
// simulator calls it after every step; Pebble's structures, bounded by
// Pebble, are in MemoryUses.
func (n *Node) CheckMemoryBudgets() error {
	for _, u := range []MemoryUse{n.raftEntryCacheUse(), n.latestVersionCacheUse(), n.liveKeySetUse(), n.readCacheUse()} {
		if u.Bytes > u.Bound {
			return fmt.Errorf("node: %s holds %d bytes, over its budget of %d", u.Name, u.Bytes, u.Bound)
		}
	}
	return nil
}

// CheckAllMemoryBudgets is CheckMemoryBudgets and Pebble's structures.
func (n *Node) CheckAllMemoryBudgets() error {
	for _, u := range n.MemoryUses() {
		if u.Bytes > u.Bound {
			return fmt.Errorf("node: %s holds %d bytes, over its budget of %d", u.Name, u.Bytes, u.Bound)
		}
	}
	return nil
}

// memTablesBound is the most the state database's memtables hold with the
// options the node opens it with: its stop-writes threshold's worth of
// queued ones, plus its mutable one.
func memTablesBound(cfg Config) int64 {
	o := pebbleOptions(cfg, nil, stateDB)
	threshold := o.MemTableStopWritesThreshold
	if threshold <= 0 {
		threshold = 2 // Pebble's default
	}
	return int64(threshold+1) * int64(o.MemTableSize)
}
