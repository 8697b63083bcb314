package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
)

var one = []uint64{1}

func TestSingleNodeLeadsWithoutTicks(t *testing.T) {
	h := newHarness(t, one, nil)
	h.settle()
	st := h.node(1).Status()
	if !st.IsLeader || st.Leader != 1 {
		t.Fatalf("single node is not leader without ticks: %+v", st)
	}
	if st.Term <= bootstrapTerm {
		t.Fatalf("term %d: the node did not campaign", st.Term)
	}
	if len(st.Voters) != 1 || st.Voters[0] != 1 {
		t.Fatalf("voters %v", st.Voters)
	}
	if st.AppliedIndex != st.CommitIndex || st.CommitIndex <= bootstrapIndex {
		t.Fatalf("leader's empty entry not committed and applied: %+v", st)
	}
	if h.node(1).ID() != 1 || h.node(1).Store().Rev() != 1 {
		t.Fatalf("ID %d, revision %d", h.node(1).ID(), h.node(1).Store().Rev())
	}
}

func TestWritesCompleteWithRevisions(t *testing.T) {
	h := newHarness(t, one, nil)
	if rev := h.put(1, "a", "1"); rev != 2 {
		t.Fatalf("first put: revision %d, want 2", rev)
	}
	if rev := h.put(1, "b", "B"); rev != 3 {
		t.Fatalf("second put: revision %d, want 3", rev)
	}
	if rev := h.put(1, "a", "2"); rev != 4 {
		t.Fatalf("third put: revision %d, want 4", rev)
	}
	if v, ok := h.get(1, "a"); !ok || v != "2" {
		t.Fatalf("a = %q, %v; want 2", v, ok)
	}

	d := h.write(1, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}})
	del := d.Response.(*pb.DeleteRangeResponse)
	if del.Deleted != 1 || del.GetHeader().GetRevision() != 5 {
		t.Fatalf("delete: %v, want 1 deleted at revision 5", del)
	}
	if _, ok := h.get(1, "a"); ok {
		t.Fatal("a still present after delete")
	}

	txn := func(want string) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{
				Key: []byte("b"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Value{Value: []byte(want)},
			}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), Value: []byte("C")}}}},
		}}
	}
	tr := h.write(1, txn("B")).Response.(*pb.TxnResponse)
	if !tr.Succeeded || tr.GetHeader().GetRevision() != 6 {
		t.Fatalf("txn with a true compare: %v, want success at revision 6", tr)
	}
	tr = h.write(1, txn("nope")).Response.(*pb.TxnResponse)
	if tr.Succeeded || tr.GetHeader().GetRevision() != 6 {
		t.Fatalf("txn with a false compare: %v, want failure at revision 6", tr)
	}

	// Several proposals before one Process share a batch and complete in
	// order with consecutive revisions.
	var rids []uint64
	for i := range 5 {
		rids = append(rids, h.propose(1, putReq(fmt.Sprintf("k%d", i), "v")))
	}
	h.settle()
	for i, rid := range rids {
		d := h.mustComplete(1, rid)
		if d.Err != nil || d.Response.(*pb.PutResponse).GetHeader().GetRevision() != int64(7+i) {
			t.Fatalf("batched put %d: %v %v, want revision %d", i, d.Response, d.Err, 7+i)
		}
	}

	compact := func(rev int64) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}}
	}
	d = h.write(1, compact(4))
	if _, ok := d.Response.(*pb.CompactionResponse); !ok {
		t.Fatalf("compaction response %T", d.Response)
	}
	if got := h.node(1).Store().CompactRev(); got != 4 {
		t.Fatalf("compacted revision %d, want 4", got)
	}
	if _, err := h.node(1).Store().Range(&pb.RangeRequest{Key: []byte("b"), Revision: 3}); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("read below the compaction: %v, want ErrGRPCCompacted", err)
	}
	for _, tc := range []struct {
		rev  int64
		want error
	}{{4, rpctypes.ErrGRPCCompacted}, {100, rpctypes.ErrGRPCFutureRev}} {
		rid := h.propose(1, compact(tc.rev))
		h.settle()
		if d := h.mustComplete(1, rid); !errors.Is(d.Err, tc.want) {
			t.Fatalf("compaction at %d: %v, want %v", tc.rev, d.Err, tc.want)
		}
	}
	if rev := h.node(1).Store().Rev(); rev != 11 {
		t.Fatalf("revision %d after failed compactions, want 11", rev)
	}
}

func TestUnknownRequestFailsOnlyItself(t *testing.T) {
	h := newHarness(t, one, nil)
	rid := h.propose(1, &pb.InternalRaftRequest{})
	h.settle()
	if d := h.mustComplete(1, rid); d.Err == nil {
		t.Fatal("an empty request applied without error")
	}
	if rev := h.put(1, "a", "1"); rev != 2 {
		t.Fatalf("put after a failed request: revision %d, want 2", rev)
	}
}

// TestReadIndexAfterWrite: a read started after a write was acknowledged
// sees it. (A read started while the write is only proposed is concurrent
// with it and may complete first; TestReadIndexOnLaggingFollower checks the
// interesting case.)
func TestReadIndexAfterWrite(t *testing.T) {
	h := newHarness(t, one, nil)
	w := h.write(1, putReq("a", "1"))
	r := h.node(1).readIndex()
	h.settle()
	rd := h.mustComplete(1, r)
	if rd.Err != nil || rd.Response != nil {
		t.Fatalf("read completion %+v, want no response and no error", rd.Completion)
	}
	if rd.seq <= w.seq || rd.rev != 2 {
		t.Fatalf("read completed at revision %d (seq %d), want 2 after the write (seq %d)", rd.rev, rd.seq, w.seq)
	}
}

func TestReadsShareOneRound(t *testing.T) {
	h := newHarness(t, one, nil)
	h.put(1, "a", "1")
	n := h.node(1)
	before := n.reads.nextCtx
	var rids []uint64
	for range 100 {
		rids = append(rids, n.readIndex())
	}
	h.settle()
	for _, rid := range rids {
		if d := h.mustComplete(1, rid); d.Err != nil || d.rev != 2 {
			t.Fatalf("read %x: %+v", rid, d)
		}
	}
	if rounds := n.reads.nextCtx - before; rounds != 1 {
		t.Fatalf("100 reads before one Process took %d ReadIndex rounds, want 1", rounds)
	}
	if n.reads.hasUnsent() || len(n.reads.sent) > 0 || len(n.reads.confirmed) > 0 {
		t.Fatalf("read queue not empty after every read completed: %+v", n.reads)
	}
}

// TestReadIndexOnLaggingFollower: a follower that has not applied a write
// acknowledged elsewhere must not complete a read until it has.
func TestReadIndexOnLaggingFollower(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	follower := h.ids[0]
	if follower == leader {
		follower = h.ids[1]
	}
	h.drop = func(m *raftpb.Message) bool {
		return m.GetTo() == follower && (m.GetType() == raftpb.MessageType_MsgApp || m.GetType() == raftpb.MessageType_MsgSnap)
	}
	if rev := h.put(leader, "a", "1"); rev != 2 {
		t.Fatalf("put: revision %d", rev)
	}
	if rev := h.node(follower).Store().Rev(); rev != 1 {
		t.Fatalf("follower applied the write although appends were dropped: revision %d", rev)
	}
	r := h.node(follower).readIndex()
	for range 5 {
		h.tick()
	}
	if d, ok := h.completion(follower, r); ok {
		t.Fatalf("read completed on a follower that has not applied an acknowledged write: %+v", d)
	}
	h.drop = nil
	for range maxTicks {
		if _, ok := h.completion(follower, r); ok {
			break
		}
		h.tick()
	}
	d := h.mustComplete(follower, r)
	if d.Err != nil || d.rev != 2 {
		t.Fatalf("read completed at revision %d (%v), want 2", d.rev, d.Err)
	}
}

func TestAcknowledgedWritesSurviveCrash(t *testing.T) {
	h := newHarness(t, one, nil)
	want := map[string]string{}
	for i := range 10 {
		k := fmt.Sprintf("single%d", i)
		h.put(1, k, k)
		want[k] = k
	}
	var rids []uint64
	for i := range 10 {
		k := fmt.Sprintf("batch%d", i)
		rids = append(rids, h.propose(1, putReq(k, k)))
		want[k] = k
	}
	h.settle()
	for _, rid := range rids {
		h.mustComplete(1, rid)
	}
	applied := h.node(1).Status().AppliedIndex

	h.crash(1)
	h.open(1)
	h.leader()
	n := h.node(1)
	if rev := n.Store().Rev(); rev != 21 {
		t.Fatalf("revision %d after crash, want 21", rev)
	}
	for k, v := range want {
		if got, ok := h.get(1, k); !ok || got != v {
			t.Fatalf("acknowledged %s=%s lost in a crash: got %q, %v", k, v, got, ok)
		}
	}
	if st := n.Status(); st.AppliedIndex < applied {
		t.Fatalf("applied index %d after crash, was %d", st.AppliedIndex, applied)
	}

	// A clean restart re-applies nothing: the applied index was written
	// with the state.
	h.restart(1)
	if got := h.node(1).applied; got < applied {
		t.Fatalf("applied index %d loaded, want at least %d", got, applied)
	}
	h.leader()
	if rev := h.node(1).Store().Rev(); rev != 21 {
		t.Fatalf("revision %d after restart, want 21: entries applied twice?", rev)
	}
	if rev := h.put(1, "after", "x"); rev != 22 {
		t.Fatalf("put after restart: revision %d, want 22", rev)
	}
}

func TestPhysicalCompactionHeldUntilDone(t *testing.T) {
	h := newHarness(t, one, func(c *Config) { c.MaxCompactKeysPerTick = 1 })
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		h.put(1, k, "old")
		h.put(1, k, "new")
	}
	rev := h.node(1).Store().Rev()
	rid := h.propose(1, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev, Physical: true}})
	h.settle()
	if d, ok := h.completion(1, rid); ok {
		t.Fatalf("physical compaction completed before any compaction step: %+v", d)
	}
	n := h.node(1)
	if !n.store.CompactPending() {
		t.Fatal("no compaction pending after a physical compaction applied")
	}
	ticks := 0
	for ; ticks < maxTicks; ticks++ {
		n.Tick()
		h.settle()
		if _, ok := h.completion(1, rid); ok {
			break
		}
		if !n.store.CompactPending() {
			t.Fatalf("compaction finished after %d ticks but the physical compaction was not released", ticks+1)
		}
	}
	d := h.mustComplete(1, rid)
	if d.Err != nil {
		t.Fatal(d.Err)
	}
	if n.store.CompactPending() {
		t.Fatal("physical compaction completed while the compaction is still pending")
	}
	if ticks < 4 {
		t.Fatalf("5 keys compacted at 1 key per tick in %d ticks", ticks+1)
	}
	// A logical compaction completes at once.
	rid = h.propose(1, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
	h.settle()
	if d := h.mustComplete(1, rid); !errors.Is(d.Err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("second compaction at the same revision: %v", d.Err)
	}
	h.put(1, "k0", "newer")
	rid = h.propose(1, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev + 1}})
	h.settle()
	if d := h.mustComplete(1, rid); d.Err != nil {
		t.Fatalf("logical compaction: %v", d.Err)
	}
}

func TestThreeNodeCluster(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	if rev := h.put(leader, "a", "1"); rev != 2 {
		t.Fatalf("put on leader: revision %d", rev)
	}
	var follower uint64
	for _, id := range h.ids {
		if id != leader {
			follower = id
			break
		}
	}
	// A follower forwards the proposal; it completes there once applied.
	rid := h.propose(follower, putReq("b", "2"))
	h.settle()
	d := h.mustComplete(follower, rid)
	if d.Err != nil || d.Response.(*pb.PutResponse).GetHeader().GetRevision() != 3 || d.rev != 3 {
		t.Fatalf("forwarded put: %+v", d)
	}
	if rid>>48 != follower {
		t.Fatalf("request ID %x does not carry member %d", rid, follower)
	}
	// Heartbeats carry the commit index to everyone.
	h.tick()
	for _, id := range h.ids {
		if rev := h.node(id).Store().Rev(); rev != 3 {
			t.Fatalf("node %d at revision %d, want 3", id, rev)
		}
		if v, ok := h.get(id, "b"); !ok || v != "2" {
			t.Fatalf("node %d: b = %q, %v", id, v, ok)
		}
		st := h.node(id).Status()
		if st.Leader != leader || st.IsLeader != (id == leader) || len(st.Voters) != 3 {
			t.Fatalf("node %d status %+v", id, st)
		}
	}
	r := h.node(follower).readIndex()
	h.settle()
	if d := h.mustComplete(follower, r); d.Err != nil || d.rev != 3 {
		t.Fatalf("follower read: %+v", d)
	}
}

func TestLocalMessageFromNetworkRefused(t *testing.T) {
	h := newHarness(t, one, nil)
	err := h.node(1).Step(&raftpb.Message{Type: raftpb.MessageType_MsgHup.Enum()})
	if err == nil {
		t.Fatal("a local message from the network was accepted")
	}
}

func TestClosedNode(t *testing.T) {
	h := newHarness(t, one, nil)
	n := h.node(1)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	h.members[1].n = nil
	if _, err := n.Process(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Process after Close: %v, want ErrStopped", err)
	}
	if err := n.Close(); !errors.Is(err, ErrStopped) {
		t.Fatalf("second Close: %v, want ErrStopped", err)
	}
}

// TestKnobSkipAppliedIndex: without the applied index a restart applies
// the log again over a flushed state, which the revision shows.
func TestKnobSkipAppliedIndex(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprint(skip), func(t *testing.T) {
			h := newHarness(t, one, func(c *Config) { c.Knobs.SkipAppliedIndex = skip })
			for i := range 3 {
				h.put(1, fmt.Sprintf("k%d", i), "v")
			}
			if err := h.node(1).FlushStorage(); err != nil {
				t.Fatal(err)
			}
			h.restart(1)
			h.leader()
			rev := h.node(1).Store().Rev()
			switch {
			case !skip && rev != 4:
				t.Fatalf("revision %d after restart, want 4", rev)
			case skip && rev == 4:
				t.Fatal("SkipAppliedIndex changed nothing: revision 4 after restart")
			}
		})
	}
}

// TestKnobAckBeforeDurable: acknowledged writes are lost in a crash.
func TestKnobAckBeforeDurable(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprint(ack), func(t *testing.T) {
			h := newHarness(t, one, func(c *Config) { c.Knobs.AckBeforeDurable = ack })
			for i := range 3 {
				h.put(1, fmt.Sprintf("k%d", i), "v")
			}
			h.crash(1)
			h.open(1)
			h.leader()
			rev := h.node(1).Store().Rev()
			switch {
			case !ack && rev != 4:
				t.Fatalf("revision %d after crash, want 4", rev)
			case ack && rev == 4:
				t.Fatal("AckBeforeDurable changed nothing: every acknowledged write survived the crash")
			}
		})
	}
}

// TestKnobReadWithoutReadIndex: a partitioned follower serves a stale read
// with the knob and holds it without.
func TestKnobReadWithoutReadIndex(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprint(stale), func(t *testing.T) {
			h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.Knobs.ReadWithoutReadIndex = stale })
			leader := h.leader()
			var follower uint64
			for _, id := range h.ids {
				if id != leader {
					follower = id
				}
			}
			h.drop = func(m *raftpb.Message) bool { return m.GetTo() == follower || m.GetFrom() == follower }
			h.put(leader, "a", "1")
			r := h.node(follower).readIndex()
			for range 5 {
				h.tick()
			}
			d, ok := h.completion(follower, r)
			switch {
			case stale && !ok:
				t.Fatal("ReadWithoutReadIndex: the read did not complete at once")
			case stale && d.rev != 1:
				t.Fatalf("stale read at revision %d; the test expects the partitioned follower at 1", d.rev)
			case !stale && ok:
				t.Fatalf("a partitioned follower completed a linearizable read: %+v", d)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := testConfig(1, one, vfs.NewMem())
		c.EnsureDefaults()
		return c
	}
	if c := valid(); c.Validate() != nil {
		t.Fatalf("valid config rejected: %v", c.Validate())
	}
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"zero ID":            {func(c *Config) { c.ID = 0 }, "ID"},
		"no dir":             {func(c *Config) { c.Dir = "" }, "Dir"},
		"no rand":            {func(c *Config) { c.Rand = nil }, "Rand"},
		"heartbeat=election": {func(c *Config) { c.HeartbeatTicks = c.ElectionTicks }, "HeartbeatTicks"},
		"heartbeat>election": {func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 3, 5 }, "HeartbeatTicks"},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error about %s", err, tc.want)
			}
			if _, err := Open(c); err == nil {
				t.Fatal("Open accepted an invalid config")
			}
		})
	}
	var c Config
	c.EnsureDefaults()
	if c.ElectionTicks != 10 || c.HeartbeatTicks != 1 || c.ReadIndexRetryTicks != 10 || c.MaxCompactKeysPerTick <= 0 || c.FS == nil || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestOpenRefusesBadInitialCluster(t *testing.T) {
	for name, voters := range map[string][]uint64{"none": nil, "not a member": {2, 3}} {
		t.Run(name, func(t *testing.T) {
			if _, err := Open(testConfig(1, voters, vfs.NewMem())); err == nil {
				t.Fatal("Open bootstrapped without this member in the initial cluster")
			}
		})
	}
	// Existing data needs no initial cluster.
	h := newHarness(t, one, nil)
	h.put(1, "a", "1")
	h.members[1].cfg.InitialVoters = nil
	h.restart(1)
	h.leader()
	if v, ok := h.get(1, "a"); !ok || v != "1" {
		t.Fatalf("a = %q, %v after reopen without an initial cluster", v, ok)
	}
}

// TestReadBeforeLeaderIsRetried: a read sent before the node knows a
// leader is dropped by raft and must be asked again after
// ReadIndexRetryTicks, even on an idle single node whose ticks produce no
// raft work. This is the first linearizable read after a restart.
func TestReadBeforeLeaderIsRetried(t *testing.T) {
	h := newHarness(t, one, nil)
	h.put(1, "a", "1")
	if err := h.node(1).Close(); err != nil {
		t.Fatal(err)
	}
	h.open(1) // no Process yet: the node campaigns but does not lead
	n := h.node(1)
	r := n.readIndex()
	h.settle()
	if !n.Status().IsLeader {
		t.Fatal("restarted single node does not lead")
	}
	for range 3 * n.cfg.ReadIndexRetryTicks {
		if _, ok := h.completion(1, r); ok {
			break
		}
		h.tick()
	}
	d := h.mustComplete(1, r) // BUG: HasReady ignores read rounds due for a retry
	if d.Err != nil || d.rev != 2 {
		t.Fatalf("read: %+v", d)
	}
}
