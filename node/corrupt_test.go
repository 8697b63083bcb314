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

// corruptTestTicks bounds the ticks a test waits for a check's verdict:
// several check intervals.
const corruptTestTicks = 60

// checkEvery turns on both checks, every few ticks.
func checkEvery(c *Config) {
	c.CorruptCheckTicks = 5
	c.CompactHashCheckTicks = 3
}

// putKeys writes count keys through node id; the last revision is
// returned.
func (h *harness) putKeys(id uint64, prefix string, count int) int64 {
	h.t.Helper()
	var rev int64
	for i := range count {
		rev = h.put(id, fmt.Sprintf("%s-%02d", prefix, i), "v")
	}
	return rev
}

func (h *harness) compact(id uint64, rev int64) {
	h.t.Helper()
	h.write(id, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
}

// tickUntilAlarm ticks until node id lists a CORRUPT alarm, or fails.
func (h *harness) tickUntilAlarm(id uint64) []*pb.AlarmMember {
	h.t.Helper()
	for range corruptTestTicks {
		if a := h.node(id).alarms.get(pb.AlarmType_CORRUPT); len(a) > 0 {
			return a
		}
		h.tick()
	}
	h.t.Fatalf("node %d: no CORRUPT alarm after %d ticks", id, corruptTestTicks)
	return nil
}

func corruptAlarm(member uint64) []*pb.AlarmMember {
	return []*pb.AlarmMember{{MemberID: member, Alarm: pb.AlarmType_CORRUPT}}
}

// A healthy cluster runs both checks many times, with writes and a
// compaction between them, and never raises an alarm.
func TestCorruptionChecksPassOnHealthyCluster(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, checkEvery)
	leader := h.leader()
	rev := h.putKeys(leader, "a", 40)
	h.compact(leader, rev-10)
	h.putKeys(leader, "b", 20)
	for range corruptTestTicks {
		h.tick()
	}
	if d := h.node(leader).corruption.decided; d < 5 {
		t.Fatalf("leader decided %d checks in %d ticks, want several", d, corruptTestTicks)
	}
	for _, id := range h.ids {
		if a := h.node(id).Alarms(); len(a) > 0 {
			t.Fatalf("node %d: alarms %v on a healthy cluster", id, a)
		}
	}
}

// A follower that applies a put with another value is found by the
// periodic check: the leader raises CORRUPT for it, every member lists
// it, and writes are refused with etcd's error.
func TestPeriodicCheckMarksCorruptFollower(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.CorruptCheckTicks = 5 })
	leader := h.leader()
	corrupt := h.followers(leader)[1]
	h.node(corrupt).cfg.Knobs.CorruptAppliedValue = true
	h.putKeys(leader, "a", 2*corruptPutEveryRevisions)
	got := h.tickUntilAlarm(leader)
	if !sameAlarms(got, corruptAlarm(corrupt)) {
		t.Fatalf("alarms %v, want CORRUPT of the corrupt follower %d", got, corrupt)
	}
	for _, id := range h.ids {
		if a := h.node(id).Alarms(); !sameAlarms(a, corruptAlarm(corrupt)) {
			t.Fatalf("node %d lists %v", id, a)
		}
	}
	rid := h.propose(leader, putReq("after", "v"))
	h.settle()
	if d := h.mustComplete(leader, rid); !errors.Is(d.Err, rpctypes.ErrGRPCCorrupt) {
		t.Fatalf("write under CORRUPT: %v, want %v", d.Err, rpctypes.ErrGRPCCorrupt)
	}
}

// When the leader itself is the odd one, the periodic check marks the
// first follower by ID, as etcd's leader does (it trusts its own hash);
// the compaction hash check, which goes by majority, marks the leader.
func TestCorruptLeaderPeriodicVersusCompactionCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		// marksLeader: the alarm names the leader, else its first follower.
		marksLeader bool
	}{
		{"periodic", func(c *Config) { c.CorruptCheckTicks = 5 }, false},
		{"compaction", func(c *Config) { c.CompactHashCheckTicks = 3 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []uint64{1, 2, 3}, tc.adjust)
			leader := h.leader()
			h.node(leader).cfg.Knobs.CorruptAppliedValue = true
			rev := h.putKeys(leader, "a", 2*corruptPutEveryRevisions)
			h.compact(leader, rev)
			want := h.followers(leader)[0]
			if tc.marksLeader {
				want = leader
			}
			if got := h.tickUntilAlarm(leader); !sameAlarms(got, corruptAlarm(want)) {
				t.Fatalf("alarms %v, want CORRUPT of %d", got, want)
			}
		})
	}
}

// followers are the members other than leader, by ID.
func (h *harness) followers(leader uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(h.ids), func(id uint64) bool { return id == leader })
}

// The verdicts themselves, as etcd's leader reaches them.
func TestHashCheckVerdicts(t *testing.T) {
	r := func(member uint64, compactRev int64, hash uint32) hashReport {
		return hashReport{member: member, compactRev: compactRev, hash: hash}
	}
	for _, tc := range []struct {
		name      string
		periodic  bool
		own       hashReport
		reports   []hashReport
		membersN  int
		wantMarks []uint64
	}{
		{"periodic all agree", true, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 7), r(3, 5, 7)}, 3, nil},
		{"periodic first differing follower", true, r(2, 5, 7), []hashReport{r(1, 5, 8), r(2, 5, 7), r(3, 5, 9)}, 3, []uint64{1}},
		{"periodic other compaction skipped", true, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 6, 8)}, 3, nil},
		{"compaction all agree", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 7)}, 3, nil},
		{"compaction minority marked", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 7)}, 3, []uint64{2}},
		{"compaction leader in minority", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 8)}, 3, []uint64{1}},
		{"compaction no quorum marks 0", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 9)}, 3, []uint64{0}},
		{"compaction missing reports count against quorum", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 5, 8)}, 3, []uint64{0}},
		{"compaction other compaction skipped", false, r(1, 5, 7), []hashReport{r(1, 5, 7), r(2, 6, 8), r(3, 5, 7)}, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			if tc.periodic {
				got = periodicMismatch(tc.own, tc.reports)
			} else {
				got = compactionMismatch(tc.own, tc.reports, tc.membersN)
			}
			if !slices.Equal(got, tc.wantMarks) {
				t.Fatalf("marked %v, want %v", got, tc.wantMarks)
			}
		})
	}
}

// The initial check refuses only a hash that differs at the same
// compacted revision, with etcd's error.
func TestInitialHashMismatch(t *testing.T) {
	own := &pb.HashKVResponse{Hash: 7, CompactRevision: 5}
	if err := InitialHashMismatch(0xab, own, []*pb.HashKVResponse{{Hash: 7, CompactRevision: 5}, {Hash: 8, CompactRevision: 6}}); err != nil {
		t.Fatalf("agreeing peers: %v", err)
	}
	err := InitialHashMismatch(0xab, own, []*pb.HashKVResponse{{Hash: 7, CompactRevision: 5}, {Hash: 8, CompactRevision: 5}})
	if err == nil || err.Error() != "ab found data inconsistency with peers" {
		t.Fatalf("differing peer: %v", err)
	}
}

// Check and report entries can never be taken for an etcd request, nor an
// etcd request for them.
func TestHashEntriesAreNotRequests(t *testing.T) {
	for _, req := range []*pb.InternalRaftRequest{putReq("k", "v"), {Header: &pb.RequestHeader{ID: 1}}, {Compaction: &pb.CompactionRequest{}}} {
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if isHashEntry(data) {
			t.Fatalf("%v encodes as a hash entry", req)
		}
	}
	for _, data := range [][]byte{encodeHashCheck(hashCheckPeriodic, 9), encodeHashReport(3, hashReport{member: 1, compactRev: 2, hash: 3}, 9)} {
		if !isHashEntry(data) {
			t.Fatalf("%x is not a hash entry", data)
		}
		if _, ok := requestID(data); ok {
			t.Fatalf("%x has a request ID", data)
		}
		if err := proto.Unmarshal(data, &pb.InternalRaftRequest{}); err == nil {
			t.Fatalf("%x decodes as an InternalRaftRequest", data)
		}
	}
}
