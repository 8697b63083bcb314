package mvcc

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The benchmarks model `benchmark put` against one member: a store with
// benchKeys keys of benchValueBytes-byte values on a real disk, opened with
// the node's Pebble options, and writes applied benchWriterRequests to a
// Writer, as the node applies one raft Ready. Write benchmarks count one
// request per op, with the batch commit and Publish amortised over the
// Writer's requests.
const (
	benchKeys           = 100_000
	benchValueBytes     = 256
	benchWriterRequests = 100
	benchCacheBytes     = 128 << 20 // node.Config.CacheBytes default
	benchMemTableBytes  = 64 << 20  // node.Config.MemTableBytes default
)

type benchStore struct {
	b     *testing.B
	db    *pebble.DB
	s     *Store
	value []byte
	// modRev holds each key's mod_revision, 0 once deleted.
	modRev []int64

	batch    *pebble.Batch
	w        *Writer
	requests int
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "key/%06d", i) }

// cpuMeter reports the process's CPU time per op as cpu-ns/op: user and
// system time of every goroutine, Pebble's flushes and compactions
// included. On a shared machine wall time per op swings with whatever else
// runs; CPU time much less, so it is the figure to compare.
type cpuMeter struct{ start time.Duration }

func startCPU(b *testing.B) cpuMeter { return cpuMeter{start: processCPU(b)} }

func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64((processCPU(b)-m.start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newBenchStore opens a store in a temporary directory and loads benchKeys
// keys, then flushes them so that reads go through sstables as well as the
// memtable.
func newBenchStore(b *testing.B) *benchStore {
	b.Helper()
	return newBenchStoreWith(b, Options{})
}

// newBenchStoreWith is newBenchStore with the store's options.
func newBenchStoreWith(b *testing.B, opts Options) *benchStore {
	b.Helper()
	bs := openBenchStore(b, opts)
	bs.loadAll()
	if err := bs.db.Flush(); err != nil {
		b.Fatal(err)
	}
	return bs
}

// openBenchStore opens an empty store in a temporary directory.
func openBenchStore(b *testing.B, opts Options) *benchStore {
	b.Helper()
	cache := pebble.NewCache(benchCacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: benchMemTableBytes})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := Open(db, opts)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, benchValueBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	return &benchStore{b: b, db: db, s: s, value: value, modRev: make([]int64, benchKeys)}
}

// loadAll puts every key that does not exist.
func (bs *benchStore) loadAll() {
	for i := range benchKeys {
		if bs.modRev[i] == 0 {
			bs.put(i)
		}
	}
	bs.commit()
}

func (bs *benchStore) writer() *Writer {
	if bs.w == nil {
		bs.batch = bs.db.NewIndexedBatch()
		bs.w = bs.s.NewWriter(bs.batch)
	}
	return bs.w
}

// done counts a request and commits the Writer after benchWriterRequests.
func (bs *benchStore) done() {
	bs.requests++
	if bs.requests == benchWriterRequests {
		bs.commit()
	}
}

func (bs *benchStore) commit() {
	if bs.w == nil {
		return
	}
	if err := bs.w.Flush(); err != nil {
		bs.b.Fatal(err)
	}
	if err := bs.batch.Commit(pebble.NoSync); err != nil {
		bs.b.Fatal(err)
	}
	bs.w.Publish()
	if err := bs.batch.Close(); err != nil {
		bs.b.Fatal(err)
	}
	bs.batch, bs.w, bs.requests = nil, nil, 0
}

func (bs *benchStore) put(i int) {
	resp, err := bs.writer().Put(&pb.PutRequest{Key: benchKey(i), Value: bs.value})
	if err != nil {
		bs.b.Fatal(err)
	}
	bs.modRev[i] = resp.Header.Revision
	bs.done()
}

func BenchmarkWriterPut(b *testing.B) {
	b.Run("random", func(b *testing.B) {
		bs := newBenchStore(b)
		rng := rand.New(rand.NewPCG(3, 4))
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			bs.put(rng.IntN(benchKeys))
		}
		cpu.report(b)
		bs.commit()
	})
	b.Run("sequential", func(b *testing.B) {
		bs := newBenchStore(b)
		b.ReportAllocs()
		cpu := startCPU(b)
		i := 0
		for b.Loop() {
			bs.put(i % benchKeys)
			i++
		}
		cpu.report(b)
		bs.commit()
	})
	// create puts keys that do not exist yet, at random among the existing
	// ones: the key index and its chunks are written.
	b.Run("create", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		benchPutNew(b, Options{}, func(int) []byte { return fmt.Appendf(nil, "key/%06d/%d", rng.IntN(benchKeys), rng.Uint64()) })
	})
	// create-cached and create-livekeys are create with the node's caches
	// (whose misses, for new keys, read the key index), and with the
	// node's caches and its live key set (which answers those misses).
	b.Run("create-cached", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		opts := Options{LatestCacheBytes: benchLatestCacheBytes, ReadCacheBytes: benchReadCacheBytes}
		benchPutNew(b, opts, func(int) []byte { return fmt.Appendf(nil, "key/%06d/%d", rng.IntN(benchKeys), rng.Uint64()) })
	})
	b.Run("create-livekeys", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(5, 6))
		opts := Options{LatestCacheBytes: benchLatestCacheBytes, ReadCacheBytes: benchReadCacheBytes, LiveKeySetBytes: benchLiveKeySetBytes}
		benchPutNew(b, opts, func(int) []byte { return fmt.Appendf(nil, "key/%06d/%d", rng.IntN(benchKeys), rng.Uint64()) })
	})
	// load puts new keys in key order after the existing ones, as a bulk
	// load or a restore does: each lands in the key index chunk of the key
	// before it.
	b.Run("load", func(b *testing.B) {
		benchPutNew(b, Options{}, func(i int) []byte { return fmt.Appendf(nil, "load/%012d", i) })
	})
}

// benchPutNew puts the keys keyOf(0), keyOf(1)... which do not exist yet.
func benchPutNew(b *testing.B, opts Options, keyOf func(i int) []byte) {
	bs := newBenchStoreWith(b, opts)
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; b.Loop(); i++ {
		resp, err := bs.writer().Put(&pb.PutRequest{Key: keyOf(i), Value: bs.value})
		if err != nil || resp.Header.Revision == 0 {
			b.Fatal(resp, err)
		}
		bs.done()
	}
	cpu.report(b)
	bs.commit()
}

func BenchmarkRange(b *testing.B) {
	b.Run("hit", func(b *testing.B) {
		bs := newBenchStore(b)
		rng := rand.New(rand.NewPCG(5, 6))
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			resp, err := bs.s.Range(&pb.RangeRequest{Key: benchKey(rng.IntN(benchKeys))})
			if err != nil || len(resp.Kvs) != 1 {
				b.Fatal(resp, err)
			}
		}
		cpu.report(b)
	})
	// cached: reads of 10,000 keys (cairnctl bench range's key count),
	// written again through a store with the node's default read cache,
	// which then holds them all.
	b.Run("cached", func(b *testing.B) {
		bs := newBenchStore(b)
		s, err := Open(bs.db, Options{ReadCacheBytes: benchReadCacheBytes})
		if err != nil {
			b.Fatal(err)
		}
		bs.s = s
		const keys = 10_000
		for i := range keys {
			bs.put(i)
		}
		bs.commit()
		rng := rand.New(rand.NewPCG(5, 6))
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			resp, err := s.Range(&pb.RangeRequest{Key: benchKey(rng.IntN(keys))})
			if err != nil || len(resp.Kvs) != 1 {
				b.Fatal(resp, err)
			}
		}
		cpu.report(b)
		if s.reads.hits.Load() == 0 {
			b.Fatal("no read was answered from the cache")
		}
	})
	b.Run("miss", func(b *testing.B) {
		bs := newBenchStore(b)
		rng := rand.New(rand.NewPCG(7, 8))
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			key := fmt.Appendf(nil, "key/%06dx", rng.IntN(benchKeys))
			resp, err := bs.s.Range(&pb.RangeRequest{Key: key})
			if err != nil || len(resp.Kvs) != 0 {
				b.Fatal(resp, err)
			}
		}
		cpu.report(b)
	})
}

// BenchmarkRangePrefixLimit lists 100 keys of a prefix that holds 1000 (a
// Kubernetes-style paginated list): the count covers all 1000.
func BenchmarkRangePrefixLimit(b *testing.B) {
	bs := newBenchStore(b)
	rng := rand.New(rand.NewPCG(9, 10))
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		prefix := fmt.Appendf(nil, "key/%03d", rng.IntN(benchKeys/1000))
		end := append([]byte(nil), prefix...)
		end[len(end)-1]++
		resp, err := bs.s.Range(&pb.RangeRequest{Key: prefix, RangeEnd: end, Limit: 100})
		if err != nil || len(resp.Kvs) != 100 || resp.Count != 1000 || !resp.More {
			b.Fatal(len(resp.Kvs), resp.Count, err)
		}
	}
	cpu.report(b)
}

// BenchmarkWriterTxnCAS runs compare-and-swap txns: put if mod_revision is
// still the one last written, which always holds.
func BenchmarkWriterTxnCAS(b *testing.B) {
	bs := newBenchStore(b)
	rng := rand.New(rand.NewPCG(11, 12))
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		i := rng.IntN(benchKeys)
		key := benchKey(i)
		resp, err := bs.writer().Txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: key, Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: bs.modRev[i]}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: bs.value}}}},
		})
		if err != nil || !resp.Succeeded {
			b.Fatal(resp, err)
		}
		bs.modRev[i] = resp.Header.Revision
		bs.done()
	}
	cpu.report(b)
	bs.commit()
}

// BenchmarkWriterDeleteRange deletes existing keys one at a time, in
// random order; the keys are put back, untimed, when all are gone.
func BenchmarkWriterDeleteRange(b *testing.B) {
	bs := newBenchStore(b)
	rng := rand.New(rand.NewPCG(13, 14))
	order := rng.Perm(benchKeys)
	b.ReportAllocs()
	cpu := startCPU(b)
	n := 0
	for b.Loop() {
		if n == len(order) {
			b.StopTimer()
			bs.loadAll()
			n = 0
			b.StartTimer()
		}
		i := order[n]
		n++
		resp, err := bs.writer().DeleteRange(&pb.DeleteRangeRequest{Key: benchKey(i)})
		if err != nil || resp.Deleted != 1 {
			b.Fatal(resp, err)
		}
		bs.modRev[i] = 0
		bs.done()
	}
	cpu.report(b)
	bs.commit()
}

// BenchmarkRangeCountAll reads a page of 100 keys from a random key to the
// end of the keyspace: the count covers half the store on average, as the
// `scan-l` workload of `make bench` does. flushed: the keys were loaded in
// order and flushed. memtable: they were created in random order, 100 per
// Writer, and are all still in the memtable, as right after the preload of
// `scan-l`: every key index chunk was rewritten there once per Writer that
// created a key in it, and the count steps over all those versions.
func BenchmarkRangeCountAll(b *testing.B) {
	b.Run("flushed", func(b *testing.B) { benchmarkRangeCountAll(b, newBenchStore(b)) })
	b.Run("memtable", func(b *testing.B) {
		bs := openBenchStore(b, Options{})
		for _, i := range rand.New(rand.NewPCG(15, 16)).Perm(benchKeys) {
			bs.put(i)
		}
		bs.commit()
		benchmarkRangeCountAll(b, bs)
	})
}

func benchmarkRangeCountAll(b *testing.B, bs *benchStore) {
	rng := rand.New(rand.NewPCG(13, 14))
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		from := rng.IntN(benchKeys - 100)
		resp, err := bs.s.Range(&pb.RangeRequest{Key: benchKey(from), RangeEnd: []byte("key0"), Limit: 100})
		if err != nil || len(resp.Kvs) != 100 || resp.Count != int64(benchKeys-from) {
			b.Fatal(len(resp.Kvs), resp.Count, err)
		}
	}
	cpu.report(b)
}

// overwriteValueSizes are the value sizes BenchmarkWriterPutOverwrite puts:
// etcd's default benchmark value, a large Kubernetes object, and etcd's
// default request size limit.
var overwriteValueSizes = []struct {
	name  string
	bytes int
}{{"256B", 256}, {"100KiB", 100 << 10}, {"1MiB", 1 << 20}}

// overwriteBatchBytesMax bounds the values one Writer of
// BenchmarkWriterPutOverwrite holds before it commits, so that 1 MiB
// values do not make 100 MiB batches.
const overwriteBatchBytesMax = 1 << 20

// BenchmarkWriterPutOverwrite puts over existing keys without prev_kv, as
// `benchmark put` with a small key space does: each put replaces a version
// of the same size. memtable: the version replaced was committed a few puts
// before and is still in the memtable. sstable: every key's version was
// flushed to an sstable before it is replaced (the flushes are not timed,
// but their CPU is in cpu-ns/op). blob: sstable, with values of 4 KiB and
// more in blob files as the node stores them (node.Config.
// SeparatedValueBytesMin). cached: with the cache of newest versions on
// (the node's default bound), so that the put reads nothing from Pebble
// and where the replaced version is does not matter (memtable, without
// the flushes); the others run without it. B/op shows what a put
// allocates: the batch's copy of the new value, and whatever reading the
// old version costs.
func BenchmarkWriterPutOverwrite(b *testing.B) {
	for _, size := range overwriteValueSizes {
		for _, where := range []string{"memtable", "sstable", "blob", "cached", "readcache"} {
			if where == "blob" && size.bytes < benchSeparatedValueBytesMin {
				continue
			}
			b.Run(size.name+"/"+where, func(b *testing.B) {
				var opts Options
				if where == "cached" || where == "readcache" {
					opts.LatestCacheBytes = benchLatestCacheBytes
				}
				if where == "readcache" {
					opts.ReadCacheBytes = benchReadCacheBytes
				}
				flushed := where == "sstable" || where == "blob"
				benchPutOverwrite(b, size.bytes, flushed, where == "blob", opts)
			})
		}
	}
}

// benchLatestCacheBytes is the node's default bound of the cache of newest
// versions (node.Config.LatestVersionCacheBytes).
const benchLatestCacheBytes = 8 << 20

// benchLiveKeySetBytes is the node's default bound of the live key set
// (node.Config.LiveKeySetBytes).
const benchLiveKeySetBytes = 4 << 20

// benchReadCacheBytes is the node's default bound of the read cache
// (node.Config.ReadCacheBytes).
const benchReadCacheBytes = 8 << 20

// benchSeparatedValueBytesMin and the blob policy below are the node's
// (node/values.go), which this package cannot import.
const benchSeparatedValueBytesMin = 256

func separateBenchValues(o *pebble.Options) {
	o.FormatMajorVersion = pebble.FormatValueSeparation
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: benchSeparatedValueBytesMin,
			MaxBlobReferenceDepth: 200, RewriteMinimumAge: time.Minute, TargetGarbageRatio: 0.3}
	}
}

func benchPutOverwrite(b *testing.B, valueBytes int, flushed, separated bool, storeOpts Options) {
	cache := pebble.NewCache(benchCacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: benchMemTableBytes}
	if separated {
		separateBenchValues(opts)
	}
	db, err := pebble.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db, storeOpts)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, valueBytes)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	perCommit := max(1, min(benchWriterRequests, overwriteBatchBytesMax/valueBytes))
	// keys cycle so that a key's previous version is never in the Writer's
	// own batch, and the memtable holds them all.
	keys := max(perCommit, 8)
	bs := &benchStore{b: b, db: db, s: s, value: value}
	putKey := func(i int) {
		if _, err := bs.writer().Put(&pb.PutRequest{Key: benchKey(i), Value: value}); err != nil {
			b.Fatal(err)
		}
		bs.requests++
		if bs.requests == perCommit {
			bs.commit()
		}
	}
	for i := range keys {
		putKey(i)
	}
	bs.commit()
	b.ReportAllocs()
	b.SetBytes(int64(valueBytes))
	cpu := startCPU(b)
	i := 0
	for b.Loop() {
		if flushed && i%keys == 0 {
			b.StopTimer()
			bs.commit()
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		putKey(i % keys)
		i++
	}
	cpu.report(b)
	bs.commit()
}
