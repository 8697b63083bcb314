//go:build chaosfailpoints

package main

import (
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// pendingBytesMax bounds the unsynced bytes a lossyFile holds in memory;
// beyond it, they are written through to the OS (and so survive SIGKILL).
const pendingBytesMax = 64 << 20

// lossyFS holds what is written to a file in the process's memory until the
// file is synced, so SIGKILL loses unsynced writes the way a power failure
// does. Without it a process-level test cannot see a missing fsync: the
// kernel's page cache outlives the process. Reads, and opening a file again,
// first write its pending bytes through, so the process sees its own writes.
type lossyFS struct {
	vfs.FS

	mu struct {
		sync.Mutex
		// writers are the open lossy files by name.
		writers map[string]map[*lossyFile]struct{}
	}
}

var _ vfs.FS = (*lossyFS)(nil)

func newLossyFS(fs vfs.FS) *lossyFS {
	l := &lossyFS{FS: fs}
	l.mu.writers = make(map[string]map[*lossyFile]struct{})
	return l
}

func (l *lossyFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	lf := &lossyFile{File: f, fs: l, name: name}
	l.mu.Lock()
	if l.mu.writers[name] == nil {
		l.mu.writers[name] = make(map[*lossyFile]struct{})
	}
	l.mu.writers[name][lf] = struct{}{}
	l.mu.Unlock()
	return lf, nil
}

// flushWriters writes through the pending bytes of every open writer of name.
func (l *lossyFS) flushWriters(name string) error {
	l.mu.Lock()
	var writers []*lossyFile
	for f := range l.mu.writers[name] {
		writers = append(writers, f)
	}
	l.mu.Unlock()
	for _, f := range writers {
		if err := f.flush(); err != nil {
			return err
		}
	}
	return nil
}

func (l *lossyFS) forget(f *lossyFile) {
	l.mu.Lock()
	delete(l.mu.writers[f.name], f)
	if len(l.mu.writers[f.name]) == 0 {
		delete(l.mu.writers, f.name)
	}
	l.mu.Unlock()
}

func (l *lossyFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := l.FS.Create(name, category)
	return l.wrap(name, f, err)
}

func (l *lossyFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := l.flushWriters(name); err != nil {
		return nil, err
	}
	f, err := l.FS.OpenReadWrite(name, category, opts...)
	return l.wrap(name, f, err)
}

func (l *lossyFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := l.flushWriters(oldname); err != nil {
		return nil, err
	}
	f, err := l.FS.ReuseForWrite(oldname, newname, category)
	return l.wrap(newname, f, err)
}

func (l *lossyFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := l.flushWriters(name); err != nil {
		return nil, err
	}
	return l.FS.Open(name, opts...)
}

func (l *lossyFS) Rename(oldname, newname string) error {
	if err := l.flushWriters(oldname); err != nil {
		return err
	}
	return l.FS.Rename(oldname, newname)
}

func (l *lossyFS) Link(oldname, newname string) error {
	if err := l.flushWriters(oldname); err != nil {
		return err
	}
	return l.FS.Link(oldname, newname)
}

func (l *lossyFS) Stat(name string) (vfs.FileInfo, error) {
	if err := l.flushWriters(name); err != nil {
		return nil, err
	}
	return l.FS.Stat(name)
}

// lossyFile keeps what Write and WriteAt are given in memory until Sync.
type lossyFile struct {
	vfs.File
	fs   *lossyFS
	name string

	mu struct {
		sync.Mutex
		// pending are the writes the OS has not seen, in order, and
		// pendingBytes their length.
		pending      []pendingWrite
		pendingBytes int
	}
}

// pendingWrite is one write held back: appended (at < 0) or at an offset
// (the raft log's segments are written with WriteAt).
type pendingWrite struct {
	at int64
	b  []byte
}

func (f *lossyFile) Write(p []byte) (int, error) {
	return len(p), f.hold(-1, p)
}

func (f *lossyFile) WriteAt(p []byte, off int64) (int, error) {
	return len(p), f.hold(off, p)
}

// hold keeps a copy of p (the caller may reuse it) to write at at.
func (f *lossyFile) hold(at int64, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.pendingBytes+len(p) > pendingBytesMax {
		if err := f.flushLocked(); err != nil {
			return err
		}
	}
	f.mu.pending = append(f.mu.pending, pendingWrite{at: at, b: append([]byte(nil), p...)})
	f.mu.pendingBytes += len(p)
	return nil
}

func (f *lossyFile) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

// flushLocked writes the pending bytes through.
// REQUIRES: f.mu is held.
func (f *lossyFile) flushLocked() error {
	pending := f.mu.pending
	f.mu.pending, f.mu.pendingBytes = nil, 0
	for _, w := range pending {
		var err error
		if w.at < 0 {
			_, err = f.File.Write(w.b)
		} else {
			_, err = f.File.WriteAt(w.b, w.at)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *lossyFile) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *lossyFile) SyncData() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *lossyFile) SyncTo(length int64) (bool, error) {
	if err := f.flush(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

func (f *lossyFile) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *lossyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *lossyFile) Stat() (vfs.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

// Close writes the pending bytes through: a closed file's data stays in the
// page cache, which the emulated crash keeps, and a closed WAL is no longer
// being acknowledged from.
func (f *lossyFile) Close() error {
	err := f.flush()
	f.fs.forget(f)
	if closeErr := f.File.Close(); err == nil {
		err = closeErr
	}
	return err
}
