package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The simulated disk: Pebble on vfs.NewCrashableMem, with memtable
// flushes and compactions at moments the seed chooses, and crashes that
// keep a seeded part of the data that was written but not synced.

const (
	// largeMemTableBytes never fills within a run: Pebble flushes only when
	// the simulator asks it to.
	largeMemTableBytes = 256 << 20
	// smallMemTableMinBytes and smallMemTableMaxBytes bound the memtables
	// of seeds that run with small ones; Pebble then flushes a full
	// memtable on its own, every few hundred writes. Both are at most
	// Pebble's initial memtable size (256 KiB), so every memtable has the
	// configured size and each full one is flushed alone.
	smallMemTableMinBytes = 64 << 10
	smallMemTableMaxBytes = 256 << 10
	// storageIdleWaitMax bounds, in wall time, the wait for a flush Pebble
	// started on its own goroutine; a flush of a small memtable takes
	// microseconds, so reaching it means Pebble is stuck.
	storageIdleWaitMax = 30 * time.Second
	// l0StopWritesThreshold is the level-0 read amplification at which
	// Pebble stops writes until a compaction lowers it. Compactions run
	// only when the simulator asks, so Pebble's default (12) would stop a
	// member for good after a dozen flushes; a run's flushes stay far
	// below this bound, and every compaction empties level 0.
	l0StopWritesThreshold = 1000
)

// diskWorld is the seed's choice of storage behaviour, shared by members.
type diskWorld struct {
	// memTableBytes is every member's Pebble memtable size.
	memTableBytes int64
	// logSegmentBytes is the size of every member's raft log segments.
	logSegmentBytes int64
	// separatedValueBytesMin and latestVersionCacheBytes, when set, put
	// every value but the shortest in blob files and bound the cache of
	// newest versions (which takes in the keys whose values are there) to
	// a few entries; zero leaves the node's defaults.
	separatedValueBytesMin  int
	latestVersionCacheBytes int64
	// readCacheBytes, when set, bounds the read cache to a few dozen
	// entries on the same seeds; zero leaves the node's default.
	readCacheBytes int64
}

// Half the seeds run with raft log segments of smallLogSegmentMinBytes to
// smallLogSegmentMaxBytes, so that segments are made, filled and deleted
// many times in a run, with crashes and disk errors among them; the rest
// with the default (64 MiB), one segment per run.
const (
	smallLogSegmentMinBytes = 4 << 10
	smallLogSegmentMaxBytes = 256 << 10
	// logSegmentStream seeds the segment size's own stream, so that
	// drawing it moves no other choice of a seed.
	logSegmentStream = 0x5e6
)

// Half the seeds store every version of more than smallSeparatedValueBytes
// bytes (most of the simulator's) in blob files, and keep the newest
// versions of a few keys only in the node's cache of them (between
// smallLatestCacheMinBytes and smallLatestCacheMaxBytes, about 9 to 80
// keys): puts and deletes then read the versions they replace now from
// the cache, now from Pebble, and entries are evicted all the time.
const (
	smallSeparatedValueBytes = 8
	smallLatestCacheMinBytes = 512
	smallLatestCacheMaxBytes = 4 << 10
	// The read cache on those seeds: between smallReadCacheMinBytes and
	// smallReadCacheMaxBytes, some dozens of the simulator's keys.
	smallReadCacheMinBytes = 4 << 10
	smallReadCacheMaxBytes = 8 << 10
	// valueSeparationStream seeds these choices' own stream.
	valueSeparationStream = 0x5e7
)

func newDiskWorld(o *Options, rng *rand.Rand) diskWorld {
	d := diskWorld{memTableBytes: o.MemTableBytes, logSegmentBytes: o.LogSegmentBytes}
	if d.memTableBytes == 0 {
		d.memTableBytes = largeMemTableBytes
		if rng.IntN(3) == 0 {
			d.memTableBytes = smallMemTableMinBytes + rng.Int64N(smallMemTableMaxBytes-smallMemTableMinBytes+1)
		}
	}
	if segments := rand.New(rand.NewPCG(uint64(o.Seed), logSegmentStream)); d.logSegmentBytes == 0 && segments.IntN(2) == 0 {
		d.logSegmentBytes = smallLogSegmentMinBytes + segments.Int64N(smallLogSegmentMaxBytes-smallLogSegmentMinBytes+1)
	}
	if values := rand.New(rand.NewPCG(uint64(o.Seed), valueSeparationStream)); values.IntN(2) == 0 {
		d.separatedValueBytesMin = smallSeparatedValueBytes
		d.latestVersionCacheBytes = smallLatestCacheMinBytes + values.Int64N(smallLatestCacheMaxBytes-smallLatestCacheMinBytes+1)
		d.readCacheBytes = smallReadCacheMinBytes + values.Int64N(smallReadCacheMaxBytes-smallReadCacheMinBytes+1)
	}
	return d
}

// pebbleOptions keeps Pebble's background work deterministic: no automatic
// compactions (the simulator compacts, see maintainStorage), and memtable
// flushes either never (large memtables) or waited for after every step
// (small ones, see waitStorageIdle). The applied state's database has no
// write-ahead log: the node starts its flushes itself and counts them
// (StateFlushes).
func (m *member) pebbleOptions(o *pebble.Options) {
	o.MemTableSize = uint64(m.w.disk.memTableBytes)
	o.MemTableStopWritesThreshold = 4
	o.DisableAutomaticCompactions = true
	// Pebble loads the statistics of new tables on a goroutine of its own,
	// holding the version it reads: a table a compaction then replaces
	// stays a zombie, counted in the database's size, for as long as the
	// load takes in wall time, and the quota reads that size. The
	// statistics only guide automatic compactions, which are off.
	o.DisableTableStats = true
	o.L0StopWritesThreshold = l0StopWritesThreshold
}

// waitStorageIdle waits, in wall time, until a flush that Pebble started
// on its own goroutine since the last wait has finished, so that the next
// event sees the disk as the flush leaves it. Only a flush the node
// started runs there (the raft log's segments are written in the call
// that writes them), so without one there is nothing to wait for.
func (m *member) waitStorageIdle() {
	if !m.up() || m.node.StateFlushes() == m.stateFlushesSeen {
		return
	}
	m.stateFlushesSeen = m.node.StateFlushes()
	deadline := time.Now().Add(storageIdleWaitMax)
	for m.node.StorageBusy() {
		if time.Now().After(deadline) {
			panic(fmt.Sprintf("sim: %s: Pebble still flushing after %v", m.name(), storageIdleWaitMax))
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// maintainStorage flushes or compacts a random member every 0.3–3 s, as
// Pebble would on its own goroutines, but between steps: the moment is
// part of the seed.
func (n *nemesis) maintainStorage(flush, compact bool) {
	w := n.w
	w.sched.after(300*millisecond+w.rng.Int64N(2700*millisecond), func() {
		if w.sched.nowMicros >= w.opts.DurationMicros || w.failed() {
			return
		}
		m := w.pick(1)[0]
		doFlush := flush && (!compact || w.rng.IntN(10) < 7)
		if m.up() && !m.paused && !m.diskFails() {
			m.maintain(doFlush)
		}
		n.maintainStorage(flush, compact)
	})
}

func (m *member) maintain(flush bool) {
	what, do := "compacts", m.node.CompactStorage
	if flush {
		what, do = "flushes", m.node.FlushStorage
	}
	m.w.trace.printf("storage: %s %s", m.name(), what)
	if err := do(); err != nil {
		m.w.fail("%s: %v", m.name(), err)
		return
	}
	m.waitStorageIdle()
}

// unsyncedPercentOfCrash draws how much of the unsynced data one crash
// keeps: none (a power loss right after the last sync), all of it (the
// process died, the operating system wrote everything out), or a part.
func (w *world) unsyncedPercentOfCrash() int {
	switch w.rng.IntN(3) {
	case 0:
		return 0
	case 1:
		return 100
	}
	return 1 + w.rng.IntN(99)
}

// crashDisk closes the member's node and returns its disk as a crash would
// leave it: everything synced, and of what was written but not synced, each
// unsynced directory entry and each unsynced 4 KiB block kept with
// probability keepPercent, drawn deterministically from seed
// (durable.CrashImage). The views are taken before the node closes, and
// the written one after, so that whatever closing writes counts as
// unsynced.
func (m *member) crashDisk(keepPercent int, seed uint64) (*vfs.MemFS, error) {
	m.waitStorageIdle()
	durableView := m.fs.CrashClone(vfs.CrashCloneCfg{})
	if keepPercent == 0 {
		m.node.Close()
		return durableView, nil
	}
	if err := durable.SyncDirs(m.fs, ""); err != nil {
		return nil, err
	}
	synced := m.fs.CrashClone(vfs.CrashCloneCfg{})
	m.node.Close()
	return durable.CrashImage(durableView, synced, m.fs, keepPercent, seed)
}
