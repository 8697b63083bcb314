package mvcc

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// source is where reads come from: one Pebble iterator, over a
// point-in-time view of the DB for readers, or over the Writer's indexed
// batch for the apply loop. Every read repositions it with new bounds
// instead of opening an iterator: opening one costs about as much as the
// seek itself. A batch iterator's view is refreshed on every read, so a
// read observes every write made to the batch before it.
type source struct {
	it *pebble.Iterator
	// batch is set when it iterates over an indexed batch.
	batch bool
	// inUse is set while a read positions it. Reads do not nest: a visit
	// callback must not read.
	inUse bool
	// keys are two scratch buffers for bounds and seek keys, used in turn:
	// Pebble requires the bounds passed to one SetBounds or SetOptions to
	// stay unchanged until the next call returns.
	keys [2][]byte
	next int
	// chunkBits is the store's key chunk size (keychunks.go).
	chunkBits int
	// reads is the store's read cache, for a reader's source (nil for the
	// Writer's, whose batch may hold newer versions).
	reads *readCache
	// ent is the entry a scan hands to its visit callback, reused for
	// every key (an entry is valid only during the call): a fresh one per
	// key was an allocation per key read.
	ent entry
}

func newSource(it *pebble.Iterator, batch bool, chunkBits int) *source {
	return &source{it: it, batch: batch, chunkBits: chunkBits}
}

// scratch returns an empty buffer for the bounds and seek keys of one read;
// keep returns it, grown, for reuse.
func (s *source) scratch() []byte {
	s.next = 1 - s.next
	return s.keys[s.next][:0]
}

func (s *source) keep(buf []byte) { s.keys[s.next] = buf }

// acquire sets the iterator's bounds to [lower, upper) and hands it to one
// read, which must call release when done with it.
func (s *source) acquire(lower, upper []byte) *pebble.Iterator {
	if s.inUse {
		panic("mvcc: nested read on one source")
	}
	s.inUse = true
	if s.batch {
		// SetOptions, unlike SetBounds, also refreshes the view of the batch.
		s.it.SetOptions(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	} else {
		s.it.SetBounds(lower, upper)
	}
	return s.it
}

func (s *source) release() { s.inUse = false }

func (s *source) close() error {
	if s.inUse {
		panic("mvcc: source closed during a read")
	}
	return s.it.Close()
}

// getLatest returns the newest version of key at or below atRev, or nil if
// the key does not exist at atRev. The key-value's Key is key itself.
func getLatest(src *source, key []byte, atRev int64) (*mvccpb.KeyValue, error) {
	v, found, err := seekLatest(src, key, atRev)
	if !found || err != nil {
		return nil, err
	}
	return decodeValue(key, v), nil
}

// getLatestMeta is getLatest for the version's metadata only: it neither
// allocates nor copies the value.
func getLatestMeta(src *source, key []byte, atRev int64) (versionMeta, error) {
	v, found, err := seekLatest(src, key, atRev)
	if !found || err != nil {
		return versionMeta{}, err
	}
	return decodeMeta(key, v), nil
}

// seekLatest returns the stored value of the newest version of key at or
// below atRev (a tombstone's too); found is false if there is none. The
// value is Pebble's, not a copy: it is valid until src's next read.
func seekLatest(src *source, key []byte, atRev int64) (v []byte, found bool, err error) {
	buf := src.scratch()
	buf = appendPrefix(buf, key)
	n := len(buf)
	buf = append(buf, buf[:n]...) // the upper bound
	buf[2*n-1] = afterVersions
	buf = appendSeekAtOrBelow(append(buf, buf[:n]...), atRev)
	src.keep(buf)
	it := src.acquire(buf[:n], buf[n:2*n])
	defer src.release()
	if !it.SeekGE(buf[2*n:]) {
		if err := it.Error(); err != nil {
			return nil, false, fmt.Errorf("get %q: %w", key, err)
		}
		return nil, false, nil
	}
	v, err = it.ValueAndErr()
	if err != nil {
		return nil, false, fmt.Errorf("get %q: %w", key, err)
	}
	return v, true, nil
}

// readKeyState returns userKey's key index entry as src sees it; found is
// false if it has none. It is a prefix seek for the exact entry, so Pebble
// skips every table whose bloom filter says it lacks the entry (the node's
// state database is opened with filters), where seekLatest positions a
// data block in every level.
func readKeyState(src *source, userKey []byte) (st keyState, found bool, err error) {
	buf := appendIndexKey(src.scratch(), userKey)
	n := len(buf)
	buf = append(append(buf, buf[:n]...), 0) // the upper bound: the entry's key and a zero byte
	src.keep(buf)
	it := src.acquire(buf[:n], buf[n:])
	defer src.release()
	if !it.SeekPrefixGE(buf[:n]) {
		if err := it.Error(); err != nil {
			return keyState{}, false, fmt.Errorf("index %q: %w", userKey, err)
		}
		return keyState{}, false, nil
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return keyState{}, false, fmt.Errorf("index %q: %w", userKey, err)
	}
	return decodeKeyState(it.Key(), v), true, nil
}

// isGteRange reports whether rangeEnd means "every key >= key" (etcd encodes
// it as a single 0x00 byte).
func isGteRange(rangeEnd []byte) bool {
	return len(rangeEnd) == 1 && rangeEnd[0] == 0
}

// entry is a key's version found by a scan, valid only during the visit
// call: its slices point into Pebble's buffers.
type entry struct {
	versionKey []byte
	value      []byte
}

// kv decodes the entry into a key-value the caller owns.
func (e *entry) kv() *mvccpb.KeyValue {
	return decodeValue(decodeUserKey(e.versionKey), e.value)
}

// scanRange calls visit with every key existing at atRev in the etcd range
// [key, rangeEnd), in key order, until visit returns false. An empty
// rangeEnd means the single key, "\x00" every key >= key.
func scanRange(src *source, key, rangeEnd []byte, atRev int64, visit func(*entry) bool) error {
	if len(rangeEnd) == 0 {
		return scanKey(src, key, atRev, visit)
	}
	if !isGteRange(rangeEnd) && bytes.Compare(rangeEnd, key) <= 0 {
		return nil
	}
	buf := appendPrefix(src.scratch(), key)
	n := len(buf)
	upper := versionsEnd
	if !isGteRange(rangeEnd) {
		buf = appendPrefix(buf, rangeEnd)
		upper = buf[n:]
	}
	src.keep(buf)
	it := src.acquire(buf[:n], upper)
	defer src.release()
	if err := scanIter(it, &src.ent, buf[:n], atRev, visit); err != nil {
		return fmt.Errorf("scan %q: %w", key, err)
	}
	return nil
}

// scanKey is scanRange for a single key: one seek.
func scanKey(src *source, key []byte, atRev int64, visit func(*entry) bool) error {
	buf := src.scratch()
	buf = appendPrefix(buf, key)
	n := len(buf)
	buf = append(buf, buf[:n]...)
	buf[2*n-1] = afterVersions
	buf = appendSeekAtOrBelow(append(buf, buf[:n]...), atRev)
	src.keep(buf)
	it := src.acquire(buf[:n], buf[n:2*n])
	defer src.release()
	if !it.SeekGE(buf[2*n:]) {
		if err := it.Error(); err != nil {
			return fmt.Errorf("get %q: %w", key, err)
		}
		return nil
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("get %q: %w", key, err)
	}
	if kindOf(key, v) == kindPut {
		src.ent = entry{versionKey: it.Key(), value: v}
		visit(&src.ent)
	}
	return nil
}

// scanIter does scanRange's work with one seek per key: to the newest
// version at or below atRev, then past the key's older versions. It hands
// visit each key's version in ent.
func scanIter(it *pebble.Iterator, ent *entry, lower []byte, atRev int64, visit func(*entry) bool) error {
	var seek []byte // the current key's prefix, then a seek key
	for valid := it.SeekGE(lower); valid; {
		k := it.Key()
		checkVersionKey(k)
		n := len(k) - revisionBytes
		seek = append(seek[:0], k[:n]...)
		if decodeRevision(k[n:]).main > atRev {
			valid = it.SeekGE(appendSeekAtOrBelow(seek, atRev))
			if !valid || !hasVersionPrefix(it.Key(), seek[:n]) {
				continue
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if kindOf(k, v) != kindPut {
			valid = nextKey(it, seek[:n])
			continue
		}
		*ent = entry{versionKey: it.Key(), value: v}
		if !visit(ent) {
			return nil
		}
		valid = nextKey(it, seek[:n])
	}
	return it.Error()
}

// nextsBeforeSeek is how many older versions of a key a scan steps over
// with Next before it seeks past them: most keys have few versions, and a
// Next is several times cheaper than a seek.
const nextsBeforeSeek = 4

// nextKey moves it to the first version of the key after the one whose
// version prefix is prefix. It may overwrite prefix (with the seek key).
func nextKey(it *pebble.Iterator, prefix []byte) bool {
	for range nextsBeforeSeek {
		if !it.Next() {
			return false
		}
		if !hasVersionPrefix(it.Key(), prefix) {
			return true
		}
	}
	prefix[len(prefix)-1] = afterVersions
	return it.SeekGE(prefix)
}

// rangeAt serves a RangeRequest from src, a view whose current revision is
// viewRev, as etcd's range does: revision checks, limit+1 fetch when the
// order is the key order and no filter applies, filters, sort, truncation.
func rangeAt(src *source, viewRev, compactRev int64, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return rangeAtCounting(src, viewRev, compactRev, r, true)
}

// rangeAtCounting is rangeAt; withTotalCount false leaves the keys past
// limit+1 uncounted, as etcd's range does inside a RangeStream (RangeChunk).
func rangeAtCounting(src *source, viewRev, compactRev int64, r *pb.RangeRequest, withTotalCount bool) (*pb.RangeResponse, error) {
	rev, err := rangeRevision(r, viewRev, compactRev)
	if err != nil {
		return nil, err
	}
	kvs, count, err := collectRange(src, rev, r, withTotalCount)
	if err != nil {
		return nil, err
	}
	return finishRange(kvs, count, viewRev, r), nil
}

// rangeRevision is the revision a range reads at in a view whose current
// revision is viewRev: the request's, or the view's if it names none.
func rangeRevision(r *pb.RangeRequest, viewRev, compactRev int64) (int64, error) {
	rev := r.GetRevision()
	switch {
	case rev > viewRev:
		return 0, rpctypes.ErrGRPCFutureRev
	case rev <= 0:
		rev = viewRev
	}
	if rev < compactRev {
		return 0, rpctypes.ErrGRPCCompacted
	}
	return rev, nil
}

// finishRange applies the request's filters, sort and limit to the keys
// collectRange returned.
func finishRange(kvs []*mvccpb.KeyValue, count, viewRev int64, r *pb.RangeRequest) *pb.RangeResponse {
	kvs = filterKVs(kvs, r)
	sortKVs(kvs, r)
	return assembleRange(kvs, count, viewRev, r)
}

// collectRange returns the keys that the range has to look at and the
// number of keys in the range. Like etcd, it keeps only limit+1 keys when
// neither sorting nor filtering needs them all; then, or for count_only,
// the key index counts the rest without reading their versions. Without
// withTotalCount, a range cut at limit+1 keys counts only those, as etcd's
// does when it is not asked for the total.
func collectRange(src *source, rev int64, r *pb.RangeRequest, withTotalCount bool) ([]*mvccpb.KeyValue, int64, error) {
	keep := r.GetLimit()
	if !isDefaultOrdering(r.GetSortTarget(), r.GetSortOrder()) || hasRevisionFilters(r) || keep < 0 {
		keep = 0
	}
	if len(r.GetRangeEnd()) == 0 {
		kv, err := readKey(src, r.GetKey(), rev)
		if err != nil {
			return nil, 0, err
		}
		kvs, count := collectKey(kv, r)
		return kvs, count, nil
	}
	if r.GetCountOnly() {
		count, err := countKeys(src, r.GetKey(), r.GetRangeEnd(), rev)
		return nil, count, err
	}
	var kvs []*mvccpb.KeyValue
	count, cut := int64(0), false
	err := scanRange(src, r.GetKey(), r.GetRangeEnd(), rev, func(e *entry) bool {
		count++
		if !r.GetCountOnly() {
			kvs = append(kvs, e.kv())
		}
		cut = keep > 0 && int64(len(kvs)) > keep
		return !cut
	})
	if err != nil || !cut || !withTotalCount {
		return kvs, count, err
	}
	count, err = countKeys(src, r.GetKey(), r.GetRangeEnd(), rev)
	return kvs, count, err
}

// collectKey is collectRange for a single key whose version at the read
// revision is kv (nil: the key does not exist there).
func collectKey(kv *mvccpb.KeyValue, r *pb.RangeRequest) ([]*mvccpb.KeyValue, int64) {
	switch {
	case kv == nil:
		return nil, 0
	case r.GetCountOnly():
		return nil, 1
	}
	return []*mvccpb.KeyValue{kv}, 1
}

// readKey returns key's version at rev, nil if the key does not exist
// there: from the read cache if it holds it, else from src.
func readKey(src *source, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	if kv, ok := src.reads.get(key, rev); ok {
		return kv, nil
	}
	// A copy of key: the key-value is the response's, the request's key
	// the caller's.
	return getLatest(src, append([]byte(nil), key...), rev)
}

func isDefaultOrdering(target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) bool {
	return order == pb.RangeRequest_NONE ||
		(target == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.GetMinModRevision() != 0 || r.GetMaxModRevision() != 0 ||
		r.GetMinCreateRevision() != 0 || r.GetMaxCreateRevision() != 0
}

// filterKVs drops the keys outside the request's revision filters; a zero
// bound is no bound.
func filterKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if outside(kv.ModRevision, r.GetMinModRevision(), r.GetMaxModRevision()) ||
			outside(kv.CreateRevision, r.GetMinCreateRevision(), r.GetMaxCreateRevision()) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func outside(v, minimum, maximum int64) bool {
	return (maximum != 0 && v > maximum) || (minimum != 0 && v < minimum)
}

// kvSorter orders key-values by one sort target. Ties keep the order that
// sort.Sort gives them, as in etcd.
type kvSorter struct {
	kvs    []*mvccpb.KeyValue
	target pb.RangeRequest_SortTarget
}

func (s kvSorter) Len() int      { return len(s.kvs) }
func (s kvSorter) Swap(i, j int) { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }

func (s kvSorter) Less(i, j int) bool {
	a, b := s.kvs[i], s.kvs[j]
	switch s.target {
	case pb.RangeRequest_KEY:
		return bytes.Compare(a.Key, b.Key) < 0
	case pb.RangeRequest_VERSION:
		return a.Version < b.Version
	case pb.RangeRequest_CREATE:
		return a.CreateRevision < b.CreateRevision
	case pb.RangeRequest_MOD:
		return a.ModRevision < b.ModRevision
	case pb.RangeRequest_VALUE:
		return bytes.Compare(a.Value, b.Value) < 0
	}
	panic(fmt.Sprintf("mvcc: unexpected sort target %d (CheckRange rejects it)", s.target))
}

func sortKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.GetSortOrder()
	if r.GetSortTarget() != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(r.GetSortTarget(), order) {
		return
	}
	sorter := kvSorter{kvs: kvs, target: r.GetSortTarget()}
	switch order {
	case pb.RangeRequest_ASCEND:
		sort.Sort(sorter)
	case pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(sorter))
	}
}

// assembleRange truncates to the limit and strips what keys_only hides.
// etcd answers keys_only ranges (unless sorted by value) from its key index,
// which has no lease: the lease reads as 0 there, and here too.
func assembleRange(kvs []*mvccpb.KeyValue, count, viewRev int64, r *pb.RangeRequest) *pb.RangeResponse {
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: viewRev}, Count: count}
	if r.GetLimit() > 0 && int64(len(kvs)) > r.GetLimit() {
		kvs = kvs[:r.GetLimit()]
		resp.More = true
	}
	if r.GetKeysOnly() {
		fromIndex := r.GetSortTarget() != pb.RangeRequest_VALUE
		for _, kv := range kvs {
			kv.Value = nil
			if fromIndex {
				kv.Lease = 0
			}
		}
	}
	resp.Kvs = kvs
	return resp
}

func closeIter(it *pebble.Iterator, err *error) {
	if cerr := it.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close iterator: %w", cerr)
	}
}
