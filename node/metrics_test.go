package node

import (
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestMetricsCount: the core counts applied writes by kind, served ranges,
// leader changes and refused proposals.
func TestMetricsCount(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	h.put(leader, "a", "1")
	h.put(leader, "b", "2")
	if _, err := h.serve(leader, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.serve(leader, Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("c")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.serve(leader, Request{Range: &pb.RangeRequest{Key: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	n := h.node(leader)
	n.Start(alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE))
	n.Start(Request{Put: &pb.PutRequest{Key: []byte("d")}}) // admitted, refused when it applies
	h.settle()
	m := n.Metrics()
	if m.Puts != 2 || m.Deletes != 1 || m.Txns != 1 || m.Ranges != 1 || m.LeaderChanges != 1 ||
		m.ProposalsPending != 0 || m.ProposalsFailed != 1 {
		t.Fatalf("metrics: %+v", m)
	}
	if m.WALSyncSeconds.Count == 0 || m.BackendCommitSeconds.Count == 0 {
		t.Fatalf("no commits timed: %+v", m)
	}
	follower := h.ids[0]
	if follower == leader {
		follower = h.ids[1]
	}
	if got := h.node(follower).Metrics(); got.Puts != 2 || got.Ranges != 0 {
		t.Fatalf("follower's metrics: %+v", got)
	}
}

// TestDurationHistogram: observations land in etcd's buckets, cumulative.
func TestDurationHistogram(t *testing.T) {
	var h durationHistogram
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count != 4 || s.Cumulative[0] != 2 || s.Cumulative[1] != 2 || s.Cumulative[2] != 3 || s.Cumulative[durationBuckets-1] != 3 {
		t.Fatalf("histogram %+v over buckets %v", s, DurationBucketsSeconds)
	}
	if DurationBucketsSeconds[durationBuckets-1] != 8.192 {
		t.Fatalf("last bucket %v, want etcd's 8.192 s", DurationBucketsSeconds[durationBuckets-1])
	}
}
