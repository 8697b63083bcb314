package mvcc

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
)

// Options configures a Store.
type Options struct {
	// LeaseExists reports whether a lease is granted. Nil means no lease
	// exists: every Put with a non-zero lease fails with
	// rpctypes.ErrGRPCLeaseNotFound.
	LeaseExists func(id int64) bool

	// CompactDropsNewestAtTarget is a planted bug for the simulator's
	// checks (node.TestingKnobs.CompactDropsNewestVersion): compaction
	// also removes a key's version made exactly at the compacted revision
	// when the key has a newer one, so a read at the compacted revision
	// misses the key. Never set outside planted-bug tests.
	CompactDropsNewestAtTarget bool

	// ReadCacheKeepsDeleted is a planted bug for the property test and
	// the simulator (node.TestingKnobs.ReadCacheKeepsDeleted): Publish
	// leaves the versions its batch deleted in the read cache, so gets
	// answer from it with a key that no longer exists. Never set outside
	// planted-bug tests.
	ReadCacheKeepsDeleted bool

	// LatestCacheBytes bounds the cache of keys' newest version metadata
	// that spares a put or a delete the read of the version it replaces
	// (latest.go); 0 turns it off.
	LatestCacheBytes int64

	// ReadCacheBytes bounds the cache of newest versions, values included,
	// that serves single-key ranges at the published revision without
	// Pebble (readcache.go); 0 turns it off.
	ReadCacheBytes int64

	// LiveKeySetBytes bounds the set of live keys' fingerprints that tells
	// a put of a key the cache of newest versions misses that the key does
	// not exist (livekeys.go); 0 turns it off, and so does a bound the
	// store's keys outgrow. It needs the cache of newest versions.
	LiveKeySetBytes int64

	// BackgroundFailure, if set, records what Pebble reports failed on
	// its own goroutines: a flush the store waits for gives up then,
	// instead of waiting for ever on Pebble's retries.
	BackgroundFailure *durable.BackgroundFailure

	// plantLatestKeepsAbandoned is a planted bug for the property test:
	// a Writer closed without publishing still enters what it wrote into
	// the cache of newest versions.
	plantLatestKeepsAbandoned bool

	// plantLiveKeysIgnoreWrites is a planted bug for
	// TestLiveKeySetHoldsEveryLiveKey (the property test's histories
	// rarely reach it):
	// the keys Writers create or delete are never entered into the live
	// key set, so a put of a key created since Open that the cache of
	// newest versions no longer holds takes it for a new key.
	plantLiveKeysIgnoreWrites bool

	// chunkBits sets the key chunk size to about 2^chunkBits keys; 0 means
	// defaultChunkBits. Every store of one cluster must use the same, so
	// only tests change it, to make chunks of a few keys.
	chunkBits int
}

// noCompaction is the compacted revision of a store that was never
// compacted. etcd starts at -1 too, so that Compact(0) succeeds once.
const noCompaction = -1

// Store is the MVCC keyspace. See the package documentation for the
// concurrency contract.
type Store struct {
	db   *pebble.DB
	opts Options
	// chunkBits is opts.chunkBits or its default.
	chunkBits int

	// state is the published state: the apply goroutine replaces it in
	// Publish, readers load it without waiting (openView pairs it with a
	// Pebble snapshot). A published state is never modified.
	state atomic.Pointer[publishedState]

	// compaction is the physical removal in progress. Owned by the apply
	// goroutine (Publish, CompactPending, CompactStep); no lock.
	compaction struct {
		pending bool
		target  int64  // remove versions made obsolete by a compaction at target
		cursor  []byte // Pebble key from which the next CompactStep continues
		// recorded is set while an unpublished Writer holds a Compact.
		recorded bool
	}

	// writerActive is set while a Writer exists that has not published.
	// Owned by the apply goroutine.
	writerActive bool

	// latest caches the newest version's metadata of recently used keys,
	// as published (nil when Options.LatestCacheBytes is 0); written is
	// what the unpublished Writer wrote, to enter it at Publish. Both owned
	// by the apply goroutine.
	latest  *latestCache
	written writtenKeys

	// live holds a fingerprint of every key that exists as published; nil
	// when off or outgrown. Owned by the apply goroutine.
	live *liveKeySet

	// reads caches the newest versions that single-key ranges read; nil
	// when Options.ReadCacheBytes is 0. Safe for concurrent use.
	reads *readCache

	// afterStateLoad, if set (tests only), runs in openView between the
	// load of the published state and the Pebble snapshot, where a Publish
	// from the apply goroutine forces the reader to try again.
	afterStateLoad func()
}

// Open opens the keyspace stored in db, recovering the current and the
// compacted revision and any unfinished compaction.
func Open(db *pebble.DB, opts Options) (*Store, error) {
	if db == nil {
		panic("mvcc: Open with nil db")
	}
	s := &Store{db: db, opts: opts, chunkBits: cmp.Or(opts.chunkBits, defaultChunkBits),
		latest: newLatestCache(opts.LatestCacheBytes), reads: newReadCache(opts.ReadCacheBytes)}
	rev, err := readMeta(db, metaRevKey, "rev", 1)
	if err != nil {
		return nil, fmt.Errorf("open mvcc: %w", err)
	}
	compactRev, err := readMeta(db, metaCompactKey, "compact", noCompaction)
	if err != nil {
		return nil, fmt.Errorf("open mvcc: %w", err)
	}
	if rev < 1 || compactRev > rev {
		return nil, fmt.Errorf("open mvcc: inconsistent meta: rev %d, compacted %d", rev, compactRev)
	}
	s.state.Store(&publishedState{rev: rev, compactRev: compactRev})
	if err := s.ensureKeyIndex(); err != nil {
		return nil, fmt.Errorf("open mvcc: %w", err)
	}
	if err := s.recoverCompaction(); err != nil {
		return nil, fmt.Errorf("open mvcc: %w", err)
	}
	if err := s.loadLiveKeys(); err != nil {
		return nil, fmt.Errorf("open mvcc: %w", err)
	}
	return s, nil
}

func (s *Store) recoverCompaction() error {
	cursor, found, err := getCopy(s.db, metaCursorKey)
	if err != nil || !found {
		return err
	}
	s.compaction.pending = true
	s.compaction.target = s.state.Load().compactRev
	s.compaction.cursor = cursor
	if len(cursor) == 0 {
		s.compaction.cursor = versionsStart
	}
	return nil
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getCopy reads one key, copying the value out of Pebble's buffer.
func getCopy(g getter, key []byte) (value []byte, found bool, err error) {
	v, closer, err := g.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %q: %w", key, err)
	}
	value = append([]byte{}, v...)
	return value, true, closer.Close()
}

func readMeta(g getter, key []byte, name string, missing int64) (int64, error) {
	v, found, err := getCopy(g, key)
	if err != nil || !found {
		return missing, err
	}
	return decodeInt64(name, v)
}

// Metrics are the Pebble metrics of the store's database. Safe for
// concurrent use.
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

// Rev returns the current (published) revision. Safe for concurrent use.
func (s *Store) Rev() int64 { return s.state.Load().rev }

// CompactRev returns the last compacted revision, 0 if none. Safe for
// concurrent use.
func (s *Store) CompactRev() int64 { return max(s.state.Load().compactRev, 0) }

// publishedState is what Publish makes visible to readers.
type publishedState struct {
	// rev is the current revision. Invariant: rev >= 1.
	rev int64
	// compactRev is the compacted revision, noCompaction if none.
	// Invariant: compactRev <= rev.
	compactRev int64
}

// readView is a consistent read-only view: a Pebble snapshot and the
// published revisions it was taken with.
type readView struct {
	snap       *pebble.Snapshot
	rev        int64
	compactRev int64
	chunkBits  int
}

// openView takes a snapshot together with the published revisions, for a
// reader that opens several iterators on one view (one request's reads
// use openSource). Every
// write of a published revision is committed before Publish, so a snapshot
// taken after loading the state holds it; a compaction's removals start
// only after its Publish, so if the state is still the same once the
// snapshot is taken, the snapshot holds every version a read at rev >=
// compactRev needs. If a Publish came in between, it tries again: Publish
// runs at most once per applied batch, so a retry is rare and the next
// try almost always succeeds.
func (s *Store) openView() readView {
	for {
		st := s.state.Load()
		if s.afterStateLoad != nil {
			s.afterStateLoad()
		}
		snap := s.db.NewSnapshot()
		if s.state.Load() == st {
			return readView{snap: snap, rev: st.rev, compactRev: st.compactRev, chunkBits: s.chunkBits}
		}
		_ = snap.Close() // closing an unused snapshot of an open DB cannot fail
	}
}

// openSource opens one iterator over the published state, for the reads
// of one request, with the revisions it was opened at. A Pebble iterator
// is itself a point-in-time view (it pins the sequence number and the
// files it reads at its creation), so a request read through one iterator
// needs no snapshot: taking and closing one costs two acquisitions of
// Pebble's DB mutex per read, and closing the oldest snapshot also makes
// Pebble look for compactions to schedule. The state is paired with the
// iterator as openView pairs it with a snapshot: loaded before, checked
// unchanged after, else tried again.
func (s *Store) openSource() (*source, *publishedState, error) {
	for {
		st := s.state.Load()
		if s.afterStateLoad != nil {
			s.afterStateLoad()
		}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
		if err != nil {
			return nil, nil, fmt.Errorf("open iterator: %w", err)
		}
		if s.state.Load() == st {
			src := newSource(it, false, s.chunkBits)
			src.reads = s.reads
			return src, st, nil
		}
		_ = it.Close() // an unused iterator over an open DB has no error to report
	}
}

// closeSource closes src and reports its error into *err unless one is
// there already.
func closeSource(src *source, err *error) {
	if cerr := src.close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close iterator: %w", cerr)
	}
}

func (v readView) close() {
	if err := v.snap.Close(); err != nil {
		panic(fmt.Sprintf("mvcc: close snapshot: %v", err))
	}
}

// LatestCacheBytes is what the cache of newest versions holds, by its own
// accounting; its bound is Options.LatestCacheBytes. Owned by the apply
// goroutine, like Writers.
func (s *Store) LatestCacheBytes() int64 { return s.latest.heldBytes() }

// LiveKeySetBytes is what the live key set's table takes; its bound is
// Options.LiveKeySetBytes. 0 without a set. Owned by the apply goroutine.
func (s *Store) LiveKeySetBytes() int64 {
	if s.live == nil {
		return 0
	}
	return 4 * int64(len(s.live.slots))
}

// ReadCacheBytes is what the cache of versions single-key ranges read
// holds; its bound is Options.ReadCacheBytes. Safe for concurrent use.
func (s *Store) ReadCacheBytes() int64 { return s.reads.heldBytes() }
