package mvcc

import (
	"bytes"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// model is a dumb in-memory reference of etcd 3.7.3's KV semantics: every
// version of every key in a map of slices, every read a full scan.
type model struct {
	rev        int64
	compactRev int64 // -1: never compacted
	hist       map[string][]mver
	leases     map[int64]bool
	// events are the events the Writer reports: puts without PrevKv,
	// deletes with it only when the request decoded it (prev_kv).
	events []*mvccpb.Event
	// prevs[i] is the newest version of events[i]'s key below its
	// revision, what Store.VersionBefore must return for it, and what etcd
	// sends a watcher with prev_kv: not the version the event replaced
	// when a txn put the key just before (a put and a delete from the key
	// on do not conflict in etcd's txn check), but nothing, as etcd reads
	// it at the revision before.
	prevs []*mvccpb.KeyValue
	// bug plants a deliberate deviation, to prove the property test can fail.
	bug string
}

type mver struct {
	rev int64
	kv  *mvccpb.KeyValue // nil: tombstone
}

func newModel(leases map[int64]bool) *model {
	return &model{rev: 1, compactRev: -1, hist: map[string][]mver{}, leases: leases}
}

func cloneKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if kv == nil {
		return nil
	}
	return proto.Clone(kv).(*mvccpb.KeyValue)
}

func (m *model) get(key string, at int64) *mvccpb.KeyValue {
	h := m.hist[key]
	var cur *mvccpb.KeyValue
	for _, v := range h {
		if v.rev <= at {
			cur = v.kv
		}
	}
	switch {
	case m.bug == "read-version-above-rev" && len(h) > 0 && h[0].rev > at:
		cur = h[len(h)-1].kv
	case m.bug == "compaction-loses-young-key" && len(h) == 1 && m.compactRev >= 0 && h[0].rev > m.compactRev:
		cur = nil
	}
	return cloneKV(cur)
}

func inRange(k, key, end string) bool {
	switch {
	case end == "":
		return k == key
	case end == "\x00":
		return k >= key
	}
	return key <= k && k < end
}

// live returns the keys existing at rev in the range, sorted by key.
func (m *model) live(key, end []byte, at int64) []*mvccpb.KeyValue {
	var keys []string
	for k := range m.hist {
		if inRange(k, string(key), string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []*mvccpb.KeyValue
	for _, k := range keys {
		if kv := m.get(k, at); kv != nil {
			out = append(out, kv)
		}
	}
	return out
}

type modelSort struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s modelSort) Len() int           { return len(s.kvs) }
func (s modelSort) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s modelSort) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

var modelLess = map[pb.RangeRequest_SortTarget]func(a, b *mvccpb.KeyValue) bool{
	pb.RangeRequest_KEY:     func(a, b *mvccpb.KeyValue) bool { return string(a.Key) < string(b.Key) },
	pb.RangeRequest_VERSION: func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version },
	pb.RangeRequest_CREATE:  func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision },
	pb.RangeRequest_MOD:     func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision },
	pb.RangeRequest_VALUE:   func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 },
}

func (m *model) rangeAt(r *pb.RangeRequest, cur int64) (*pb.RangeResponse, error) {
	at := r.Revision
	if at > cur {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	if at <= 0 {
		at = cur
	}
	if at < m.compactRev {
		return nil, rpctypes.ErrGRPCCompacted
	}
	all := m.live(r.Key, r.RangeEnd, at)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: int64(len(all))}
	if m.bug == "count-after-limit" && r.Limit > 0 && int64(len(all)) > r.Limit {
		resp.Count = r.Limit
	}
	if r.CountOnly {
		return resp, nil
	}
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	keyOrder := r.SortOrder == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
	kvs := all
	// etcd fetches limit+1 keys in key order when it need not sort or filter.
	if keyOrder && !filtered && r.Limit > 0 && int64(len(kvs)) > r.Limit+1 {
		kvs = kvs[:r.Limit+1]
	}
	var kept []*mvccpb.KeyValue
	for _, kv := range kvs {
		if (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) {
			continue
		}
		kept = append(kept, kv)
	}
	order := r.SortOrder
	if order == pb.RangeRequest_NONE && r.SortTarget != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if !(order == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND)) {
		s := modelSort{kept, modelLess[r.SortTarget]}
		if order == pb.RangeRequest_DESCEND {
			sort.Sort(sort.Reverse(s))
		} else {
			sort.Sort(s)
		}
	}
	if r.Limit > 0 && int64(len(kept)) > r.Limit {
		kept, resp.More = kept[:r.Limit], true
	}
	for _, kv := range kept {
		if r.KeysOnly {
			kv.Value = nil
			if r.SortTarget != pb.RangeRequest_VALUE {
				kv.Lease = 0
			}
		}
	}
	resp.Kvs = kept
	return resp, nil
}

// mtxn is one write request in progress on the model.
type mtxn struct {
	m       *model
	changes int64
}

func (x *mtxn) cur() int64 {
	if x.changes > 0 {
		return x.m.rev + 1
	}
	return x.m.rev
}

func (x *mtxn) end() {
	if x.changes > 0 {
		x.m.rev++
	}
}

func (m *model) checkPut(p *pb.PutRequest) error {
	if p.Lease != 0 && !m.leases[p.Lease] {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	if (p.IgnoreValue || p.IgnoreLease) && m.get(string(p.Key), m.rev) == nil {
		return rpctypes.ErrGRPCKeyNotFound
	}
	return nil
}

func (x *mtxn) put(p *pb.PutRequest) *pb.PutResponse {
	rev := x.m.rev + 1
	prev := x.m.get(string(p.Key), x.cur())
	kv := &mvccpb.KeyValue{Key: p.Key, Value: p.Value, Lease: p.Lease, CreateRevision: rev, ModRevision: rev, Version: 1}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
		if p.IgnoreValue {
			kv.Value = prev.Value
		}
		if p.IgnoreLease {
			kv.Lease = prev.Lease
		}
	} else if x.m.bug == "version-survives-delete" && len(x.m.hist[string(p.Key)]) > 0 {
		kv.Version = 2
	}
	x.m.hist[string(p.Key)] = append(x.m.hist[string(p.Key)], mver{rev, cloneKV(kv)})
	x.m.events = append(x.m.events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: cloneKV(kv)})
	x.m.prevs = append(x.m.prevs, cloneKV(x.m.get(string(p.Key), x.m.rev)))
	x.changes++
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: rev}}
	if p.PrevKv {
		resp.PrevKv = prev
	}
	return resp
}

func (x *mtxn) del(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	rev := x.m.rev + 1
	prevs := x.m.live(d.Key, d.RangeEnd, x.cur())
	for _, prev := range prevs {
		k := string(prev.Key)
		x.m.hist[k] = append(x.m.hist[k], mver{rev, nil})
		ev := &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: prev.Key, ModRevision: rev}}
		if d.PrevKv {
			ev.PrevKv = cloneKV(prev)
		}
		x.m.events = append(x.m.events, ev)
		x.m.prevs = append(x.m.prevs, cloneKV(x.m.get(k, x.m.rev)))
		x.changes++
	}
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: x.cur()}, Deleted: int64(len(prevs))}
	if d.PrevKv {
		resp.PrevKvs = prevs
	}
	return resp
}

func (m *model) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	if err := m.checkPut(p); err != nil {
		return nil, err
	}
	x := &mtxn{m: m}
	defer x.end()
	return x.put(p), nil
}

func (m *model) deleteRange(d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	x := &mtxn{m: m}
	defer x.end()
	return x.del(d), nil
}

func (m *model) compare(c *pb.Compare) bool {
	kvs := m.live(c.Key, c.RangeEnd, m.rev)
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []*mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var a, b int64
		switch c.Target {
		case pb.Compare_VALUE:
			a, b = int64(bytes.Compare(kv.Value, c.GetValue())), 0
		case pb.Compare_CREATE:
			a, b = kv.CreateRevision, c.GetCreateRevision()
		case pb.Compare_MOD:
			a, b = kv.ModRevision, c.GetModRevision()
		case pb.Compare_VERSION:
			a, b = kv.Version, c.GetVersion()
		case pb.Compare_LEASE:
			a, b = kv.Lease, c.GetLease()
		}
		ok := map[pb.Compare_CompareResult]bool{
			pb.Compare_EQUAL: a == b, pb.Compare_NOT_EQUAL: a != b,
			pb.Compare_GREATER: a > b, pb.Compare_LESS: a < b,
		}[c.Result]
		if !ok {
			return false
		}
	}
	return true
}

// paths evaluates, before the txn runs, every compare on the taken
// branches, in pre-order, as etcd's flat txn path.
func (m *model) paths(r *pb.TxnRequest) []bool {
	ok := true
	for _, c := range r.Compare {
		ok = ok && m.compare(c)
	}
	out := []bool{ok}
	for _, op := range branch(r, ok) {
		if t := op.GetRequestTxn(); t != nil {
			out = append(out, m.paths(t)...)
		}
	}
	return out
}

func branch(r *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return r.Success
	}
	return r.Failure
}

// checkTxn consumes path like run does and returns the first failing check.
func (m *model) checkTxn(r *pb.TxnRequest, path *[]bool) error {
	ok := (*path)[0]
	*path = (*path)[1:]
	for _, op := range branch(r, ok) {
		var err error
		switch {
		case op.GetRequestRange() != nil:
			rr := op.GetRequestRange()
			if rr.Revision > m.rev {
				err = rpctypes.ErrGRPCFutureRev
			} else if rr.Revision != 0 && rr.Revision < m.compactRev {
				err = rpctypes.ErrGRPCCompacted
			}
		case op.GetRequestPut() != nil:
			err = m.checkPut(op.GetRequestPut())
		case op.GetRequestTxn() != nil:
			err = m.checkTxn(op.GetRequestTxn(), path)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *mtxn) run(r *pb.TxnRequest, path *[]bool) *pb.TxnResponse {
	ok := (*path)[0]
	*path = (*path)[1:]
	// etcd gives every txn response an empty header; txn sets the
	// outermost one's revision.
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: ok}
	for _, op := range branch(r, ok) {
		out := &pb.ResponseOp{}
		switch {
		case op.GetRequestRange() != nil:
			rr, err := x.m.rangeAt(op.GetRequestRange(), x.cur())
			if err != nil {
				panic(err)
			}
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case op.GetRequestPut() != nil:
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: x.put(op.GetRequestPut())}
		case op.GetRequestDeleteRange() != nil:
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: x.del(op.GetRequestDeleteRange())}
		case op.GetRequestTxn() != nil:
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: x.run(op.GetRequestTxn(), path)}
		}
		resp.Responses = append(resp.Responses, out)
	}
	if x.m.bug == "nested-txn-header" {
		resp.Header.Revision = x.cur()
	}
	return resp
}

func (m *model) txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	path := m.paths(r)
	check := path
	if err := m.checkTxn(r, &check); err != nil {
		return nil, err
	}
	x := &mtxn{m: m}
	defer x.end()
	resp := x.run(r, &path)
	resp.Header.Revision = x.cur()
	return resp, nil
}

func (m *model) compact(rev int64) (*pb.CompactionResponse, error) {
	if rev <= m.compactRev {
		return nil, rpctypes.ErrGRPCCompacted
	}
	if rev > m.rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	m.compactRev = rev
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: m.rev}}, nil
}
