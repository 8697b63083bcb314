//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const (
	diffDefaultSeed = 20260101
	diffDefaultOps  = 400
)

// envInt reads an integer override from the environment.
func envInt(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

// diffOutcome is a response or a gRPC error, as the wire carried it.
type diffOutcome struct {
	resp proto.Message // nil on error
	code string
	msg  string
}

func (o diffOutcome) String() string {
	if o.resp == nil {
		return fmt.Sprintf("error code=%s message=%q", o.code, o.msg)
	}
	return fmt.Sprintf("%T %s", o.resp, prototext.Format(o.resp))
}

func (op diffOp) String() string {
	var m proto.Message
	switch {
	case op.Range != nil:
		m = op.Range
	case op.Put != nil:
		m = op.Put
	case op.Delete != nil:
		m = op.Delete
	case op.Txn != nil:
		m = op.Txn
	case op.Compact != nil:
		m = op.Compact
	}
	return fmt.Sprintf("%T %s", m, prototext.MarshalOptions{}.Format(m))
}

func runDiffOp(ctx context.Context, kv pb.KVClient, op diffOp) diffOutcome {
	var resp proto.Message
	var err error
	switch {
	case op.Range != nil:
		resp, err = kv.Range(ctx, op.Range)
	case op.Put != nil:
		resp, err = kv.Put(ctx, op.Put)
	case op.Delete != nil:
		resp, err = kv.DeleteRange(ctx, op.Delete)
	case op.Txn != nil:
		resp, err = kv.Txn(ctx, op.Txn)
	case op.Compact != nil:
		resp, err = kv.Compact(ctx, op.Compact)
	default:
		panic("empty diffOp")
	}
	if err != nil {
		st := status.Convert(err)
		return diffOutcome{code: st.Code().String(), msg: st.Message()}
	}
	return diffOutcome{resp: normalizeHeaders(resp)}
}

var responseHeaderName = (&pb.ResponseHeader{}).ProtoReflect().Descriptor().FullName()

// normalizeHeaders returns a copy of m with cluster_id, member_id and
// raft_term cleared in every ResponseHeader, nested ones included: they differ
// between clusters by design.
func normalizeHeaders(m proto.Message) proto.Message {
	m = proto.Clone(m)
	clearHeaderIDs(m.ProtoReflect())
	return m
}

func clearHeaderIDs(m protoreflect.Message) {
	if h, ok := m.Interface().(*pb.ResponseHeader); ok && m.Descriptor().FullName() == responseHeaderName {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := range v.List().Len() {
				clearHeaderIDs(v.List().Get(i).Message())
			}
		case fd.IsMap():
		default:
			clearHeaderIDs(v.Message())
		}
		return true
	})
}

// sameOutcome compares two outcomes: responses with proto.Equal, errors by
// gRPC code and message.
func sameOutcome(a, b diffOutcome) bool {
	if (a.resp == nil) != (b.resp == nil) {
		return false
	}
	if a.resp == nil {
		return a.code == b.code && a.msg == b.msg
	}
	return proto.Equal(a.resp, b.resp)
}

// TestDifferential sends one seeded stream of random KV requests to a fresh
// etcd and a fresh subject through the raw gRPC stubs and requires identical
// responses. Reproduce with E2E_DIFF_SEED=<seed> (and E2E_DIFF_OPS=<n>).
func TestDifferential(t *testing.T) {
	seed := envInt(t, "E2E_DIFF_SEED", diffDefaultSeed)
	ops := int(envInt(t, "E2E_DIFF_OPS", diffDefaultOps))
	maxMismatches := int(envInt(t, "E2E_DIFF_MAX_MISMATCHES", 1))
	subject := subjectKind(t)
	t.Logf("differential etcd vs %s: seed %d, %d ops (E2E_DIFF_SEED=%d E2E_DIFF_OPS=%d to reproduce)", subject, seed, ops, seed, ops)

	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subject)
	refKV, subKV := ref.KV(), sub.KV()
	gen := newDiffGen(seed)
	mismatches := 0
	counts := map[string]int{}
	for i := range ops {
		op := gen.next()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		want := runDiffOp(ctx, refKV, op)
		got := runDiffOp(ctx, subKV, op)
		cancel()
		if want.resp == nil {
			counts["error "+want.code]++
		} else {
			counts[fmt.Sprintf("%T", want.resp)]++
		}
		if want.code == "DeadlineExceeded" || want.code == "Unavailable" {
			t.Fatalf("op %d (seed %d): reference etcd failed: %v\nop: %v", i, seed, want, op)
		}
		if !sameOutcome(want, got) {
			mismatches++
			t.Errorf("MISMATCH at op %d (seed %d, reproduce: E2E_DIFF_SEED=%d E2E_DIFF_OPS=%d)\nop:    %v\ndiff (-etcd +%s):\n%s\netcd:  %v\n%s: %v",
				i, seed, seed, i+1, op, subject, lineDiff(want.String(), got.String()), want, subject, got)
			if mismatches >= maxMismatches {
				t.FailNow()
			}
		}
		gen.observe(op, want)
	}
	t.Logf("outcomes: %v", counts)
	checkDiffCoverage(t, counts)
}

// observe updates the generator's view of the reference store.
func (g *diffGen) observe(op diffOp, o diffOutcome) {
	if o.resp == nil {
		return
	}
	if h, ok := o.resp.ProtoReflect().Interface().(interface{ GetHeader() *pb.ResponseHeader }); ok {
		g.revision = max(g.revision, h.GetHeader().GetRevision())
	}
	if op.Compact != nil {
		g.compacted = max(g.compacted, op.Compact.Revision)
	}
}

// lineDiff is a minimal LCS line diff of two short texts: the lines only a
// has are marked "-", the lines only b has "+", with one line of context.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		mark byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			lines = append(lines, line{'+', y[j]})
			j++
		default:
			lines = append(lines, line{'-', x[i]})
			i++
		}
	}
	var out []string
	for k, l := range lines {
		near := l.mark != ' ' || (k > 0 && lines[k-1].mark != ' ') || (k+1 < len(lines) && lines[k+1].mark != ' ')
		if near {
			out = append(out, string(l.mark)+" "+l.text)
		}
	}
	return strings.Join(out, "\n")
}

// checkDiffCoverage fails a run that exercised too little to mean anything,
// e.g. because every request failed the same way on both sides.
func checkDiffCoverage(t *testing.T, counts map[string]int) {
	t.Helper()
	for _, kind := range []string{"*etcdserverpb.RangeResponse", "*etcdserverpb.PutResponse", "*etcdserverpb.DeleteRangeResponse", "*etcdserverpb.TxnResponse", "*etcdserverpb.CompactionResponse"} {
		if counts[kind] == 0 {
			t.Errorf("coverage: no successful %s in this run", kind)
		}
	}
	errs := 0
	for k, n := range counts {
		if len(k) > 6 && k[:6] == "error " {
			errs += n
		}
	}
	if errs == 0 {
		t.Errorf("coverage: no error responses in this run")
	}
}

// TestDiffCompareCanFail proves the comparison sees the differences that
// matter and ignores the ones that don't (no processes needed).
func TestDiffCompareCanFail(t *testing.T) {
	mk := func(cluster uint64, mod int64) diffOutcome {
		return diffOutcome{resp: normalizeHeaders(&pb.TxnResponse{
			Header: &pb.ResponseHeader{ClusterId: cluster, MemberId: cluster, RaftTerm: cluster, Revision: 9},
			Responses: []*pb.ResponseOp{{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{
				Header: &pb.ResponseHeader{ClusterId: cluster, Revision: 9},
				Kvs:    []*mvccpb.KeyValue{{Key: []byte("k"), ModRevision: mod}},
			}}}},
		})}
	}
	if !sameOutcome(mk(1, 5), mk(2, 5)) {
		t.Errorf("outcomes differing only in cluster ids compare unequal")
	}
	if sameOutcome(mk(1, 5), mk(1, 6)) {
		t.Errorf("outcomes differing in a nested mod_revision compare equal")
	}
	if sameOutcome(diffOutcome{code: "InvalidArgument", msg: "a"}, diffOutcome{code: "InvalidArgument", msg: "b"}) {
		t.Errorf("errors differing in message compare equal")
	}
	if sameOutcome(mk(1, 5), diffOutcome{code: "Unimplemented"}) {
		t.Errorf("a response and an error compare equal")
	}
}
