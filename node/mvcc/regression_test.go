package mvcc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// step is one write of a regression history: a put (value set), a delete
// of [key, end) (del set), or a compaction at compact, followed by
// complete physical removal when physical is set.
type step struct {
	key, value, end string
	del             bool
	compact         int64
	physical        bool
}

func put(key, value string) step { return step{key: key, value: value} }

func del(key, end string) step { return step{key: key, end: end, del: true} }

func compact(rev int64, physical bool) step { return step{compact: rev, physical: physical} }

// rangeCase is one read and its expected answer, as real etcd 3.7.3 gives
// it: keys as key@create/mod=value, the count and more.
type rangeCase struct {
	req   *pb.RangeRequest
	kvs   string
	count int64
	more  bool
}

func (h *harness) apply(s step) {
	h.t.Helper()
	switch {
	case s.compact != 0:
		h.write(func(w *Writer) {
			if _, err := w.Compact(&pb.CompactionRequest{Revision: s.compact}); err != nil {
				h.t.Fatalf("compact %d: %v", s.compact, err)
			}
		})
		for s.physical && h.s.CompactPending() {
			h.compactStep(1)
		}
	case s.del:
		h.del(s.key, s.end)
	default:
		h.put(s.key, s.value)
	}
}

func (h *harness) compactStep(maxKeys int) {
	h.t.Helper()
	b := h.db.NewBatch()
	if _, err := h.s.CompactStep(b, maxKeys); err != nil {
		h.t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		h.t.Fatal(err)
	}
}

func describeKVs(resp *pb.RangeResponse) string {
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, fmt.Sprintf("%q@%d/%d=%q", kv.Key, kv.CreateRevision, kv.ModRevision, kv.Value))
	}
	return strings.Join(out, " ")
}

func fromKey(key string, rev int64) *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte{0}, Revision: rev}
}

func prefix(p string, rev, limit int64) *pb.RangeRequest {
	end := []byte(p)
	end[len(end)-1]++
	return &pb.RangeRequest{Key: []byte(p), RangeEnd: end, Revision: rev, Limit: limit}
}

// TestRangeRegressions pins reads that differed from etcd 3.7.3 in
// differential and linearizability tests: compaction must keep keys whose
// only versions are newer than the compacted revision, a historical range
// must skip (not mislabel) keys created after its revision, keys with 0x00
// must be found by historical seeks, and limit/count/more must skip
// tombstones at the current revision.
func TestRangeRegressions(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		reads []rangeCase
	}{{
		name:  "compaction keeps a key created after it",
		steps: []step{put("foo", "1"), put("a", "1"), put("new", "n"), compact(2, false)},
		reads: []rangeCase{
			{req: &pb.RangeRequest{Key: []byte("new")}, kvs: `"new"@4/4="n"`, count: 1},
			{req: fromKey("", 0), kvs: `"a"@3/3="1" "foo"@2/2="1" "new"@4/4="n"`, count: 3},
		},
	}, {
		name:  "physical compaction keeps a key created after it",
		steps: []step{put("foo", "1"), put("a", "1"), put("new", "n"), compact(2, true)},
		reads: []rangeCase{
			{req: &pb.RangeRequest{Key: []byte("new")}, kvs: `"new"@4/4="n"`, count: 1},
			{req: fromKey("", 0), kvs: `"a"@3/3="1" "foo"@2/2="1" "new"@4/4="n"`, count: 3},
			{req: fromKey("", 2), kvs: `"foo"@2/2="1"`, count: 1},
		},
	}, {
		name: "physical compaction keeps the single version above it",
		steps: []step{put("a", "1"), put("b", "1"), put("c", "1"), put("z1", "1"), put("z2", "1"),
			put("a", "2"), compact(6, true)},
		reads: []rangeCase{
			{req: &pb.RangeRequest{Key: []byte("z2")}, kvs: `"z2"@6/6="1"`, count: 1},
			{req: fromKey("z", 0), kvs: `"z1"@5/5="1" "z2"@6/6="1"`, count: 2},
			{req: fromKey("", 6), kvs: `"a"@2/2="1" "b"@3/3="1" "c"@4/4="1" "z1"@5/5="1" "z2"@6/6="1"`, count: 5},
		},
	}, {
		name: "historical prefix skips keys created later",
		steps: []step{put("foo", "1"), put("foo", "2"), put("foo/a", "a"), put("foo/b", "b"),
			put("foo/c", "c")},
		reads: []rangeCase{
			{req: prefix("foo", 4, 0), kvs: `"foo"@2/3="2" "foo/a"@4/4="a"`, count: 2},
			{req: prefix("foo", 4, 1), kvs: `"foo"@2/3="2"`, count: 2, more: true},
			{req: prefix("foo/", 5, 0), kvs: `"foo/a"@4/4="a" "foo/b"@5/5="b"`, count: 2},
			{req: fromKey("foo/b", 4)},
		},
	}, {
		name: "historical range before every key is empty",
		steps: []step{put("a/2", "1"), put("b", "1"), put("b", "2"), del("b", ""), put("c", "1"),
			put("c", "2"), put("c", "2"), put("c", "2")},
		reads: []rangeCase{
			{req: &pb.RangeRequest{Key: []byte("a/2"), RangeEnd: []byte("\xff\xff"), Revision: 1}},
			{req: &pb.RangeRequest{Key: []byte("a/3"), RangeEnd: []byte("\xff\xff"), Revision: 5}},
			{req: fromKey("", 6), kvs: `"a/2"@2/2="1" "c"@6/6="1"`, count: 2},
			{req: fromKey("b", 4), kvs: `"b"@3/4="2"`, count: 1},
		},
	}, {
		name: "from-key at an old revision skips keys created later",
		steps: []step{put("a", "1"), put("b", "1"), del("a", ""), put("c", "1"), put("a", "2"),
			put("d", "1")},
		reads: []rangeCase{
			{req: fromKey("", 3), kvs: `"a"@2/2="1" "b"@3/3="1"`, count: 2},
			{req: fromKey("", 5), kvs: `"b"@3/3="1" "c"@5/5="1"`, count: 2},
			{req: fromKey("", 6), kvs: `"a"@6/6="2" "b"@3/3="1" "c"@5/5="1"`, count: 3},
		},
	}, {
		name: "historical seeks find keys with 0x00",
		steps: []step{put("a", "1"), put("b\x00", "1"), put("b\xff", "1"), put("b", "1"), put("b\x00", "2"),
			put("b\x00\x00", "1"), put("b\xff", "2")},
		reads: []rangeCase{
			{req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 5, KeysOnly: true},
				kvs: `"a"@2/2="" "b"@5/5="" "b\x00"@3/3="" "b\xff"@4/4=""`, count: 4},
			{req: &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("b\x01"), Revision: 4},
				kvs: `"b\x00"@3/3="1"`, count: 1},
			{req: &pb.RangeRequest{Key: []byte("b\x00"), RangeEnd: []byte("b\x00\x01"), Revision: 7},
				kvs: `"b\x00"@3/6="2" "b\x00\x00"@7/7="1"`, count: 2},
			{req: &pb.RangeRequest{Key: []byte("b\x00"), Revision: 5}, kvs: `"b\x00"@3/3="1"`, count: 1},
		},
	}, {
		name: "limit and count skip tombstones at the current revision",
		steps: []step{put("k0", "0"), put("k1", "1"), put("k2", "2"), put("k3", "3"), put("k4", "4"),
			put("k5", "5"), put("k6", "6"), put("k7", "7"), del("k1", ""), del("k3", "k5"), del("k7", ""),
			put("k3", "x")},
		reads: []rangeCase{
			{req: prefix("k", 0, 1), kvs: `"k0"@2/2="0"`, count: 5, more: true},
			{req: prefix("k", 0, 2), kvs: `"k0"@2/2="0" "k2"@4/4="2"`, count: 5, more: true},
			{req: prefix("k", 0, 4), kvs: `"k0"@2/2="0" "k2"@4/4="2" "k3"@13/13="x" "k5"@7/7="5"`, count: 5, more: true},
			{req: prefix("k", 0, 5), kvs: `"k0"@2/2="0" "k2"@4/4="2" "k3"@13/13="x" "k5"@7/7="5" "k6"@8/8="6"`, count: 5},
			{req: &pb.RangeRequest{Key: []byte("k1"), RangeEnd: []byte("k3"), Limit: 1},
				kvs: `"k2"@4/4="2"`, count: 1},
			{req: &pb.RangeRequest{Key: []byte("k7"), RangeEnd: []byte{0}}},
			{req: &pb.RangeRequest{Key: []byte("k3"), RangeEnd: []byte("k5"), Revision: 12}},
			{req: &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true}, count: 5},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, s := range tc.steps {
				h.apply(s)
			}
			for _, rc := range tc.reads {
				resp := h.get(proto.Clone(rc.req).(*pb.RangeRequest))
				if got := describeKVs(resp); got != rc.kvs || resp.Count != rc.count || resp.More != rc.more {
					t.Errorf("range %v:\n got  %s count %d more %v\n want %s count %d more %v",
						rc.req, got, resp.Count, resp.More, rc.kvs, rc.count, rc.more)
				}
			}
		})
	}
}

// TestNestedTxnHeaders pins etcd's txn headers: the outermost response has
// the revision after the txn, every nested txn response an empty non-nil
// header, and nested ranges, puts and deletes their own revisions (the
// range and delete see the txn's writes so far, a put the txn's revision).
func TestNestedTxnHeaders(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	rangeA := &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}
	inner := &pb.TxnRequest{Success: []*pb.RequestOp{rangeA, delOp("a", ""), putOp("b", false), rangeA}}
	kvsA := h.get(&pb.RangeRequest{Key: []byte("a")}).Kvs
	middle := &pb.TxnRequest{Success: []*pb.RequestOp{rangeA, {Request: &pb.RequestOp_RequestTxn{RequestTxn: inner}}}}
	var resp *pb.TxnResponse
	h.write(func(w *Writer) {
		var err error
		if resp, err = w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: middle}}}}); err != nil {
			t.Fatal(err)
		}
	})
	want := &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 3}, Succeeded: true, Responses: []*pb.ResponseOp{
		{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: true,
			Responses: []*pb.ResponseOp{
				{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{
					Header: &pb.ResponseHeader{Revision: 2}, Count: 1, Kvs: kvsA}}},
				{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: true,
					Responses: []*pb.ResponseOp{
						{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{
							Header: &pb.ResponseHeader{Revision: 2}, Count: 1, Kvs: kvsA}}},
						{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{
							Header: &pb.ResponseHeader{Revision: 3}, Deleted: 1}}},
						{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 3}}}},
						{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 3}}}},
					}}}},
			}}}},
	}}
	if !proto.Equal(resp, want) {
		t.Fatalf("txn response:\n got  %v\n want %v", resp, want)
	}
}
