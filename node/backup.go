package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// A backup (etcd's Maintenance.Snapshot, `etcdctl snapshot save`) is a
// Pebble checkpoint of the member's whole database — keyspace, leases,
// members, raft state — taken at one point (every apply batch is atomic,
// so any point is consistent), streamed in cairn's own format:
//
//	"cairn-backup-v1\n"
//	per file, in name order: uvarint name length, name, uvarint size, bytes
//	uvarint 0
//	zero bytes up to a multiple of 512
//	SHA-256 of everything before (32 bytes)
//
// The total is 512k+32 bytes, which is what etcdctl checks before it keeps
// a snapshot. cairnutl restores one (RestoreBackup).

const (
	backupMagic = "cairn-backup-v1\n"
	// backupAlignBytes is the alignment before the checksum.
	backupAlignBytes = 512
	// backupDir holds checkpoints being streamed, under the member's
	// directory; each is removed when its stream ends.
	backupDir = "backup"
	// backupFileBytesMax and backupFilesMax bound what a restore accepts.
	backupFileBytesMax = 1 << 40
	backupFilesMax     = 1 << 16
	// backupNameBytesMax bounds a file name in a backup.
	backupNameBytesMax = 255
)

// ErrBackupCorrupt marks a backup that is not in cairn's format or whose
// checksum does not match.
var ErrBackupCorrupt = errors.New("node: backup corrupt")

// Backup is a checkpoint ready to stream. Close removes it.
type Backup struct {
	fs    vfs.FS
	dir   string
	files []backupFile
	size  int64
}

type backupFile struct {
	name string
	size int64
}

// Backup checkpoints the member's database for streaming. Safe for
// concurrent use; a snapshot install waits for the checkpoint (not the
// stream).
func (n *Node) Backup() (*Backup, error) {
	fs := n.cfg.FS
	// Checkpoints left by a crash in the middle of a stream go first.
	n.backupsCleared.Do(func() { fs.RemoveAll(fs.PathJoin(n.cfg.Dir, backupDir)) })
	dir := fs.PathJoin(n.cfg.Dir, backupDir, fmt.Sprint(n.backups.Add(1)))
	if err := fs.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := fs.MkdirAll(fs.PathDir(dir), 0o755); err != nil {
		return nil, err
	}
	var err error
	n.view.With(func(s *mvcc.Store) { err = s.Checkpoint(dir) })
	if err != nil {
		return nil, fmt.Errorf("checkpoint for backup: %w", err)
	}
	b := &Backup{fs: fs, dir: dir}
	if err := b.list(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backup) list() error {
	names, err := b.fs.List(b.dir)
	if err != nil {
		return err
	}
	slices.Sort(names)
	size := int64(len(backupMagic))
	for _, name := range names {
		st, err := b.fs.Stat(b.fs.PathJoin(b.dir, name))
		if err != nil {
			return err
		}
		if st.IsDir() {
			continue
		}
		b.files = append(b.files, backupFile{name: name, size: st.Size()})
		size += int64(uvarintLen(uint64(len(name)))+len(name)+uvarintLen(uint64(st.Size()))) + st.Size()
	}
	size += int64(uvarintLen(0))
	b.size = size + padBytes(size) + sha256.Size
	return nil
}

// Size is the stream's length in bytes, checksum included.
func (b *Backup) Size() int64 { return b.size }

// WriteTo streams the backup.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriter(cw)
	bw.WriteString(backupMagic)
	for _, f := range b.files {
		writeUvarint(bw, uint64(len(f.name)))
		bw.WriteString(f.name)
		writeUvarint(bw, uint64(f.size))
		if err := b.copyFile(bw, f); err != nil {
			return cw.n, err
		}
	}
	writeUvarint(bw, 0)
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(make([]byte, padBytes(cw.n))); err != nil {
		return cw.n, err
	}
	n, err := w.Write(h.Sum(nil))
	return cw.n + int64(n), err
}

func (b *Backup) copyFile(w io.Writer, f backupFile) error {
	r, err := b.fs.Open(b.fs.PathJoin(b.dir, f.name))
	if err != nil {
		return err
	}
	defer r.Close()
	copied, err := io.Copy(w, io.LimitReader(r, f.size))
	if err == nil && copied != f.size {
		err = fmt.Errorf("backup file %s: %d bytes, want %d", f.name, copied, f.size)
	}
	return err
}

// Close removes the checkpoint.
func (b *Backup) Close() error { return b.fs.RemoveAll(b.dir) }

// RestoreBackup checks a backup's format and checksum (unless skipHash) and
// writes its files into dir, which must not exist, on fs.
func RestoreBackup(data []byte, fs vfs.FS, dir string, skipHash bool) error {
	if len(data) < len(backupMagic)+sha256.Size || len(data)%backupAlignBytes != sha256.Size {
		return fmt.Errorf("%d bytes: %w", len(data), ErrBackupCorrupt)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !skipHash && !bytes.Equal(got[:], sum) {
		return fmt.Errorf("sha256 mismatch: %w", ErrBackupCorrupt)
	}
	if !bytes.HasPrefix(body, []byte(backupMagic)) {
		return fmt.Errorf("not a cairn backup: %w", ErrBackupCorrupt)
	}
	if _, err := fs.Stat(dir); err == nil {
		return fmt.Errorf("%s already exists", dir)
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := bytes.NewReader(body[len(backupMagic):])
	for range backupFilesMax {
		name, data, err := readBackupFile(r)
		if err != nil {
			return err
		}
		if name == "" {
			return durable.SyncDir(fs, dir)
		}
		if err := durable.WriteFile(fs, fs.PathJoin(dir, name), data); err != nil {
			return err
		}
	}
	return fmt.Errorf("more than %d files: %w", backupFilesMax, ErrBackupCorrupt)
}

// readBackupFile reads one file record; an empty name ends the files.
func readBackupFile(r *bytes.Reader) (string, []byte, error) {
	nameLen, err := binary.ReadUvarint(r)
	if err != nil || nameLen > backupNameBytesMax {
		return "", nil, fmt.Errorf("file name: %w", ErrBackupCorrupt)
	}
	if nameLen == 0 {
		return "", nil, nil
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(r, name); err != nil || bytes.ContainsAny(name, "/\\") || string(name) == ".." || string(name) == "." {
		return "", nil, fmt.Errorf("file name %q: %w", name, ErrBackupCorrupt)
	}
	size, err := binary.ReadUvarint(r)
	if err != nil || size > backupFileBytesMax || size > uint64(r.Len()) {
		return "", nil, fmt.Errorf("file %s size: %w", name, ErrBackupCorrupt)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return "", nil, fmt.Errorf("file %s: %w", name, ErrBackupCorrupt)
	}
	return string(name), data, nil
}

func padBytes(n int64) int64 { return (backupAlignBytes - n%backupAlignBytes) % backupAlignBytes }

func uvarintLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }

func writeUvarint(w *bufio.Writer, v uint64) { w.Write(binary.AppendUvarint(nil, v)) }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restored state: a backup holds the raft state, members and alarms of the
// cluster it came from; a restore keeps only the keyspace and the leases,
// and the member bootstraps a new cluster on them (as etcd's restore
// does), so these are removed.
var restoreDropped = [][2][]byte{
	{[]byte("aa"), []byte("ab")}, // applied index
	{[]byte("ad"), []byte("ae")}, // downgrade
	{alarmPrefix, []byte("am")},  // alarms
	{memberPrefix, []byte("an")}, // members
	{[]byte("r"), []byte("s")},   // raft log, HardState, ConfState
}

// PrepareRestoredDB turns a restored backup's database in dir into one a
// new member bootstraps on: everything but the keyspace and the leases is
// removed.
func PrepareRestoredDB(fs vfs.FS, dir string) error {
	db, err := pebble.Open(dir, offlineOptions(fs))
	if err != nil {
		return fmt.Errorf("open restored database: %w", err)
	}
	b := db.NewBatch()
	for _, span := range restoreDropped {
		if err := b.DeleteRange(span[0], span[1], nil); err != nil {
			b.Close()
			db.Close()
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		db.Close()
		return fmt.Errorf("prepare restored database: %w", err)
	}
	return db.Close()
}

// BackupStatus describes a backup, as etcdutl snapshot status does.
type BackupStatus struct {
	// Hash is the keyspace's HashKV hash at Revision.
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int64  `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	// Version is the storage version, as etcd reports it.
	Version string `json:"version"`
}

// StatBackup checks a backup and describes it. It restores it in memory to
// read it.
func StatBackup(data []byte, skipHash bool) (BackupStatus, error) {
	fs := vfs.NewMem()
	if err := RestoreBackup(data, fs, "db", skipHash); err != nil {
		return BackupStatus{}, err
	}
	db, err := pebble.Open("db", offlineOptions(fs))
	if err != nil {
		return BackupStatus{}, fmt.Errorf("open backup: %w", err)
	}
	defer db.Close()
	s, err := mvcc.Open(db, mvcc.Options{})
	if err != nil {
		return BackupStatus{}, fmt.Errorf("open backup keyspace: %w", err)
	}
	h, err := s.HashByRev(0)
	if err != nil {
		return BackupStatus{}, err
	}
	count, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return BackupStatus{}, err
	}
	return BackupStatus{Hash: h.Hash, Revision: h.Revision, TotalKey: count.GetCount(),
		TotalSize: int64(len(data)), Version: ClusterVersion}, nil
}

// DefragmentOffline compacts the live database of a stopped member whose
// directory (the data directory's member/) is dir, as Defragment does
// online.
func DefragmentOffline(fs vfs.FS, dir string) error {
	live, err := liveDBName(fs, dir)
	if err != nil {
		return err
	}
	path := fs.PathJoin(dir, live)
	if _, err := fs.Stat(path); err != nil {
		return fmt.Errorf("no member database in %s: %w", dir, err)
	}
	db, err := pebble.Open(path, offlineOptions(fs))
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Compact(context.Background(), []byte{0x00}, []byte{0xff}, true); err != nil {
		db.Close()
		return fmt.Errorf("defragment %s: %w", path, err)
	}
	return db.Close()
}

// offlineOptions open a database outside a running member, without
// Pebble's informational log lines. Its tables are split at key regions
// as a member's are: an import writes every region in each batch, and an
// offline defragment rewrites every table.
func offlineOptions(fs vfs.FS) *pebble.Options {
	o := &pebble.Options{FS: fs, Logger: quietPebbleLogger{}}
	splitTablesAtRegions(o)
	return o
}

// quietPebbleLogger drops Pebble's informational and error lines (errors
// also come back as the calls' errors) and fails loudly on a fatal one.
type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any)  {}
func (quietPebbleLogger) Errorf(string, ...any) {}
func (quietPebbleLogger) Fatalf(format string, args ...any) {
	panic(fatalStorageError{fmt.Sprintf(format, args...)})
}
