package sim

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"slices"
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
	// crashBlockBytes is the unit a crash keeps or loses of unsynced data,
	// as vfs.MemFS's own CrashClone does.
	crashBlockBytes = 4096
)

// diskWorld is the seed's choice of storage behaviour, shared by members.
type diskWorld struct {
	// memTableBytes is every member's Pebble memtable size.
	memTableBytes int64
}

func newDiskWorld(o *Options, rng *rand.Rand) diskWorld {
	d := diskWorld{memTableBytes: o.MemTableBytes}
	if d.memTableBytes == 0 {
		d.memTableBytes = largeMemTableBytes
		if rng.IntN(3) == 0 {
			d.memTableBytes = smallMemTableMinBytes + rng.Int64N(smallMemTableMaxBytes-smallMemTableMinBytes+1)
		}
	}
	return d
}

// pebbleOptions keeps Pebble's background work deterministic: no automatic
// compactions (the simulator compacts, see maintainStorage), and memtable
// flushes either never (large memtables) or waited for after every step
// (small ones, see waitStorageIdle). A listener counts new write-ahead
// logs: in the raft log's database, a new log means a memtable was
// rotated and may be flushing. The applied state's database has no log:
// the node starts its flushes itself and counts them (StateFlushes).
func (m *member) pebbleOptions(o *pebble.Options) {
	o.MemTableSize = uint64(m.w.disk.memTableBytes)
	o.MemTableStopWritesThreshold = 4
	o.DisableAutomaticCompactions = true
	o.L0StopWritesThreshold = l0StopWritesThreshold
	o.AddEventListener(pebble.EventListener{
		WALCreated: func(pebble.WALCreateInfo) { m.walsCreated.Add(1) },
	})
}

// waitStorageIdle waits, in wall time, until a flush that Pebble started
// on its own goroutine since the last wait has finished, so that the next
// event sees the disk as the flush leaves it. Only a rotated memtable
// starts such a flush, so without a new write-ahead log or a flush the
// node started there is nothing to wait for.
func (m *member) waitStorageIdle() {
	if !m.up() || (m.walsCreated.Load() == m.walsSeen && m.node.StateFlushes() == m.stateFlushesSeen) {
		return
	}
	m.walsSeen, m.stateFlushesSeen = m.walsCreated.Load(), m.node.StateFlushes()
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
// probability keepPercent.
//
// vfs.MemFS's own CrashClone draws these choices in the order of Go map
// iteration and from one stream shared by all files, so with a fraction
// between 0 and 100 the same seed would keep different data. And what a
// write-ahead log holds beyond its last sync depends on when Pebble's log
// flusher goroutine last ran. So the image is made from three views of the
// disk, each deterministic: what is durable (CrashClone keeping nothing),
// the synced data of every current file (after syncing every directory),
// and every byte written, which closing the database makes complete (its
// log flusher writes out what it buffered). Every choice is drawn from a
// stream of its own, seeded from the crash's seed and the file's path, in
// sorted order, so a file's fate does not depend on which other files
// exist (Pebble deletes obsolete files on a goroutine of its own).
func (m *member) crashDisk(keepPercent int, seed uint64) (*vfs.MemFS, error) {
	m.waitStorageIdle()
	durable := m.fs.CrashClone(vfs.CrashCloneCfg{})
	if keepPercent == 0 {
		m.node.Close()
		return durable, nil
	}
	if err := syncDirs(m.fs, ""); err != nil {
		return nil, err
	}
	synced := m.fs.CrashClone(vfs.CrashCloneCfg{})
	m.node.Close()
	return crashedDisk(durable, synced, m.fs, keepPercent, seed)
}

// crashedDisk builds the disk a crash leaves from the three views of it
// that crashDisk describes.
func crashedDisk(durable, synced, written *vfs.MemFS, keepPercent int, seed uint64) (*vfs.MemFS, error) {
	img := crashImage{durable: durable, synced: synced, written: written,
		out: vfs.NewCrashableMem(), keepPercent: keepPercent, seed: seed}
	if err := img.copyDir(""); err != nil {
		return nil, err
	}
	return img.out, nil
}

type crashImage struct {
	durable, synced, written, out *vfs.MemFS
	keepPercent                   int
	seed                          uint64
}

// keeps draws the fate of the next unsynced unit of a path from the
// path's stream: its directory entry first, then its blocks in order.
func (c *crashImage) keeps(stream *rand.Rand) bool { return stream.IntN(100) < c.keepPercent }

func (c *crashImage) stream(path string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(path))
	return rand.New(rand.NewPCG(c.seed, h.Sum64()))
}

func (c *crashImage) copyDir(dir string) error {
	names, err := unionOfNames(dir, c.durable, c.written)
	if err != nil {
		return err
	}
	for _, name := range names {
		path := c.out.PathJoin(dir, name)
		stream := c.stream(path)
		_, errDurable := c.durable.Stat(path)
		if errDurable != nil && !c.keeps(stream) {
			continue // an entry made since its directory was last synced, lost
		}
		if err := c.copyEntry(path, stream); err != nil {
			return err
		}
	}
	return durable.SyncDir(c.out, dir)
}

func (c *crashImage) copyEntry(path string, stream *rand.Rand) error {
	info, err := c.written.Stat(path)
	if err != nil {
		info, err = c.durable.Stat(path) // removed, but not durably
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		if err := c.out.MkdirAll(path, 0o755); err != nil {
			return err
		}
		return c.copyDir(path)
	}
	return c.copyFile(path, stream)
}

// copyFile writes the file as the crash leaves it: its synced data, and
// each block written since with probability keepPercent. A name whose
// durable file was replaced (renamed over, or removed and made again)
// keeps the old file unless the new entry survives.
func (c *crashImage) copyFile(path string, stream *rand.Rand) error {
	old, errOld := readFileOf(c.durable, path)
	data, err := readFileOf(c.synced, path)
	if err != nil {
		if data, err = old, errOld; err != nil {
			return err
		}
	}
	written, err := readFileOf(c.written, path)
	if err != nil {
		written = data
	}
	if errOld == nil && !bytes.HasPrefix(data, old) && !c.keeps(stream) {
		data, written = old, old
	}
	for off := 0; off < len(written); off += crashBlockBytes {
		block := written[off:min(off+crashBlockBytes, len(written))]
		if off+len(block) <= len(data) && bytes.Equal(block, data[off:off+len(block)]) {
			continue // synced
		}
		if !c.keeps(stream) {
			continue
		}
		if grow := off + len(block) - len(data); grow > 0 {
			data = append(data, make([]byte, grow)...)
		}
		copy(data[off:], block)
	}
	return durable.WriteFile(c.out, path, data)
}

// unionOfNames lists dir in both filesystems; it may be missing from one
// (made since the last sync, or removed but not durably).
func unionOfNames(dir string, a, b *vfs.MemFS) ([]string, error) {
	var names []string
	found := false
	for _, fs := range []*vfs.MemFS{a, b} {
		if list, err := fs.List(dir); err == nil {
			found = true
			names = append(names, list...)
		}
	}
	if !found {
		return nil, fmt.Errorf("list %q: %w", dir, os.ErrNotExist)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func readFileOf(fs *vfs.MemFS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// syncDirs syncs every directory under dir, so that a CrashClone keeping
// nothing unsynced still holds every current file, with its synced data.
func syncDirs(fs *vfs.MemFS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		path := fs.PathJoin(dir, name)
		if info, err := fs.Stat(path); err == nil && info.IsDir() {
			if err := syncDirs(fs, path); err != nil {
				return err
			}
		}
	}
	return durable.SyncDir(fs, dir)
}
