package linearizability

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// referenceStore is a deliberately naive etcd keyspace (a map, no sharing,
// no incremental hash) used to generate histories that must check: the
// model is checked against it, not against itself.
type referenceStore struct {
	revision int64
	kvs      map[string]KeyValue
}

func newReferenceStore(revision int64) *referenceStore {
	return &referenceStore{revision: revision, kvs: make(map[string]KeyValue)}
}

// do executes req and returns etcd's response.
func (s *referenceStore) do(req Request) Response {
	changed := false
	resp := s.op(req, &changed)
	if changed {
		s.revision++
	}
	resp.HeaderRevision = s.revision
	return resp
}

func (s *referenceStore) op(req Request, changed *bool) Response {
	switch req.Kind {
	case OpPut:
		kv, ok := s.kvs[req.Key]
		if !ok {
			kv = KeyValue{Key: req.Key, CreateRevision: s.revision + 1}
		}
		kv.Value, kv.ModRevision, kv.Version = req.Value, s.revision+1, kv.Version+1
		s.kvs[req.Key] = kv
		*changed = true
		return Response{}
	case OpGet:
		kv, ok := s.kvs[req.Key]
		if !ok {
			return Response{}
		}
		return Response{Found: true, KV: kv}
	case OpRange:
		all := s.matching(req.Key, req.End)
		resp := Response{KVs: []KeyValue{}, Count: int64(len(all))}
		for _, kv := range all {
			if req.Limit > 0 && int64(len(resp.KVs)) == req.Limit {
				resp.More = true
				break
			}
			resp.KVs = append(resp.KVs, kv)
		}
		return resp
	case OpDelete:
		all := s.matching(req.Key, req.End)
		for _, kv := range all {
			delete(s.kvs, kv.Key)
			*changed = true
		}
		return Response{Deleted: int64(len(all))}
	case OpTxn:
		return s.txn(req, changed)
	}
	panic(fmt.Sprintf("reference: kind %v", req.Kind))
}

func (s *referenceStore) txn(req Request, changed *bool) Response {
	ok := true
	for _, c := range req.Compares {
		ok = ok && s.compare(c)
	}
	branch := req.Else
	if ok {
		branch = req.Then
	}
	resp := Response{Succeeded: ok, Results: []Response{}}
	for _, op := range branch {
		resp.Results = append(resp.Results, s.op(op, changed))
	}
	return resp
}

func (s *referenceStore) compare(c Compare) bool {
	all := s.matching(c.Key, c.End)
	if len(all) == 0 {
		if c.Target == CompareValue {
			return false
		}
		all = []KeyValue{{}}
	}
	for _, kv := range all {
		var a, b string
		switch c.Target {
		case CompareValue:
			a, b = kv.Value, c.Value
		case CompareVersion:
			a, b = fmt.Sprintf("%020d", kv.Version), fmt.Sprintf("%020d", c.Version)
		case CompareCreateRevision:
			a, b = fmt.Sprintf("%020d", kv.CreateRevision), fmt.Sprintf("%020d", c.CreateRevision)
		case CompareModRevision:
			a, b = fmt.Sprintf("%020d", kv.ModRevision), fmt.Sprintf("%020d", c.ModRevision)
		}
		holds := map[CompareResult]bool{
			CompareEqual: a == b, CompareNotEqual: a != b, CompareLess: a < b, CompareGreater: a > b,
		}[c.Result]
		if !holds {
			return false
		}
	}
	return true
}

func (s *referenceStore) matching(key, end string) []KeyValue {
	var all []KeyValue
	for k, kv := range s.kvs {
		if (end == "" && k == key) || (end == "\x00" && k >= key) || (end != "" && end != "\x00" && k >= key && k < end) {
			all = append(all, kv)
		}
	}
	sort.Slice(all, func(i, j int) bool { return strings.Compare(all[i].Key, all[j].Key) < 0 })
	return all
}

// drawer is the randomness a history generator uses: rapid in property
// tests, a seeded PCG in the performance test.
type drawer interface {
	intn(n int, label string) int
}

// generatorConfig bounds a generated workload.
type generatorConfig struct {
	clients        int
	keys           int
	operations     int
	unknownPercent int
}

// clientState is where one generated client is in its current operation.
type clientState struct {
	id      int // porcupine client id; renewed after an unknown outcome
	busy    bool
	applied bool
	index   int // into history
	resp    Response
}

// generateHistory runs a concurrent workload against the reference store:
// each step one random client invokes, takes effect (its linearization
// point) or returns, so the history is linearizable by construction. Some
// operations end with an unknown outcome, having taken effect or not.
func generateHistory(d drawer, cfg generatorConfig) []porcupine.Operation {
	store := newReferenceStore(1)
	clients := make([]clientState, cfg.clients)
	for i := range clients {
		clients[i].id = i
	}
	nextID := cfg.clients
	var history []porcupine.Operation
	var now int64
	invoked := 0
	for invoked < cfg.operations || anyBusy(clients) {
		now++
		c := &clients[d.intn(len(clients), "client")]
		switch {
		case !c.busy:
			if invoked == cfg.operations {
				continue
			}
			req := drawRequest(d, cfg.keys, store)
			history = append(history, porcupine.Operation{ClientId: c.id, Input: req, Call: now, Output: Response{Unknown: true}, Return: now})
			c.busy, c.applied, c.index = true, false, len(history)-1
			invoked++
		case !c.applied:
			if d.intn(100, "lost before effect") < cfg.unknownPercent {
				history[c.index].Return = now
				c.busy, c.id, nextID = false, nextID, nextID+1
				continue
			}
			c.resp = store.do(history[c.index].Input.(Request))
			c.applied = true
		default:
			history[c.index].Return = now
			if d.intn(100, "lost after effect") >= cfg.unknownPercent {
				history[c.index].Output = c.resp
			} else {
				c.id, nextID = nextID, nextID+1
			}
			c.busy = false
		}
	}
	return history
}

func anyBusy(clients []clientState) bool {
	for _, c := range clients {
		if c.busy {
			return true
		}
	}
	return false
}

func drawKey(d drawer, keys int) string {
	return fmt.Sprintf("k%02d", d.intn(keys, "key"))
}

func drawValue(d drawer) string {
	return fmt.Sprintf("v%d", d.intn(1000, "value"))
}

func drawRequest(d drawer, keys int, store *referenceStore) Request {
	switch d.intn(10, "kind") {
	case 0, 1, 2:
		return Put(drawKey(d, keys), drawValue(d))
	case 3, 4:
		return Get(drawKey(d, keys))
	case 5:
		return Range(drawKey(d, keys), drawKey(d, keys), int64(d.intn(3, "limit")))
	case 6:
		return Prefix("k", int64(d.intn(4, "limit")))
	case 7:
		if d.intn(4, "range delete") == 0 {
			return DeleteRange(drawKey(d, keys), drawKey(d, keys))
		}
		return Delete(drawKey(d, keys))
	}
	return drawTxn(d, keys, store)
}

// drawTxn draws a txn whose compares are often satisfiable: operands are
// taken from the store's current values.
func drawTxn(d drawer, keys int, store *referenceStore) Request {
	key := drawKey(d, keys)
	current := store.kvs[key]
	c := Compare{Key: key, Result: CompareResult(1 + d.intn(4, "relation"))}
	switch d.intn(4, "target") {
	case 0:
		c.Target, c.Value = CompareValue, current.Value
	case 1:
		c.Target, c.ModRevision = CompareModRevision, current.ModRevision+int64(d.intn(3, "delta")-1)
	case 2:
		c.Target, c.Version = CompareVersion, current.Version+int64(d.intn(3, "delta")-1)
	case 3:
		c.Target, c.CreateRevision = CompareCreateRevision, current.CreateRevision
	}
	return Txn([]Compare{c}, drawBranch(d, keys), drawBranch(d, keys))
}

// drawBranch draws up to three single-key ops on distinct keys, since etcd
// rejects a txn that writes one key twice.
func drawBranch(d drawer, keys int) []Request {
	used := make(map[string]bool)
	var ops []Request
	for range d.intn(4, "branch ops") {
		key := drawKey(d, keys)
		if used[key] {
			continue
		}
		used[key] = true
		switch d.intn(3, "branch kind") {
		case 0:
			ops = append(ops, Put(key, drawValue(d)))
		case 1:
			ops = append(ops, Get(key))
		case 2:
			ops = append(ops, Delete(key))
		}
	}
	return ops
}
