package linearizability

import (
	"cmp"
	"fmt"
	"sort"
	"strings"
)

// keyspace is one state of the model: the store's revision and its live keys.
// A keyspace is immutable once built, so porcupine can keep every state on its
// search stack without copying, and a read returns its input state unchanged.
type keyspace struct {
	revision int64
	// kvs holds the live keys sorted by Key, each at most once.
	// Invariant: every ModRevision and CreateRevision <= revision.
	kvs []KeyValue
	// hash mixes revision and every kv; equal keyspaces have equal hashes.
	hash uint64
}

func newKeyspace(revision int64, kvs []KeyValue) *keyspace {
	s := &keyspace{revision: revision, kvs: kvs}
	s.hash = s.computeHash()
	return s
}

// withRevision returns the same keys at a later revision: the store after
// writes to keys outside the model.
func (s *keyspace) withRevision(revision int64) *keyspace {
	return newKeyspace(revision, s.kvs)
}

func (s *keyspace) computeHash() uint64 {
	h := mixInt(fnvOffset, s.revision)
	for _, kv := range s.kvs {
		h = mixKeyValue(h, kv)
	}
	return h
}

// equal compares two keyspaces, cheapest fields first.
func (s *keyspace) equal(o *keyspace) bool {
	if s == o {
		return true
	}
	if s.revision != o.revision || s.hash != o.hash || len(s.kvs) != len(o.kvs) {
		return false
	}
	for i := range s.kvs {
		if s.kvs[i] != o.kvs[i] {
			return false
		}
	}
	return true
}

func (s *keyspace) String() string {
	parts := make([]string, len(s.kvs))
	for i, kv := range s.kvs {
		parts[i] = fmt.Sprintf("%q=%q@%d", kv.Key, kv.Value, kv.ModRevision)
	}
	return fmt.Sprintf("rev %d {%s}", s.revision, strings.Join(parts, ", "))
}

// apply executes req on s as etcd would and returns the resulting state and
// the response etcd would have sent. s is not modified.
func (s *keyspace) apply(req Request) (*keyspace, Response) {
	w := writer{base: s, kvs: s.kvs, revision: s.revision + 1}
	resp := w.do(req)
	next := w.finish()
	resp.HeaderRevision = next.revision
	return next, resp
}

// writer applies the ops of one request; all its changes share one revision,
// as all the ops of an etcd txn do. It copies the base's kvs on first write.
type writer struct {
	base     *keyspace
	kvs      []KeyValue
	revision int64 // the revision this request creates if it changes anything
	changed  bool  // whether kvs is a private copy holding changes
}

func (w *writer) finish() *keyspace {
	if !w.changed {
		return w.base
	}
	return newKeyspace(w.revision, w.kvs)
}

// do dispatches one request; the response's HeaderRevision is set by apply.
func (w *writer) do(req Request) Response {
	switch req.Kind {
	case OpPut:
		w.put(req.Key, req.Value)
		return Response{}
	case OpGet:
		return w.get(req.Key)
	case OpRange:
		return w.rangeKeys(req.Key, req.End, req.Limit)
	case OpDelete:
		return Response{Deleted: w.deleteRange(req.Key, req.End)}
	case OpTxn:
		return w.txn(req)
	}
	panic(fmt.Sprintf("linearizability: request with invalid kind %d", req.Kind))
}

func (w *writer) txn(req Request) Response {
	succeeded := true
	for _, c := range req.Compares {
		if !compareHolds(w.kvs, c) {
			succeeded = false
			break
		}
	}
	branch := req.Else
	if succeeded {
		branch = req.Then
	}
	results := make([]Response, len(branch))
	for i, op := range branch {
		if op.Kind == OpTxn {
			panic("linearizability: nested txn is not modelled")
		}
		results[i] = w.do(op)
	}
	return Response{Succeeded: succeeded, Results: results}
}

// search returns the index of key in kvs, or where it would be inserted.
func search(kvs []KeyValue, key string) (int, bool) {
	i := sort.Search(len(kvs), func(i int) bool { return kvs[i].Key >= key })
	return i, i < len(kvs) && kvs[i].Key == key
}

func (w *writer) own() {
	if !w.changed {
		w.kvs = append([]KeyValue(nil), w.kvs...)
		w.changed = true
	}
}

func (w *writer) put(key, value string) {
	w.own()
	i, found := search(w.kvs, key)
	if found {
		kv := &w.kvs[i]
		kv.Value, kv.ModRevision, kv.Version = value, w.revision, kv.Version+1
		return
	}
	kv := KeyValue{Key: key, Value: value, CreateRevision: w.revision, ModRevision: w.revision, Version: 1}
	w.kvs = append(w.kvs, KeyValue{})
	copy(w.kvs[i+1:], w.kvs[i:])
	w.kvs[i] = kv
}

func (w *writer) get(key string) Response {
	i, found := search(w.kvs, key)
	if !found {
		return Response{}
	}
	return Response{Found: true, KV: w.kvs[i]}
}

// bounds returns the index range of kvs inside the etcd range [key, end).
func bounds(kvs []KeyValue, key, end string) (int, int) {
	lo, _ := search(kvs, key)
	hi := lo
	for hi < len(kvs) && inRange(kvs[hi].Key, key, end) {
		hi++
	}
	return lo, hi
}

func (w *writer) rangeKeys(key, end string, limit int64) Response {
	lo, hi := bounds(w.kvs, key, end)
	count := int64(hi - lo)
	n := count
	if limit > 0 && limit < n {
		n = limit
	}
	kvs := append([]KeyValue(nil), w.kvs[lo:lo+int(n)]...)
	return Response{KVs: kvs, Count: count, More: n < count}
}

// deleteRange removes the keys in range and returns how many it removed; a
// delete of nothing changes nothing and so creates no revision.
func (w *writer) deleteRange(key, end string) int64 {
	lo, hi := bounds(w.kvs, key, end)
	if lo == hi {
		return 0
	}
	w.own()
	w.kvs = append(w.kvs[:lo], w.kvs[hi:]...)
	return int64(hi - lo)
}

// compareHolds evaluates one txn compare the way etcd's applyCompare does.
func compareHolds(kvs []KeyValue, c Compare) bool {
	lo, hi := bounds(kvs, c.Key, c.End)
	if lo == hi {
		if c.Target == CompareValue {
			return false // etcd: a value compare on a missing key always fails
		}
		return compareKeyValue(KeyValue{}, c)
	}
	for _, kv := range kvs[lo:hi] {
		if !compareKeyValue(kv, c) {
			return false
		}
	}
	return true
}

func compareKeyValue(kv KeyValue, c Compare) bool {
	var order int
	switch c.Target {
	case CompareValue:
		order = strings.Compare(kv.Value, c.Value)
	case CompareVersion:
		order = cmp.Compare(kv.Version, c.Version)
	case CompareCreateRevision:
		order = cmp.Compare(kv.CreateRevision, c.CreateRevision)
	case CompareModRevision:
		order = cmp.Compare(kv.ModRevision, c.ModRevision)
	default:
		panic(fmt.Sprintf("linearizability: compare with invalid target %d", c.Target))
	}
	switch c.Result {
	case CompareEqual:
		return order == 0
	case CompareNotEqual:
		return order != 0
	case CompareLess:
		return order < 0
	case CompareGreater:
		return order > 0
	}
	panic(fmt.Sprintf("linearizability: compare with invalid result %d", c.Result))
}

// FNV-1a, inlined so hashing a state allocates nothing.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func mixInt(h uint64, v int64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= uint64(byte(v >> (8 * i)))
		h *= fnvPrime
	}
	return h
}

func mixString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mixInt(h, int64(len(s)))
}

func mixKeyValue(h uint64, kv KeyValue) uint64 {
	h = mixString(h, kv.Key)
	h = mixString(h, kv.Value)
	h = mixInt(h, kv.CreateRevision)
	h = mixInt(h, kv.ModRevision)
	return mixInt(h, kv.Version)
}
