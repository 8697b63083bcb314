package node

import (
	"encoding/binary"
	"fmt"

	"github.com/cairn-db/cairn/node/lease"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Bounds of an import.
const (
	// importBatchBytesMax bounds the changes an Importer holds in memory:
	// its batch is committed once it is this large.
	importBatchBytesMax = 16 << 20
	// importCompactKeysPerStep bounds the keys one step of the final
	// physical compaction visits.
	importCompactKeysPerStep = 4096
)

// Importer writes a keyspace and leases taken from another etcd store
// (cairnutl migrate) into a new member database, which a member then
// bootstraps on like a restored backup. Changes go in through
// mvcc.Writer.Import, in revision order, into batches of at most
// importBatchBytesMax; leases as lease records like applied grants.
// Not safe for concurrent use.
type Importer struct {
	db    *pebble.DB
	store *mvcc.Store
	batch *pebble.Batch
	w     *mvcc.Writer
	stats ImportStats
}

// ImportStats counts what an import wrote.
type ImportStats struct {
	// Puts and Deletes are the versions and tombstones written.
	Puts, Deletes int64
	// SkippedDeletes are deletes of keys the import never saw (see
	// mvcc.Writer.Import).
	SkippedDeletes int64
	Leases         int64
	// Revision and CompactRevision are the store's at the end (-1: never
	// compacted).
	Revision, CompactRevision int64
}

// NewImporter creates the database directory dir on fs, which must not
// exist.
func NewImporter(fs vfs.FS, dir string) (*Importer, error) {
	if _, err := fs.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s already exists", dir)
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, offlineOptions(fs))
	if err != nil {
		return nil, fmt.Errorf("open database for import: %w", err)
	}
	store, err := mvcc.Open(db, mvcc.Options{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open keyspace for import: %w", err)
	}
	return &Importer{db: db, store: store, stats: ImportStats{Revision: 1, CompactRevision: -1}}, nil
}

// writer returns the Writer of the open batch, opening one if needed.
func (im *Importer) writer() *mvcc.Writer {
	if im.w == nil {
		im.batch = im.db.NewIndexedBatch()
		im.w = im.store.NewWriter(im.batch)
	}
	return im.w
}

// Change imports one change of the source at revision (main, sub); see
// mvcc.Writer.Import.
func (im *Importer) Change(main, sub int64, ev *mvccpb.Event) error {
	skipped, err := im.writer().Import(main, sub, ev)
	if err != nil {
		return err
	}
	switch {
	case skipped:
		im.stats.SkippedDeletes++
	case ev.GetType() == mvccpb.Event_PUT:
		im.stats.Puts++
	default:
		im.stats.Deletes++
	}
	if im.batch.Len() >= importBatchBytesMax {
		return im.commit(pebble.NoSync)
	}
	return nil
}

// Lease records a lease granted with ttlSeconds, as an applied grant
// records it. The lease gets its full TTL when the member first leads.
func (im *Importer) Lease(id, ttlSeconds int64) error {
	if id == 0 || ttlSeconds < 1 || ttlSeconds > lease.MaxTTLSeconds {
		return fmt.Errorf("lease %x with TTL %d s: not a lease etcd grants", id, ttlSeconds)
	}
	im.writer()
	if err := im.batch.Set(leaseRecordKey(id), binary.BigEndian.AppendUint64(nil, uint64(ttlSeconds)), nil); err != nil {
		return fmt.Errorf("record lease %x: %w", id, err)
	}
	im.stats.Leases++
	return nil
}

func (im *Importer) commit(opts *pebble.WriteOptions) error {
	if im.w == nil {
		return nil
	}
	w, b := im.w, im.batch
	im.w, im.batch = nil, nil
	defer b.Close()
	defer w.Close()
	if err := w.Flush(); err != nil {
		return fmt.Errorf("flush import batch: %w", err)
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("commit import batch: %w", err)
	}
	w.Publish()
	return nil
}

// Finish moves the store to revision rev, compacts it at compactRev (none
// if negative) and removes the versions the compaction makes obsolete,
// syncs and closes the database. The revision is at least the last
// change's and the compacted one, as etcd restores it: a compaction may
// have removed every version of the newest revisions.
func (im *Importer) Finish(rev, compactRev int64) (ImportStats, error) {
	w := im.writer()
	if err := w.ImportRevision(max(rev, compactRev, w.Rev())); err != nil {
		im.Close()
		return ImportStats{}, err
	}
	if compactRev >= 0 {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: compactRev}); err != nil {
			im.Close()
			return ImportStats{}, fmt.Errorf("compact imported keyspace at %d: %w", compactRev, err)
		}
	}
	if err := im.commit(pebble.Sync); err != nil {
		im.Close()
		return ImportStats{}, err
	}
	if err := im.compactAll(); err != nil {
		im.Close()
		return ImportStats{}, err
	}
	im.stats.Revision, im.stats.CompactRevision = im.store.Rev(), im.store.CompactRev()
	if compactRev < 0 {
		im.stats.CompactRevision = -1
	}
	if err := im.db.Close(); err != nil {
		return ImportStats{}, fmt.Errorf("close imported database: %w", err)
	}
	return im.stats, nil
}

// compactAll runs the physical compaction to its end: each step moves its
// cursor forward over the keyspace, so the loop ends after about
// keys/importCompactKeysPerStep steps.
func (im *Importer) compactAll() error {
	for {
		b := im.db.NewBatch()
		done, err := im.store.CompactStep(b, importCompactKeysPerStep)
		if err == nil {
			err = b.Commit(pebble.Sync)
		}
		b.Close()
		if err != nil || done {
			return err
		}
	}
}

// Close abandons an unfinished import; the caller removes the directory.
func (im *Importer) Close() {
	if im.w != nil {
		im.w.Close()
		im.batch.Close()
		im.w, im.batch = nil, nil
	}
	im.db.Close()
}
