package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// A snapshot moves between members as a sequence of chunks read from the
// sender's checkpoint by a SnapshotReader and written on the receiver by a
// SnapshotStager. The transport (the server's gRPC stream, the
// simulator's network) only carries the chunks; every byte is read and
// written here, on the node's vfs.FS, so the server and the simulator run
// the same code with the same syncs.

// SnapshotChunkBytesMax bounds the data of one chunk, and so the memory a
// transfer holds at a time on either side.
const SnapshotChunkBytesMax = 1 << 20

// partialSuffix marks a staging directory whose snapshot is not complete.
const partialSuffix = ".partial"

// SnapshotChunk is one piece of a snapshot in transit. Exactly one of its
// fields is set: File starts the checkpoint file of that name (a base
// name), Data continues the file started last.
type SnapshotChunk struct {
	File string
	Data []byte
}

// SnapshotReader reads the checkpoint a MsgSnap names, file by file in name
// order, in chunks of at most SnapshotChunkBytesMax. It is not safe for
// concurrent use; the server reads in the sending goroutine, which is safe
// while the node runs because the node keeps a checkpoint until a newer one
// replaces it (and the transfer then fails and raft sends the newer one).
type SnapshotReader struct {
	fs  vfs.FS
	dir string
	// names are the checkpoint's files not yet started, in order.
	names []string
	cur   vfs.File
	buf   []byte
}

// OpenSnapshot opens the checkpoint snap names (snap.Data, relative to the
// member's directory dir, as the node's snapshot source sets it).
func OpenSnapshot(fs vfs.FS, dir string, snap *raftpb.Snapshot) (*SnapshotReader, error) {
	rel := string(snap.GetData())
	if rel != madeSnapshotPath(snap.GetMetadata().GetIndex()) {
		return nil, fmt.Errorf("node: snapshot at %d names %q, not one of this member's checkpoints", snap.GetMetadata().GetIndex(), rel)
	}
	r := &SnapshotReader{fs: fs, dir: fs.PathJoin(dir, rel)}
	entries, err := fs.List(r.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshot %s: %w", rel, err)
	}
	slices.Sort(entries)
	for _, name := range entries {
		info, err := fs.Stat(fs.PathJoin(r.dir, name))
		if err != nil {
			return nil, fmt.Errorf("snapshot file %s: %w", name, err)
		}
		if !info.IsDir() {
			r.names = append(r.names, name)
		}
	}
	return r, nil
}

// Next returns the next chunk, or io.EOF after the last. A chunk's Data is
// valid until the next call.
func (r *SnapshotReader) Next() (SnapshotChunk, error) {
	if r.cur != nil {
		if r.buf == nil {
			r.buf = make([]byte, SnapshotChunkBytesMax)
		}
		n, err := io.ReadFull(r.cur, r.buf)
		if n > 0 {
			return SnapshotChunk{Data: r.buf[:n]}, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return SnapshotChunk{}, fmt.Errorf("read snapshot file: %w", err)
		}
		if err := r.closeFile(); err != nil {
			return SnapshotChunk{}, err
		}
	}
	if len(r.names) == 0 {
		return SnapshotChunk{}, io.EOF
	}
	name := r.names[0]
	r.names = r.names[1:]
	f, err := r.fs.Open(r.fs.PathJoin(r.dir, name))
	if err != nil {
		return SnapshotChunk{}, fmt.Errorf("open snapshot file %s: %w", name, err)
	}
	r.cur = f
	return SnapshotChunk{File: name}, nil
}

func (r *SnapshotReader) closeFile() error {
	f := r.cur
	r.cur = nil
	return f.Close()
}

// Close releases the file being read, if any.
func (r *SnapshotReader) Close() error {
	if r.cur == nil {
		return nil
	}
	return r.closeFile()
}

// SnapshotStager writes a received snapshot into the member's incoming
// directory. The files go into incoming/<index>.partial, each synced when
// the next one starts; Finish syncs the last file and the directory, then
// renames it to incoming/<index>: a snapshot under its final name is
// complete, and the install only renames that directory into place.
//
// Why these syncs and no others: the install makes the snapshot live by
// renaming its directory into the member's directory and syncing that
// (before CURRENT names it), which makes the directory entry durable; the
// directory's own entries and the files' contents must already be, and
// these syncs are what makes them so. A staged snapshot need not survive
// a crash by itself: Open removes incoming/ and raft sends the snapshot
// again.
//
// A stager is used by one goroutine. Two stagers must not work on the same
// index at once (the server receives one snapshot at a time).
type SnapshotStager struct {
	fs      vfs.FS
	index   uint64
	partial string
	final   string
	cur     vfs.File
	// seen are the files staged so far, to refuse a name sent twice.
	seen map[string]bool
}

// StageSnapshot starts staging the snapshot at index in the member's
// directory dir, replacing what an earlier, unfinished attempt left.
func StageSnapshot(fs vfs.FS, dir string, index uint64) (*SnapshotStager, error) {
	final := fs.PathJoin(dir, incomingSnapshotPath(index))
	s := &SnapshotStager{fs: fs, index: index, partial: final + partialSuffix, final: final, seen: map[string]bool{}}
	if err := fs.RemoveAll(s.partial); err != nil {
		return nil, fmt.Errorf("stage snapshot at %d: %w", index, err)
	}
	if err := fs.MkdirAll(s.partial, 0o755); err != nil {
		return nil, fmt.Errorf("stage snapshot at %d: %w", index, err)
	}
	return s, nil
}

// ErrBadSnapshotChunk is returned for a chunk that does not fit the
// sequence: data before a file, or a file name that is not a plain, new
// base name.
var ErrBadSnapshotChunk = errors.New("node: malformed snapshot chunk")

// Add writes one chunk.
func (s *SnapshotStager) Add(c SnapshotChunk) error {
	switch {
	case c.File != "" && c.Data != nil:
		return fmt.Errorf("%w: both a file name and data", ErrBadSnapshotChunk)
	case c.File != "":
		return s.startFile(c.File)
	case s.cur == nil:
		return fmt.Errorf("%w: data before a file name", ErrBadSnapshotChunk)
	}
	if _, err := s.cur.Write(c.Data); err != nil {
		return fmt.Errorf("stage snapshot at %d: %w", s.index, err)
	}
	return nil
}

func (s *SnapshotStager) startFile(name string) error {
	if name == "." || name == ".." || strings.ContainsAny(name, `/\`) || s.seen[name] {
		return fmt.Errorf("%w: file name %q", ErrBadSnapshotChunk, name)
	}
	if err := s.syncFile(); err != nil {
		return err
	}
	f, err := s.fs.Create(s.fs.PathJoin(s.partial, name), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("stage snapshot at %d: %w", s.index, err)
	}
	s.cur, s.seen[name] = f, true
	return nil
}

// syncFile makes the file being written durable and closes it.
func (s *SnapshotStager) syncFile() error {
	if s.cur == nil {
		return nil
	}
	f := s.cur
	s.cur = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync staged snapshot file: %w", err)
	}
	return f.Close()
}

// Finish makes the staged snapshot durable and complete and returns what
// the MsgSnap's Snapshot.Data must say before it is handed to the node.
// On an error it drops what it staged.
func (s *SnapshotStager) Finish() ([]byte, error) {
	data, err := s.finish()
	if err != nil {
		s.Abort()
	}
	return data, err
}

func (s *SnapshotStager) finish() ([]byte, error) {
	if err := s.syncFile(); err != nil {
		return nil, err
	}
	if err := durable.SyncDir(s.fs, s.partial); err != nil {
		return nil, fmt.Errorf("sync staged snapshot at %d: %w", s.index, err)
	}
	if _, err := s.fs.Stat(s.final); err == nil {
		// The same snapshot was staged already (raft sent it twice) and
		// may be being installed: keep that one.
		return []byte(incomingSnapshotPath(s.index)), s.fs.RemoveAll(s.partial)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := s.fs.Rename(s.partial, s.final); err != nil {
		return nil, fmt.Errorf("complete staged snapshot at %d: %w", s.index, err)
	}
	return []byte(incomingSnapshotPath(s.index)), nil
}

// Abort drops an unfinished snapshot.
func (s *SnapshotStager) Abort() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	s.fs.RemoveAll(s.partial)
}
