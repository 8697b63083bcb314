//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// diffKeys is a small key space: shared prefixes, and keys with \x00 and \xff
// bytes around the range-end conventions ("\x00" = from key, prefix of "\xff").
var diffKeys = []string{
	"\x00", "\x00k", "a", "a/", "a/1", "a/2", "a/2/x", "a\x00", "a\xff", "ab", "b", "b\x00", "b\x00\x00", "b\xff", "c", "\xff", "\xff\xff",
}

var diffValues = []string{"", "v", "w", "x\x00y", "zz", "\xff"}

// diffOp is one generated request. Exactly one field is set.
type diffOp struct {
	Range   *pb.RangeRequest
	Put     *pb.PutRequest
	Delete  *pb.DeleteRangeRequest
	Txn     *pb.TxnRequest
	Compact *pb.CompactionRequest
}

// diffGen generates requests from a seed. It tracks the store's revision
// and compaction as reported by the reference, so historical, compacted and
// future revisions are all reachable.
type diffGen struct {
	rnd        *rand.Rand
	revision   int64 // current revision of the reference store
	compacted  int64 // highest successful compaction revision
	maxTxnOps  int
	maxTxnNest int
	generated  int // ops returned by next
}

// diffScanEvery is how often next returns a full-keyspace scan, so that a
// divergence of state shows up soon after the op that caused it.
const diffScanEvery = 20

func newDiffGen(seed uint64) *diffGen {
	return &diffGen{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), revision: 1, maxTxnOps: 128, maxTxnNest: 2}
}

func (g *diffGen) chance(percent int) bool { return g.rnd.IntN(100) < percent }

func (g *diffGen) key() []byte { return []byte(diffKeys[g.rnd.IntN(len(diffKeys))]) }

func (g *diffGen) value() []byte { return []byte(diffValues[g.rnd.IntN(len(diffValues))]) }

// prefixEnd is clientv3.GetPrefixRangeEnd.
func prefixEnd(key []byte) []byte {
	end := append([]byte(nil), key...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// rangeEnd picks a range end for key: none, prefix, from-key, or another key
// (possibly below key, an empty range).
func (g *diffGen) rangeEnd(key []byte) []byte {
	switch g.rnd.IntN(5) {
	case 0, 1:
		return nil
	case 2:
		return prefixEnd(key)
	case 3:
		return []byte{0}
	default:
		return g.key()
	}
}

// revisionArg picks 0 (current), a historical, the compacted or a future revision.
func (g *diffGen) revisionArg() int64 {
	switch g.rnd.IntN(8) {
	case 0, 1, 2, 3:
		return 0
	case 4:
		return g.revision
	case 5:
		return g.revision + 1 + int64(g.rnd.IntN(2))
	default:
		return 1 + g.rnd.Int64N(g.revision)
	}
}

func (g *diffGen) smallRevision() int64 {
	if g.chance(30) {
		return 0
	}
	return g.rnd.Int64N(g.revision + 2)
}

func (g *diffGen) rangeRequest() *pb.RangeRequest {
	r := &pb.RangeRequest{Key: g.key()}
	r.RangeEnd = g.rangeEnd(r.Key)
	if g.chance(40) {
		r.Limit = g.rnd.Int64N(5)
	}
	if g.chance(40) {
		r.SortOrder = pb.RangeRequest_SortOrder(g.rnd.IntN(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.rnd.IntN(5))
	}
	r.Serializable = g.chance(30)
	r.KeysOnly = g.chance(20)
	r.CountOnly = g.chance(15)
	r.Revision = g.revisionArg()
	if g.chance(15) {
		r.MinModRevision = g.smallRevision()
		r.MaxModRevision = g.smallRevision()
	}
	if g.chance(15) {
		r.MinCreateRevision = g.smallRevision()
		r.MaxCreateRevision = g.smallRevision()
	}
	return r
}

func (g *diffGen) putRequest() *pb.PutRequest {
	r := &pb.PutRequest{Key: g.key(), Value: g.value(), PrevKv: g.chance(40)}
	if g.chance(10) {
		r.IgnoreValue, r.Value = true, nil
	}
	if g.chance(5) {
		r.IgnoreLease = true
	}
	return r
}

func (g *diffGen) deleteRequest() *pb.DeleteRangeRequest {
	r := &pb.DeleteRangeRequest{Key: g.key(), PrevKv: g.chance(50)}
	r.RangeEnd = g.rangeEnd(r.Key)
	return r
}

func (g *diffGen) compare() *pb.Compare {
	c := &pb.Compare{Key: g.key(), Result: pb.Compare_CompareResult(g.rnd.IntN(4)), Target: pb.Compare_CompareTarget(g.rnd.IntN(5))}
	if g.chance(15) {
		c.RangeEnd = g.rangeEnd(c.Key)
	}
	switch c.Target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.rnd.Int64N(4)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.smallRevision()}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.smallRevision()}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: g.value()}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: 0}
	}
	return c
}

func (g *diffGen) requestOp(depth int) *pb.RequestOp {
	n := 3
	if depth < g.maxTxnNest {
		n = 4
	}
	switch g.rnd.IntN(n) {
	case 0:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeRequest()}}
	case 1:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: g.putRequest()}}
	case 2:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.deleteRequest()}}
	default:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txnRequest(depth + 1)}}
	}
}

func (g *diffGen) txnRequest(depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range g.rnd.IntN(4) {
		r.Compare = append(r.Compare, g.compare())
	}
	for range g.rnd.IntN(4) {
		r.Success = append(r.Success, g.requestOp(depth))
	}
	for range g.rnd.IntN(3) {
		r.Failure = append(r.Failure, g.requestOp(depth))
	}
	return r
}

func (g *diffGen) compactRequest() *pb.CompactionRequest {
	r := &pb.CompactionRequest{Physical: g.chance(50)}
	switch g.rnd.IntN(4) {
	case 0:
		r.Revision = g.revision + 1 // future
	case 1:
		r.Revision = max(1, g.compacted-g.rnd.Int64N(2)) // already compacted
	default:
		lo := max(g.compacted, 1)
		r.Revision = lo + g.rnd.Int64N(g.revision-lo+1)
	}
	return r
}

// badRequest returns a request etcd rejects before applying it.
func (g *diffGen) badRequest() diffOp {
	switch g.rnd.IntN(8) {
	case 0:
		return diffOp{Put: &pb.PutRequest{Value: g.value()}}
	case 1:
		r := g.rangeRequest()
		r.Key = nil
		return diffOp{Range: r}
	case 2:
		return diffOp{Delete: &pb.DeleteRangeRequest{RangeEnd: g.rangeEnd(nil)}}
	case 3:
		r := &pb.TxnRequest{}
		for i := range g.maxTxnOps + 1 {
			r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: fmt.Appendf(nil, "many/%03d", i)}}})
		}
		return diffOp{Txn: r}
	case 4:
		k := g.key()
		return diffOp{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: g.value()}}},
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: k}}},
		}}}
	case 5:
		r := g.rangeRequest()
		if g.chance(50) {
			r.SortOrder = 7
		} else {
			r.SortTarget = 9
		}
		return diffOp{Range: r}
	case 6:
		return diffOp{Put: &pb.PutRequest{Key: g.key(), Value: []byte("x"), IgnoreValue: true}}
	default:
		return diffOp{Put: &pb.PutRequest{Key: g.key(), Value: g.value(), Lease: 1 + g.rnd.Int64N(1000)}}
	}
}

func (g *diffGen) next() diffOp {
	g.generated++
	if g.generated%diffScanEvery == 0 {
		return diffOp{Range: &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}}
	}
	switch p := g.rnd.IntN(100); {
	case p < 30:
		return diffOp{Put: g.putRequest()}
	case p < 58:
		return diffOp{Range: g.rangeRequest()}
	case p < 68:
		return diffOp{Delete: g.deleteRequest()}
	case p < 88:
		r := g.txnRequest(0)
		avoidEtcdFromKeyDeletePanic(r)
		return diffOp{Txn: r}
	case p < 92:
		return diffOp{Compact: g.compactRequest()}
	default:
		return g.badRequest()
	}
}

// avoidEtcdFromKeyDeletePanic works around an etcd v3.7.3 bug that crashes the
// reference: its duplicate-key check (v3rpc checkIntervals) treats a delete
// with range_end "\x00" as the empty interval [key, "\x00") instead of
// [key, +inf), so a txn that deletes from a key and then puts with
// ignore_value or ignore_lease on a key inside that range passes validation,
// and the apply panics (txn/put.go: prevKV.KVs[0] on an empty slice). Such
// puts are turned into plain puts when the txn has a from-key delete.
func avoidEtcdFromKeyDeletePanic(r *pb.TxnRequest) {
	var fromKeyDelete bool
	var puts []*pb.PutRequest
	var walk func(*pb.TxnRequest)
	walk = func(t *pb.TxnRequest) {
		for _, op := range append(append([]*pb.RequestOp(nil), t.Success...), t.Failure...) {
			switch {
			case op.GetRequestDeleteRange() != nil:
				fromKeyDelete = fromKeyDelete || string(op.GetRequestDeleteRange().RangeEnd) == "\x00"
			case op.GetRequestPut() != nil:
				puts = append(puts, op.GetRequestPut())
			case op.GetRequestTxn() != nil:
				walk(op.GetRequestTxn())
			}
		}
	}
	walk(r)
	if fromKeyDelete {
		for _, p := range puts {
			p.IgnoreValue, p.IgnoreLease = false, false
		}
	}
}
