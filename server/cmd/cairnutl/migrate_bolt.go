package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"
)

// An etcd database is a bbolt file: `etcdctl snapshot save` writes one
// followed by its SHA-256 (the file is then 512k+32 bytes long), and a
// member keeps its own, without the hash, in member/snap/db. The facts of
// its layout this reader relies on (etcd 3.x, unchanged through 3.7):
//
//	bucket "key":   revision (8 bytes BE main, '_', 8 bytes BE sub, and a
//	                't' for a tombstone) -> mvccpb.KeyValue, in revision
//	                order: every change since the last compaction, and per
//	                key the newest version at or below it
//	bucket "meta":  "finishedCompactRev", "scheduledCompactRev" -> a
//	                revision as above (the compaction's main revision)
//	bucket "lease": lease ID (8 bytes BE) -> leasepb.Lease{ID, TTL, ...}
//
// Everything else (members, alarms, auth, the raft term and index) belongs
// to the cluster the file came from and is not carried.
var (
	boltKeyBucket        = []byte("key")
	boltMetaBucket       = []byte("meta")
	boltLeaseBucket      = []byte("lease")
	boltFinishedCompact  = []byte("finishedCompactRev")
	boltScheduledCompact = []byte("scheduledCompactRev")
)

const (
	// boltRevisionBytes is the length of a revision key without its mark.
	boltRevisionBytes     = 17
	boltTombstoneMark     = 't'
	boltRevisionSeparator = '_'

	// boltHashAlignBytes: a snapshot with a hash is a multiple of it plus
	// the hash (etcdutl's test for one).
	boltHashAlignBytes = 512
	// boltLockTimeout bounds the wait for a database a running etcd holds.
	boltLockTimeout = 2 * time.Second
	// cairnBackupMagic starts a cairn backup, which migrate refuses.
	cairnBackupMagic = "cairn-backup-v1\n"
)

// boltSource reads an etcd database file.
type boltSource struct {
	path          string
	skipHashCheck bool
}

func (s *boltSource) describe() string { return "etcd database " + s.path }

func (s *boltSource) importInto(im *node.Importer) (rev, compactRev int64, err error) {
	path, cleanup, err := s.databaseFile()
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true, Timeout: boltLockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("%s is locked: stop the etcd member that uses it, or migrate from `etcdctl snapshot save`", s.path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", s.path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		rev, compactRev, err = importBolt(tx, im)
		return err
	})
	return rev, compactRev, err
}

// databaseFile returns the path of the bbolt file to open: the file itself,
// or for a snapshot with a hash a temporary copy without it, once the hash
// is checked. cleanup removes the copy.
func (s *boltSource) databaseFile() (path string, cleanup func(), err error) {
	f, err := os.Open(s.path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	head := make([]byte, len(cairnBackupMagic))
	if _, err := io.ReadFull(f, head); err == nil && string(head) == cairnBackupMagic {
		return "", nil, fmt.Errorf("%s is a cairn backup: restore it with `cairnutl snapshot restore`", s.path)
	}
	size := st.Size()
	if size%boltHashAlignBytes != sha256.Size {
		return s.path, func() {}, nil
	}
	return copyWithoutHash(f, size, s.skipHashCheck)
}

// copyWithoutHash copies a snapshot's database, all but its last 32 bytes,
// into a temporary file, and checks those bytes are its SHA-256.
func copyWithoutHash(f *os.File, size int64, skipHashCheck bool) (path string, cleanup func(), err error) {
	tmp, err := os.CreateTemp(filepath.Dir(f.Name()), ".cairnutl-migrate-*.db")
	if err != nil {
		tmp, err = os.CreateTemp("", "cairnutl-migrate-*.db")
	}
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.Remove(tmp.Name()) }
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		cleanup()
		return "", nil, err
	}
	_, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(f, size-sha256.Size))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	sum := make([]byte, sha256.Size)
	if err == nil {
		_, err = io.ReadFull(f, sum)
	}
	if err == nil && !skipHashCheck && !bytes.Equal(sum, h.Sum(nil)) {
		err = fmt.Errorf("snapshot %s: sha256 mismatch (use --skip-hash-check to load it anyway)", f.Name())
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}

// importBolt imports the leases and every change of the "key" bucket, in
// revision order, and returns the last revision and the compacted one.
func importBolt(tx *bbolt.Tx, im *node.Importer) (rev, compactRev int64, err error) {
	keys, meta := tx.Bucket(boltKeyBucket), tx.Bucket(boltMetaBucket)
	if keys == nil || meta == nil {
		return 0, 0, errors.New("not an etcd database: no \"key\" or \"meta\" bucket")
	}
	if err := importBoltLeases(tx.Bucket(boltLeaseBucket), im); err != nil {
		return 0, 0, err
	}
	rev = 1
	c := keys.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		main, sub, ev, err := decodeBoltChange(k, v)
		if err != nil {
			return 0, 0, err
		}
		if err := im.Change(main, sub, ev); err != nil {
			return 0, 0, err
		}
		rev = main
	}
	compactRev = -1
	for _, name := range [][]byte{boltFinishedCompact, boltScheduledCompact} {
		if v := meta.Get(name); v != nil {
			r, err := decodeBoltRevision(v)
			if err != nil {
				return 0, 0, fmt.Errorf("meta %s: %w", name, err)
			}
			// A scheduled compaction beyond the finished one was
			// interrupted; etcd resumes it when it starts.
			compactRev = max(compactRev, r)
		}
	}
	return rev, compactRev, nil
}

func importBoltLeases(b *bbolt.Bucket, im *node.Importer) error {
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var l leasepb.Lease
		if err := proto.Unmarshal(v, &l); err != nil || len(k) != 8 || int64(binary.BigEndian.Uint64(k)) != l.ID {
			return fmt.Errorf("lease record %x: not etcd's (%v)", k, err)
		}
		return im.Lease(l.ID, l.TTL)
	})
}

// decodeBoltChange decodes one entry of the "key" bucket.
func decodeBoltChange(k, v []byte) (main, sub int64, ev *mvccpb.Event, err error) {
	main, err = decodeBoltRevision(k)
	if err != nil {
		return 0, 0, nil, err
	}
	sub = int64(binary.BigEndian.Uint64(k[9:boltRevisionBytes]))
	kv := &mvccpb.KeyValue{}
	if err := proto.Unmarshal(v, kv); err != nil {
		return 0, 0, nil, fmt.Errorf("revision %d.%d: %w", main, sub, err)
	}
	if len(k) == boltRevisionBytes+1 {
		return main, sub, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: kv}, nil
	}
	if kv.ModRevision != main {
		return 0, 0, nil, fmt.Errorf("revision %d.%d holds key %q with mod_revision %d: %w",
			main, sub, kv.Key, kv.ModRevision, errNotEtcd)
	}
	return main, sub, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}, nil
}

var errNotEtcd = errors.New("not an etcd database")

// decodeBoltRevision decodes the main part of a revision key, with or
// without its tombstone mark.
func decodeBoltRevision(k []byte) (int64, error) {
	switch {
	case len(k) == boltRevisionBytes && k[8] == boltRevisionSeparator:
	case len(k) == boltRevisionBytes+1 && k[8] == boltRevisionSeparator && k[boltRevisionBytes] == boltTombstoneMark:
	default:
		return 0, fmt.Errorf("revision key %x: %w", k, errNotEtcd)
	}
	return int64(binary.BigEndian.Uint64(k[:8])), nil
}
