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

// iterSource is where reads come from: a Pebble snapshot for readers, the
// writer's indexed batch (which sees its own uncommitted writes) for the
// apply loop. Every read opens a fresh iterator, so it observes every write
// made to the batch before it.
type iterSource interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func closeIter(it *pebble.Iterator, err *error) {
	if cerr := it.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close iterator: %w", cerr)
	}
}

// getLatest returns the newest version of key at or below atRev, or nil if
// the key does not exist at atRev.
func getLatest(src iterSource, key []byte, atRev int64) (kv *mvccpb.KeyValue, err error) {
	prefix := keyPrefix(key)
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: nextKeyBound(prefix)})
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	defer closeIter(it, &err)
	if !it.SeekGE(seekAtOrBelow(prefix, atRev)) {
		return nil, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return decodeValue(key, v), nil
}

// isGteRange reports whether rangeEnd means "every key >= key" (etcd encodes
// it as a single 0x00 byte).
func isGteRange(rangeEnd []byte) bool {
	return len(rangeEnd) == 1 && rangeEnd[0] == 0
}

// scanRange calls visit with every key existing at atRev in the etcd range
// [key, rangeEnd), in key order, until visit returns false. An empty
// rangeEnd means the single key, "\x00" every key >= key.
func scanRange(src iterSource, key, rangeEnd []byte, atRev int64, visit func(*mvccpb.KeyValue) bool) (err error) {
	if len(rangeEnd) == 0 {
		kv, err := getLatest(src, key, atRev)
		if err == nil && kv != nil {
			visit(kv)
		}
		return err
	}
	upper := versionsEnd
	if !isGteRange(rangeEnd) {
		if bytes.Compare(rangeEnd, key) <= 0 {
			return nil
		}
		upper = keyPrefix(rangeEnd)
	}
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: keyPrefix(key), UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan %q: %w", key, err)
	}
	defer closeIter(it, &err)
	return scanIter(it, keyPrefix(key), atRev, visit)
}

// scanIter does scanRange's work with one seek per key: to the newest
// version at or below atRev, then past the key's older versions.
func scanIter(it *pebble.Iterator, lower []byte, atRev int64, visit func(*mvccpb.KeyValue) bool) error {
	for valid := it.SeekGE(lower); valid; {
		userKey, prefix, rev := decodeVersionKey(it.Key())
		if rev.main > atRev {
			valid = it.SeekGE(seekAtOrBelow(prefix, atRev))
			if !valid || !hasVersionPrefix(it.Key(), prefix) {
				continue
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scan at %q: %w", userKey, err)
		}
		if kv := decodeValue(userKey, v); kv != nil && !visit(kv) {
			return nil
		}
		valid = it.SeekGE(nextKeyBound(prefix))
	}
	return it.Error()
}

// rangeAt serves a RangeRequest from src, a view whose current revision is
// viewRev, as etcd's range does: revision checks, limit+1 fetch when the
// order is the key order and no filter applies, filters, sort, truncation.
func rangeAt(src iterSource, viewRev, compactRev int64, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	rev := r.GetRevision()
	switch {
	case rev > viewRev:
		return nil, rpctypes.ErrGRPCFutureRev
	case rev <= 0:
		rev = viewRev
	}
	if rev < compactRev {
		return nil, rpctypes.ErrGRPCCompacted
	}
	kvs, count, err := collectRange(src, rev, r)
	if err != nil {
		return nil, err
	}
	kvs = filterKVs(kvs, r)
	sortKVs(kvs, r)
	return assembleRange(kvs, count, viewRev, r), nil
}

// collectRange returns the keys that the range has to look at and the
// number of keys in the range. Like etcd, it keeps only limit+1 keys when
// neither sorting nor filtering needs them all.
func collectRange(src iterSource, rev int64, r *pb.RangeRequest) ([]*mvccpb.KeyValue, int64, error) {
	keep := r.GetLimit()
	if !isDefaultOrdering(r.GetSortTarget(), r.GetSortOrder()) || hasRevisionFilters(r) || keep < 0 {
		keep = 0
	}
	var kvs []*mvccpb.KeyValue
	count := int64(0)
	err := scanRange(src, r.GetKey(), r.GetRangeEnd(), rev, func(kv *mvccpb.KeyValue) bool {
		count++
		if !r.GetCountOnly() && (keep == 0 || int64(len(kvs)) <= keep) {
			kvs = append(kvs, kv)
		}
		return true
	})
	return kvs, count, err
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
