package durable

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The crash model the simulator and the storage tests share: what a disk
// holds after a crash, from what was synced and what was only written.

// CrashBlockBytes is the unit a crash keeps or loses of unsynced data, as
// vfs.MemFS's own CrashClone does.
const CrashBlockBytes = 4096

// Crash returns the disk a crash of fs leaves now, keeping keepPercent of
// what was written but not synced (see CrashImage). Every write must have
// reached fs: a caller with buffered writers closes them first, or uses
// CrashImage with its own views.
func Crash(fs *vfs.MemFS, keepPercent int, seed uint64) (*vfs.MemFS, error) {
	durable := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := SyncDirs(fs, ""); err != nil {
		return nil, err
	}
	return CrashImage(durable, fs.CrashClone(vfs.CrashCloneCfg{}), fs, keepPercent, seed)
}

// CrashImage builds the disk a crash leaves from three views of one disk,
// each deterministic: durable, what a crash keeps for sure (a CrashClone
// keeping nothing); synced, the synced data of every current file (a
// CrashClone after SyncDirs); and written, every byte written. Of what
// was written but not synced, each directory entry and each
// CrashBlockBytes block is kept with probability keepPercent. Every
// choice is drawn from a stream of its own, seeded from seed and the
// file's path, in sorted order, so a file's fate does not depend on which
// other files exist. (vfs.MemFS's own CrashClone draws these choices in
// the order of Go map iteration, from one stream shared by all files: the
// same seed would keep different data.)
func CrashImage(durable, synced, written *vfs.MemFS, keepPercent int, seed uint64) (*vfs.MemFS, error) {
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
func (c *crashImage) keeps(s *stream) bool { return int(s.next()%100) < c.keepPercent }

func (c *crashImage) stream(path string) *stream {
	h := fnv.New64a()
	h.Write([]byte(path))
	return &stream{state: c.seed ^ h.Sum64()}
}

// stream is a seeded sequence of pseudo-random numbers (SplitMix64): the
// node's packages take no randomness but what they are handed, and a crash
// image needs only a reproducible stream per file.
type stream struct{ state uint64 }

func (s *stream) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (c *crashImage) copyDir(dir string) error {
	names, err := unionOfNames(dir, c.durable, c.written)
	if err != nil {
		return err
	}
	for _, name := range names {
		path := c.out.PathJoin(dir, name)
		s := c.stream(path)
		_, errDurable := c.durable.Stat(path)
		if errDurable != nil && !c.keeps(s) {
			continue // an entry made since its directory was last synced, lost
		}
		if err := c.copyEntry(path, s); err != nil {
			return err
		}
	}
	return SyncDir(c.out, dir)
}

func (c *crashImage) copyEntry(path string, s *stream) error {
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
	return c.copyFile(path, s)
}

// copyFile writes the file as the crash leaves it: its synced data, and
// each block written since with probability keepPercent. A name whose
// durable file was replaced (renamed over, or removed and made again)
// keeps the old file unless the new entry survives.
func (c *crashImage) copyFile(path string, s *stream) error {
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
	if errOld == nil && !bytes.HasPrefix(data, old) && !c.keeps(s) {
		data, written = old, old
	}
	for off := 0; off < len(written); off += CrashBlockBytes {
		block := written[off:min(off+CrashBlockBytes, len(written))]
		if off+len(block) <= len(data) && bytes.Equal(block, data[off:off+len(block)]) {
			continue // synced
		}
		if !c.keeps(s) {
			continue
		}
		if grow := off + len(block) - len(data); grow > 0 {
			data = append(data, make([]byte, grow)...)
		}
		copy(data[off:], block)
	}
	return WriteFile(c.out, path, data)
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

// SyncDirs syncs every directory under dir, so that a CrashClone keeping
// nothing unsynced still holds every current file, with its synced data.
func SyncDirs(fs *vfs.MemFS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		path := fs.PathJoin(dir, name)
		if info, err := fs.Stat(path); err == nil && info.IsDir() {
			if err := SyncDirs(fs, path); err != nil {
				return err
			}
		}
	}
	return SyncDir(fs, dir)
}
