package node

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func rangeOp(serializable bool) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Serializable: serializable}}}
}

func txnOp(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

// TestIsSerializableTxn: a read-only txn skips the ReadIndex barrier only
// if every range in either branch, nested txns included, is serializable.
func TestIsSerializableTxn(t *testing.T) {
	for name, tc := range map[string]struct {
		req  *pb.TxnRequest
		want bool
	}{
		"empty":                   {&pb.TxnRequest{}, true},
		"serializable success":    {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true), rangeOp(true)}}, true},
		"one linearizable":        {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true), rangeOp(false)}}, false},
		"linearizable in failure": {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true)}, Failure: []*pb.RequestOp{rangeOp(false)}}, false},
		"nested serializable": {&pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(true)}})}}, true},
		"nested linearizable": {&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(true),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(false)}})}})}}, false},
	} {
		if got := isSerializableTxn(tc.req); got != tc.want {
			t.Errorf("%s: isSerializableTxn = %v, want %v", name, got, tc.want)
		}
	}
}

// TestStartAdmission: the core refuses bad requests with etcd's errors
// before they reach raft, and applies the quota to what adds data only.
func TestStartAdmission(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) {
		c.Limits = Limits{MaxRequestBytes: 1024, MaxTxnOps: 2}
	})
	h.leader()
	big := make([]byte, 2048)
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	for name, tc := range map[string]struct {
		req  Request
		want error
	}{
		"too large":      {Request{Put: &pb.PutRequest{Key: []byte("k"), Value: big}}, rpctypes.ErrGRPCRequestTooLarge},
		"empty key":      {Request{Put: &pb.PutRequest{}}, rpctypes.ErrGRPCEmptyKey},
		"too many ops":   {Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{put("a"), put("b"), put("c")}}}, rpctypes.ErrGRPCTooManyOps},
		"duplicate key":  {Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{put("a"), put("a")}}}, rpctypes.ErrGRPCDuplicateKey},
		"range no key":   {Request{Range: &pb.RangeRequest{}}, rpctypes.ErrGRPCEmptyKey},
		"delete no key":  {Request{DeleteRange: &pb.DeleteRangeRequest{}}, rpctypes.ErrGRPCEmptyKey},
		"future compact": {Request{Compaction: &pb.CompactionRequest{Revision: 99}}, rpctypes.ErrGRPCFutureRev},
	} {
		if _, err := h.serve(1, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if h.node(1).Store().Rev() != 1 {
		t.Fatalf("a refused request changed the keyspace: revision %d", h.node(1).Store().Rev())
	}
}

func TestQuotaRefusesOnlyWhatAddsData(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.Limits.QuotaBackendBytes = 1 })
	h.leader()
	if _, err := h.serve(1, Request{Put: &pb.PutRequest{Key: []byte("a")}}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("put over quota: %v, want %v", err, rpctypes.ErrGRPCNoSpace)
	}
	if _, err := h.serve(1, Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 60}}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("lease grant over quota: %v, want %v", err, rpctypes.ErrGRPCNoSpace)
	}
	if _, err := h.serve(1, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}); err != nil {
		t.Fatalf("delete over quota: %v", err)
	}
	if _, err := h.serve(1, Request{Range: &pb.RangeRequest{Key: []byte("a")}}); err != nil {
		t.Fatalf("range over quota: %v", err)
	}
}

// TestLearnerRule: a learner serves serializable ranges and its own
// attribute publication, nothing else.
func TestLearnerRule(t *testing.T) {
	for name, tc := range map[string]struct {
		req  Request
		want bool
	}{
		"serializable range": {Request{Range: &pb.RangeRequest{Key: []byte("a"), Serializable: true}}, true},
		"linearizable range": {Request{Range: &pb.RangeRequest{Key: []byte("a")}}, false},
		"put":                {Request{Put: &pb.PutRequest{Key: []byte("a")}}, false},
		"serializable txn":   {Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true)}}}, false},
		"keep-alive":         {Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: 1}}, false},
		"attributes":         {Request{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{Member_ID: 1}}, true},
	} {
		err := tc.req.check(DefaultLimits, true)
		if got := !errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner); got != tc.want {
			t.Errorf("%s: served by a learner = %v (%v), want %v", name, got, err, tc.want)
		}
		if err := tc.req.check(DefaultLimits, false); errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner) {
			t.Errorf("%s: refused on a voter: %v", name, err)
		}
	}
}

// TestServeLocal: a serializable read is served without the loop, with a
// complete header; a linearizable one is not served there.
func TestServeLocal(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.ClusterID = 7 })
	h.leader()
	h.put(1, "a", "1")
	c, ok := h.node(1).ServeLocal(Request{Range: &pb.RangeRequest{Key: []byte("a"), Serializable: true}})
	if !ok {
		t.Fatal("a serializable range was not served locally")
	}
	resp, err := c.Result()
	r, _ := resp.(*pb.RangeResponse)
	if err != nil || len(r.GetKvs()) != 1 || string(r.GetKvs()[0].GetValue()) != "1" {
		t.Fatalf("serializable range: %v, %v", resp, err)
	}
	if hd := r.GetHeader(); hd.GetClusterId() != 7 || hd.GetMemberId() != 1 || hd.GetRevision() != 2 || hd.GetRaftTerm() == 0 {
		t.Fatalf("header %v", hd)
	}
	if _, ok := h.node(1).ServeLocal(Request{Range: &pb.RangeRequest{Key: []byte("a")}}); ok {
		t.Fatal("a linearizable range was served without its barrier")
	}
	if _, ok := h.node(1).ServeLocal(Request{Put: &pb.PutRequest{Key: []byte("a")}}); ok {
		t.Fatal("a put was served locally")
	}
}

// TestMemberDecodesNoOwnProposal: a member's own proposal comes back in
// an entry with the bytes it encoded (a follower's through the leader);
// the member applies it from the request it kept, every member applies
// the same write, and the cache is empty afterwards.
func TestMemberDecodesNoOwnProposal(t *testing.T) {
	for _, proposer := range []string{"leader", "follower"} {
		t.Run(proposer, func(t *testing.T) {
			h := newHarness(t, []uint64{1, 2, 3}, nil)
			id := h.inRole(proposer)
			rid := h.node(id).Start(Request{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("v")}})
			h.processOnce(id)
			if n := len(h.node(id).proposals.byID); n != 1 {
				t.Fatalf("%s cached %d proposals, want 1", proposer, n)
			}
			h.settle()
			if _, err := h.mustComplete(id, rid).Result(); err != nil {
				t.Fatal(err)
			}
			if c := h.node(id).proposals; len(c.byID) != 0 || c.bytes != 0 {
				t.Fatalf("%s's cache after apply: %d proposals, %d bytes", proposer, len(c.byID), c.bytes)
			}
			for _, m := range h.ids {
				if v, _ := h.get(m, "a"); v != "v" {
					t.Fatalf("member %d: a=%q", m, v)
				}
			}
		})
	}
}

// TestFollowerForgetsProposalsOnLeaderChange: a proposal forwarded to a
// leader that is gone may never apply; the follower drops what it kept
// when the leadership changes, so such proposals do not pile up.
func TestFollowerForgetsProposalsOnLeaderChange(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	lead := h.leader()
	follower := h.ids[0]
	if follower == lead {
		follower = h.ids[1]
	}
	// The leader hears nothing more: the forwarded proposal is lost.
	h.drop = func(m *raftpb.Message) bool { return m.GetTo() == lead || m.GetFrom() == lead }
	h.node(follower).Start(Request{Put: &pb.PutRequest{Key: []byte("lost")}})
	h.processOnce(follower)
	if n := len(h.node(follower).proposals.byID); n != 1 {
		t.Fatalf("follower cached %d proposals, want 1", n)
	}
	for range maxTicks {
		if st := h.node(follower).Status(); st.Leader != lead && st.Leader != 0 {
			break
		}
		h.tick()
	}
	if st := h.node(follower).Status(); st.Leader == lead || st.Leader == 0 {
		t.Fatalf("no new leader after %d ticks: %+v", maxTicks, st)
	}
	if n := len(h.node(follower).proposals.byID); n != 0 {
		t.Fatalf("follower kept %d proposals across a change of leader", n)
	}
}

// TestWriteWaitsForLeader: a write started while no leader is known is
// proposed again every tick, applies once a leader is elected, and fails
// with "request timed out" if none is within RequestTimeoutTicks.
func TestWriteWaitsForLeader(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.RequestTimeoutTicks = 40 })
	rid := h.node(1).Start(Request{Put: &pb.PutRequest{Key: []byte("a")}})
	h.settle()
	if _, ok := h.completion(1, rid); ok {
		t.Fatal("a write completed before any leader existed")
	}
	h.leader()
	for range 5 {
		h.tick()
	}
	if _, err := h.mustComplete(1, rid).Result(); err != nil {
		t.Fatalf("parked write: %v", err)
	}

	lonely := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.RequestTimeoutTicks = 5 })
	lonely.drop = func(*raftpb.Message) bool { return true }
	rid = lonely.node(1).Start(Request{Put: &pb.PutRequest{Key: []byte("a")}})
	for range 5 {
		lonely.tick()
	}
	if _, err := lonely.mustComplete(1, rid).Result(); !errors.Is(err, rpctypes.ErrGRPCTimeout) {
		t.Fatalf("write without a leader: %v, want %v", err, rpctypes.ErrGRPCTimeout)
	}
}

// TestRequestID reads the ID of encoded requests of every shape without
// decoding them, and refuses bytes that are not a request.
func TestRequestID(t *testing.T) {
	for _, ir := range []*pb.InternalRaftRequest{
		{Header: &pb.RequestHeader{ID: 1}, Put: &pb.PutRequest{Key: []byte("k"), Value: make([]byte, 300)}},
		{Header: &pb.RequestHeader{ID: 1 << 60}, Txn: &pb.TxnRequest{}},
		{Header: &pb.RequestHeader{ID: 42, Username: "u"}, LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}},
	} {
		data, err := proto.Marshal(ir)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := requestID(data); !ok || id != ir.GetHeader().GetID() {
			t.Errorf("requestID(%v) = %d, %v", ir, id, ok)
		}
	}
	noHeader, _ := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}})
	for name, data := range map[string][]byte{"no header": noHeader, "garbage": {0xff, 0xff, 0xff}, "empty": nil} {
		if id, ok := requestID(data); ok {
			t.Errorf("%s: requestID = %d, true", name, id)
		}
	}
}

// TestPendingProposalCountedOnce: a write parked for want of a leader is
// pending once (as parked, not also as a kept proposal), and nothing is
// pending once it applied after a leader appeared.
func TestPendingProposalCountedOnce(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	rid := h.node(1).Start(Request{Put: &pb.PutRequest{Key: []byte("a")}})
	out, err := h.node(1).Process() // Process publishes the count
	if err != nil || len(out.Done) != 0 {
		t.Fatalf("Process without a leader: %v, %d completions", err, len(out.Done))
	}
	if got := h.node(1).Metrics().ProposalsPending; got != 1 {
		t.Fatalf("pending proposals with one parked write: %d, want 1", got)
	}
	h.leader()
	for range 5 {
		h.tick()
	}
	if _, err := h.mustComplete(1, rid).Result(); err != nil {
		t.Fatalf("parked write: %v", err)
	}
	if got := h.node(1).Metrics().ProposalsPending; got != 0 {
		t.Fatalf("pending proposals after the write applied: %d, want 0", got)
	}
}
