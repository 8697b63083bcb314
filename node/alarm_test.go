package node

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

func alarmReq(action pb.AlarmRequest_AlarmAction, member uint64, t pb.AlarmType) Request {
	return Request{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: t}}
}

func (h *harness) alarms(id uint64, t pb.AlarmType) []*pb.AlarmMember {
	h.t.Helper()
	resp, err := h.serve(id, alarmReq(pb.AlarmRequest_GET, 0, t))
	if err != nil {
		h.t.Fatalf("node %d: alarm list: %v", id, err)
	}
	return resp.(*pb.AlarmResponse).GetAlarms()
}

func sameAlarms(a, b []*pb.AlarmMember) bool {
	return slices.EqualFunc(a, b, func(x, y *pb.AlarmMember) bool { return proto.Equal(x, y) })
}

func putOp(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}}
}

func deleteOp(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key)}}}
}

// TestAlarmIsReplicatedState: an alarm raised through one member is listed
// by every member, survives a restart, refuses on every member the writes
// that add data (and only those), and clearing it lets them through again.
func TestAlarmIsReplicatedState(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	h.leader()
	h.put(1, "a", "1")
	nospace2 := &pb.AlarmMember{MemberID: 2, Alarm: pb.AlarmType_NOSPACE}
	resp, err := h.serve(3, alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE))
	if err != nil || !sameAlarms(resp.(*pb.AlarmResponse).GetAlarms(), []*pb.AlarmMember{nospace2}) {
		t.Fatalf("activate: %v %v", resp, err)
	}
	if rev := resp.(*pb.AlarmResponse).GetHeader().GetRevision(); rev != 2 {
		t.Fatalf("alarm response at revision %d, want the store's 2", rev)
	}
	for _, id := range h.ids {
		if got := h.node(id).Alarms(); !sameAlarms(got, []*pb.AlarmMember{nospace2}) {
			t.Fatalf("node %d alarms %v, want %v", id, got, nospace2)
		}
	}
	h.restart(3)
	h.leader()
	if got := h.alarms(3, pb.AlarmType_NONE); !sameAlarms(got, []*pb.AlarmMember{nospace2}) {
		t.Fatalf("after a restart node 3 lists %v", got)
	}
	if got := h.alarms(1, pb.AlarmType_CORRUPT); len(got) != 0 {
		t.Fatalf("CORRUPT alarms listed: %v", got)
	}
	refused := map[string]Request{
		"put":         {Put: &pb.PutRequest{Key: []byte("b")}},
		"txn put":     {Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{putOp("b")}}},
		"lease grant": {LeaseGrant: &pb.LeaseGrantRequest{TTL: 60}},
	}
	passed := map[string]Request{
		"range":      {Range: &pb.RangeRequest{Key: []byte("a")}},
		"delete":     {DeleteRange: &pb.DeleteRangeRequest{Key: []byte("zz")}},
		"txn delete": {Txn: &pb.TxnRequest{Success: []*pb.RequestOp{deleteOp("zz")}}},
		"compaction": {Compaction: &pb.CompactionRequest{Revision: 1}},
	}
	for _, id := range h.ids {
		for name, req := range refused {
			if _, err := h.serve(id, req); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
				t.Errorf("node %d: %s under NOSPACE: %v, want %v", id, name, err, rpctypes.ErrGRPCNoSpace)
			}
		}
	}
	for name, req := range passed {
		if _, err := h.serve(2, req); err != nil {
			t.Errorf("%s under NOSPACE: %v", name, err)
		}
	}
	resp, err = h.serve(2, alarmReq(pb.AlarmRequest_DEACTIVATE, 2, pb.AlarmType_NOSPACE))
	if err != nil || !sameAlarms(resp.(*pb.AlarmResponse).GetAlarms(), []*pb.AlarmMember{nospace2}) {
		t.Fatalf("deactivate: %v %v", resp, err)
	}
	resp, err = h.serve(2, alarmReq(pb.AlarmRequest_DEACTIVATE, 2, pb.AlarmType_NOSPACE))
	if err != nil || len(resp.(*pb.AlarmResponse).GetAlarms()) != 0 {
		t.Fatalf("deactivating an inactive alarm answered %v %v, want no alarm", resp, err)
	}
	h.put(2, "b", "2")
}

// TestAlarmRefusesAtApply: a write admitted before the alarm applied is
// still refused when it applies after it, on every member alike; under
// CORRUPT even deletes are refused.
func TestAlarmRefusesAtApply(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	h.put(leader, "a", "1")
	for _, tc := range []struct {
		alarm pb.AlarmType
		req   Request
		want  error
	}{
		{pb.AlarmType_NOSPACE, Request{Put: &pb.PutRequest{Key: []byte("b")}}, rpctypes.ErrGRPCNoSpace},
		{pb.AlarmType_CORRUPT, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}, rpctypes.ErrGRPCCorrupt},
	} {
		n := h.node(leader)
		n.Start(alarmReq(pb.AlarmRequest_ACTIVATE, 1, tc.alarm))
		rid := n.Start(tc.req) // proposed behind the alarm, admitted before it applied
		h.settle()
		if _, err := h.mustComplete(leader, rid).Result(); !errors.Is(err, tc.want) {
			t.Fatalf("%v: %v, want %v", tc.alarm, err, tc.want)
		}
		if _, err := h.serve(leader, alarmReq(pb.AlarmRequest_DEACTIVATE, 1, tc.alarm)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range h.ids {
		if rev := h.node(id).Store().Rev(); rev != 2 {
			t.Fatalf("node %d at revision %d: a refused write applied", id, rev)
		}
	}
}

// TestQuotaRaisesNoSpace: a put that would pass the quota is refused and
// raises the member's NOSPACE alarm once; clearing the alarm without
// freeing space raises it again at the next such put.
func TestQuotaRaisesNoSpace(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.Limits.QuotaBackendBytes = 1 })
	h.leader()
	want := []*pb.AlarmMember{{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}}
	for range 3 {
		if _, err := h.serve(1, Request{Put: &pb.PutRequest{Key: []byte("a")}}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
			t.Fatalf("put over quota: %v", err)
		}
		if got := h.node(1).Alarms(); !sameAlarms(got, want) {
			t.Fatalf("alarms %v, want %v", got, want)
		}
	}
	if _, err := h.serve(1, alarmReq(pb.AlarmRequest_DEACTIVATE, 1, pb.AlarmType_NOSPACE)); err != nil {
		t.Fatal(err)
	}
	if got := h.node(1).Alarms(); len(got) != 0 {
		t.Fatalf("alarms after disarm: %v", got)
	}
	if _, err := h.serve(1, Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("lease grant over quota: %v", err)
	}
	h.settle()
	if got := h.node(1).Alarms(); !sameAlarms(got, want) {
		t.Fatalf("alarms %v after a second refusal, want %v", got, want)
	}
}

// TestQuotaCost pins etcd's estimate of what a request adds.
func TestQuotaCost(t *testing.T) {
	for name, tc := range map[string]struct {
		req  Request
		want int
	}{
		"put":         {Request{Put: &pb.PutRequest{Key: []byte("ab"), Value: []byte("xyz")}}, 256 + 5},
		"lease grant": {Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 1}}, 64},
		"delete":      {Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}, 0},
		"txn deletes": {Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{deleteOp("a")}}}, 0},
		"txn costlier branch": {Request{Txn: &pb.TxnRequest{
			Success: []*pb.RequestOp{putOp("a")},
			Failure: []*pb.RequestOp{putOp("b"), txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("c")}})},
		}}, 2 * (256 + 2)},
	} {
		if got := tc.req.quotaCostBytes(); got != tc.want {
			t.Errorf("%s: cost %d, want %d", name, got, tc.want)
		}
	}
}

// TestQuotaCountsAppliedBytes: between two samples of the database's size
// the quota counts the bytes of applied entries, so a burst of writes is
// refused once it passes the quota, not a sampling interval later.
func TestQuotaCountsAppliedBytes(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.leader()
	n := h.node(1)
	const valueBytes, allowedPuts = 1000, 10
	n.cfg.Limits.QuotaBackendBytes = n.dbSizeBytes + allowedPuts*valueBytes
	value := make([]byte, valueBytes)
	for i := range 2 * allowedPuts {
		_, err := h.serve(1, Request{Put: &pb.PutRequest{Key: []byte("k"), Value: value}})
		if errors.Is(err, rpctypes.ErrGRPCNoSpace) {
			if i < allowedPuts-2 || i > allowedPuts {
				t.Fatalf("refused at put %d, want about %d", i, allowedPuts)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%d puts of %d bytes passed a quota of %d more bytes without a tick", 2*allowedPuts, valueBytes, allowedPuts*valueBytes)
}

// TestSnapshotCarriesAlarms: a member that catches up by snapshot has the
// alarms raised while it was down, and refuses writes as the others do.
func TestSnapshotCarriesAlarms(t *testing.T) {
	h, leader, follower := laggingFollower(t, TestingKnobs{})
	if _, err := h.serve(leader, alarmReq(pb.AlarmRequest_ACTIVATE, leader, pb.AlarmType_NOSPACE)); err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // enough entries after the alarm for the log to be truncated past it
		if _, err := h.serve(leader, Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(fmt.Sprint("k", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	h.open(follower)
	if !h.caughtUp(leader, follower) {
		t.Fatal("follower did not catch up")
	}
	if st := h.node(follower).RaftState(); st.FirstIndex <= 3 {
		t.Fatalf("follower's log starts at %d: it caught up from the log, not a snapshot", st.FirstIndex)
	}
	want := []*pb.AlarmMember{{MemberID: leader, Alarm: pb.AlarmType_NOSPACE}}
	if got := h.node(follower).Alarms(); !sameAlarms(got, want) {
		t.Fatalf("follower's alarms after the snapshot: %v, want %v", got, want)
	}
	if _, err := h.serve(follower, Request{Put: &pb.PutRequest{Key: []byte("x")}}); !errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		t.Fatalf("put on the follower: %v, want %v", err, rpctypes.ErrGRPCNoSpace)
	}
}

// TestHashKVEqualOnEveryMember: HashKV answers, at the same revision, the
// same hash and compacted revision on every member, with etcd's fields;
// a compaction changes what is hashed at the compacted revision but not the
// hash of later revisions.
func TestHashKVEqualOnEveryMember(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	for i := range 6 {
		h.put(leader, fmt.Sprint("k", i%3), fmt.Sprint(i))
	}
	resp, err := h.node(1).HashKV(&pb.HashKVRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCompactRevision() != -1 || resp.GetHashRevision() != 7 || resp.GetHeader().GetRevision() != 7 || resp.GetHeader().GetMemberId() != 1 {
		t.Fatalf("HashKV before any compaction: %v", resp)
	}
	if _, err := h.serve(leader, Request{Compaction: &pb.CompactionRequest{Revision: 5}}); err != nil {
		t.Fatal(err)
	}
	for rev := int64(5); rev <= 7; rev++ {
		var first *pb.HashKVResponse
		for _, id := range h.ids {
			r, err := h.node(id).HashKV(&pb.HashKVRequest{Revision: rev})
			if err != nil {
				t.Fatal(err)
			}
			if r.GetCompactRevision() != 5 || r.GetHashRevision() != rev {
				t.Fatalf("node %d HashKV(%d): %v", id, rev, r)
			}
			if first != nil && r.GetHash() != first.GetHash() {
				t.Fatalf("HashKV(%d): node %d hash %x, node 1 %x", rev, id, r.GetHash(), first.GetHash())
			}
			first = r
		}
	}
	if _, err := h.node(1).HashKV(&pb.HashKVRequest{Revision: 4}); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("HashKV below the compaction: %v", err)
	}
	if _, err := h.node(1).HashKV(&pb.HashKVRequest{Revision: 8}); !errors.Is(err, rpctypes.ErrGRPCFutureRev) {
		t.Fatalf("HashKV in the future: %v", err)
	}
	hash, err := h.node(2).Hash()
	if err != nil || hash.GetHeader().GetRevision() != 7 {
		t.Fatalf("Hash: %v %v", hash, err)
	}
}

// TestStatusAndDefragment: Status reports the database's sizes and the
// quota, versions, raft positions and active alarms as errors; Defragment
// runs while the member serves.
func TestStatusAndDefragment(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.Limits.QuotaBackendBytes = 1 << 30 })
	h.leader()
	for i := range 50 {
		h.put(1, fmt.Sprint("k", i), "value")
	}
	if _, err := h.serve(1, alarmReq(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_CORRUPT)); err != nil {
		t.Fatal(err)
	}
	st := h.node(1).StatusResponse()
	if st.GetVersion() != "3.7.3" || st.GetStorageVersion() != "3.7.0" || st.GetDbSize() <= 0 ||
		st.GetDbSizeInUse() <= 0 || st.GetDbSizeInUse() > st.GetDbSize() || st.GetDbSizeQuota() != 1<<30 ||
		st.GetLeader() != 1 || st.GetRaftAppliedIndex() == 0 || st.GetHeader().GetRevision() != 51 {
		t.Fatalf("status: %v", st)
	}
	if want := []string{"memberID:7 alarm:CORRUPT"}; !slices.Equal(st.GetErrors(), want) {
		t.Fatalf("status errors %q, want %q", st.GetErrors(), want)
	}
	d, err := h.node(1).Defragment(t.Context())
	if err != nil || d.GetHeader().GetRevision() != 51 {
		t.Fatalf("defragment: %v %v", d, err)
	}
	if v, ok := h.get(1, "k49"); !ok || v != "value" {
		t.Fatalf("k49 after defragment: %q %v", v, ok)
	}
}
