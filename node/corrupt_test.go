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
	// Every member kept the compaction's hash, and the leader compared the
	// whole cluster at it, so it is not checked again.
	for _, id := range h.ids {
		if kept := h.node(id).corruption.kept; len(kept) != 1 || kept[0].revision != rev-10 {
			t.Fatalf("node %d kept compaction hashes %+v, want the one of revision %d", id, kept, rev-10)
		}
	}
	if got := h.node(leader).corruption.latestCompactionChecked; got != rev-10 {
		t.Fatalf("leader compared the cluster at compacted revision %d, want %d", got, rev-10)
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

// The leader's second hash of a periodic check's revision differs from
// its first: as etcd's, the leader raises CORRUPT on itself, and on no
// one else (one alarm per check), although its followers agree with its
// first hash.
func TestPeriodicCheckLeaderMarksItselfWhenItsHashChanges(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.CorruptCheckTicks = 5 })
	leader := h.leader()
	h.forgeHash = func(id uint64, r HashRequest, resp *pb.HashKVResponse, err error) (*pb.HashKVResponse, error) {
		if id == leader && r.Purpose == HashForRecheck && err == nil {
			forged := proto.Clone(resp).(*pb.HashKVResponse)
			forged.Hash++
			return forged, nil
		}
		return resp, err
	}
	h.putKeys(leader, "a", 10)
	if got := h.tickUntilAlarm(leader); !sameAlarms(got, corruptAlarm(leader)) {
		t.Fatalf("alarms %v, want CORRUPT of the leader %d alone", got, leader)
	}
}

// A compaction check that cannot compare every member at the newest kept
// hash (a member does not answer) falls back to the next older one, as
// etcd's does, and finds there the member that differs.
func TestCompactionCheckFallsBackToOlderKeptHash(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) {
		c.CompactHashCheckTicks = 20
		c.RequestTimeoutTicks = 10
	})
	leader := h.leader()
	corrupt := h.followers(leader)[1]
	h.node(corrupt).cfg.Knobs.CorruptAppliedValue = true
	// Start right after the leader considered a check: the next one is
	// CompactHashCheckTicks away, after both compactions.
	for range corruptTestTicks {
		if c := h.node(leader).corruption; c.compactionAtTick == h.node(leader).ticks {
			break
		}
		h.tick()
	}
	rev1 := h.putKeys(leader, "a", 2*corruptPutEveryRevisions)
	h.compact(leader, rev1)
	h.tick()
	rev2 := h.putKeys(leader, "b", 2*corruptPutEveryRevisions)
	h.compact(leader, rev2)
	// The corrupt member cannot hash the second compaction.
	h.forgeHash = func(id uint64, r HashRequest, resp *pb.HashKVResponse, err error) (*pb.HashKVResponse, error) {
		if id == corrupt && r.Revision == rev2 {
			return nil, rpctypes.ErrGRPCCompacted
		}
		return resp, err
	}
	h.tick()
	if _, ok := h.node(corrupt).corruption.keptAt(rev1); !ok {
		t.Fatalf("member %d did not keep the hash of compaction %d", corrupt, rev1)
	}
	if got := h.tickUntilAlarm(leader); !sameAlarms(got, corruptAlarm(corrupt)) {
		t.Fatalf("alarms %v, want CORRUPT of %d, found at compaction %d", got, corrupt, rev1)
	}
	if c := h.node(leader).corruption.latestCompactionChecked; c != 0 {
		t.Fatalf("leader recorded the cluster compared at %d", c)
	}
}

// Kept hashes are bounded, newest kept, and found by revision.
func TestKeptCompactionHashesBounded(t *testing.T) {
	var c corruptionChecks
	for rev := int64(compactionHashesMax + 5); rev >= 1; rev-- {
		c.keep(keptHash{revision: rev, compactRev: rev, hash: uint32(rev)})
	}
	c.keep(keptHash{revision: 3, hash: 99}) // again: ignored
	if len(c.kept) != compactionHashesMax || c.kept[0].revision != 6 || c.kept[len(c.kept)-1].revision != compactionHashesMax+5 {
		t.Fatalf("kept %+v", c.kept)
	}
	if _, ok := c.keptAt(5); ok {
		t.Fatal("dropped hash found")
	}
	if h, ok := c.keptAt(7); !ok || h.hash != 7 {
		t.Fatalf("keptAt(7) = %+v, %v", h, ok)
	}
}

// The verdicts themselves, as etcd's leader reaches them.
func TestHashCheckVerdicts(t *testing.T) {
	r := func(member uint64, compactRev int64, hash uint32) hashReport {
		return hashReport{member: member, compactRev: compactRev, hash: hash, currentRev: 10}
	}
	at := func(rep hashReport, currentRev int64) hashReport { rep.currentRev = currentRev; return rep }
	for _, tc := range []struct {
		name     string
		periodic bool
		own      hashReport
		// recheck is the leader's second hash (periodic); zero: as own.
		recheck   hashReport
		reports   []hashReport
		membersN  int
		wantMarks []uint64
	}{
		{"periodic all agree", true, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 7), r(3, 5, 7)}, 3, nil},
		{"periodic first differing follower", true, r(2, 5, 7), hashReport{}, []hashReport{r(1, 5, 8), r(2, 5, 7), r(3, 5, 9)}, 3, []uint64{1}},
		{"periodic other compaction skipped", true, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 4, 8)}, 3, nil},
		{"periodic leader's second hash differs", true, r(1, 5, 7), r(1, 5, 9), []hashReport{r(1, 5, 7), r(2, 5, 8)}, 3, []uint64{1}},
		{"periodic leader compacted between its hashes", true, r(1, 5, 7), r(1, 6, 9), []hashReport{r(1, 5, 7), r(2, 5, 7)}, 3, nil},
		{"periodic follower ahead of the leader", true, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 7), at(r(3, 5, 7), 11)}, 3, []uint64{3}},
		{"periodic follower behind the leader", true, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), at(r(2, 5, 7), 9)}, 3, nil},
		{"periodic follower compacted beyond the leader", true, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 6, 7)}, 3, []uint64{2}},
		{"periodic one alarm per check", true, r(3, 5, 7), hashReport{}, []hashReport{r(1, 6, 7), r(2, 5, 8), r(3, 5, 7)}, 3, []uint64{1}},
		{"compaction all agree", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 7)}, 3, nil},
		{"compaction minority marked", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 7)}, 3, []uint64{2}},
		{"compaction leader in minority", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 8)}, 3, []uint64{1}},
		{"compaction no quorum marks 0", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 8), r(3, 5, 9)}, 3, []uint64{0}},
		{"compaction missing reports count against quorum", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 5, 8)}, 3, []uint64{0}},
		{"compaction other compaction skipped", false, r(1, 5, 7), hashReport{}, []hashReport{r(1, 5, 7), r(2, 6, 8), r(3, 5, 7)}, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			if tc.periodic {
				recheck := tc.recheck
				if recheck == (hashReport{}) {
					recheck = tc.own
				}
				got, _ = periodicMismatch(tc.own, recheck, tc.reports)
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
	for _, data := range [][]byte{encodeHashCheck(hashCheckPeriodic, 9), encodeHashReport(3, hashReport{member: 1, compactRev: 2, hash: 3, currentRev: 9}, 9)} {
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
