package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Bounds of the harness's loops: a test that needs more is stuck.
const (
	maxProcessRounds = 10000
	maxTicks         = 500
)

// seqRand is a deterministic Rand.
type seqRand struct{ n uint64 }

func (r *seqRand) Uint64() uint64 { r.n++; return r.n * 0x9e3779b97f4a7c15 }

// testConfig is a small node configuration on fs.
func testConfig(id uint64, voters []uint64, fs vfs.FS) Config {
	return Config{
		ID:            id,
		InitialVoters: voters,
		FS:            fs,
		Dir:           fmt.Sprintf("node%d", id),
		Rand:          &seqRand{n: id << 20},
		CacheBytes:    1 << 20,
		MemTableBytes: 1 << 20,
	}
}

// done is one completion seen by the harness, with what the node looked
// like right after the Process call that returned it.
type done struct {
	Completion
	seq int   // order among all completions of this node
	rev int64 // the node's store revision when it completed
}

// member is one node in the harness with the filesystem it runs on.
type member struct {
	cfg  Config
	fs   *vfs.MemFS
	n    *Node
	done map[uint64]done
	seq  int
}

// harness drives one or more nodes from the test's goroutine: it calls
// Process while any node has work and routes their messages to each other.
type harness struct {
	t       *testing.T
	members map[uint64]*member
	ids     []uint64 // sorted, for a deterministic routing order
	// drop, if set, discards the messages it returns true for.
	drop func(m *raftpb.Message) bool
	// forgeHash, if set, may change a hash a node asked for before the
	// node gets it: a planted fault of the hashing (corrupt_test.go).
	forgeHash func(id uint64, r HashRequest, resp *pb.HashKVResponse, err error) (*pb.HashKVResponse, error)
}

// newHarness opens one node per id, all founding members of one cluster,
// each on its own crashable in-memory filesystem. adjust may change each
// configuration before Open.
func newHarness(t *testing.T, ids []uint64, adjust func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, members: map[uint64]*member{}, ids: slices.Sorted(slices.Values(ids))}
	for _, id := range h.ids {
		cfg := testConfig(id, ids, nil)
		if adjust != nil {
			adjust(&cfg)
		}
		m := &member{cfg: cfg, fs: vfs.NewCrashableMem()}
		m.cfg.FS = m.fs
		h.members[id] = m
		h.open(id)
	}
	// A single voter campaigns in Open but wins only in its first Process;
	// a proposal before that is dropped.
	h.settle()
	t.Cleanup(func() {
		for _, m := range h.members {
			if m.n != nil {
				m.n.Close()
			}
		}
	})
	return h
}

// open (re)opens member id's node on its filesystem.
func (h *harness) open(id uint64) {
	h.t.Helper()
	if err := h.tryOpen(id); err != nil {
		h.t.Fatal(err)
	}
}

// tryOpen is open, for a test that expects it may fail: after a crash, a
// member that cannot open what it made durable lost it.
func (h *harness) tryOpen(id uint64) error {
	m := h.members[id]
	n, err := Open(m.cfg)
	if err != nil {
		return fmt.Errorf("open node %d: %w", id, err)
	}
	m.n, m.done = n, map[uint64]done{}
	return nil
}

// crash closes member id's node and replaces its filesystem with what a
// crash would have left on it: only synced data survives.
func (h *harness) crash(id uint64) {
	h.t.Helper()
	m := h.members[id]
	clone := m.fs.CrashClone(vfs.CrashCloneCfg{})
	if err := m.n.Close(); err != nil {
		h.t.Fatalf("close node %d: %v", id, err)
	}
	m.n = nil
	m.fs = clone
	m.cfg.FS = clone
}

// restart closes member id's node cleanly and opens it again.
func (h *harness) restart(id uint64) {
	h.t.Helper()
	if err := h.members[id].n.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open(id)
}

func (h *harness) node(id uint64) *Node { return h.members[id].n }

// settle calls Process on every node while any has work, delivering
// messages in the order they were sent.
func (h *harness) settle() {
	h.t.Helper()
	for range maxProcessRounds {
		busy := false
		for _, id := range h.ids {
			m := h.members[id]
			if m.n == nil || !m.n.HasReady() {
				continue
			}
			busy = true
			h.processOnce(id)
		}
		if !busy {
			return
		}
	}
	h.t.Fatalf("nodes still busy after %d rounds", maxProcessRounds)
}

// hashForChecks answers the corruption checks' hash requests at once, as
// the simulator does.
func (h *harness) hashForChecks(m *member, reqs []HashRequest) {
	for _, r := range reqs {
		resp, err := m.n.HashKV(&pb.HashKVRequest{Revision: r.Revision})
		if h.forgeHash != nil {
			resp, err = h.forgeHash(m.cfg.ID, r, resp, err)
		}
		m.n.ReportHash(r, resp, err)
	}
}

func (h *harness) record(m *member, cs []Completion) {
	for _, c := range cs {
		if _, dup := m.done[c.ID]; dup {
			h.t.Fatalf("node %d: request %x completed twice", m.cfg.ID, c.ID)
		}
		m.seq++
		m.done[c.ID] = done{Completion: c, seq: m.seq, rev: m.n.Store().Rev()}
	}
}

func (h *harness) deliver(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		to := h.members[msg.GetTo()]
		if to == nil || to.n == nil || (h.drop != nil && h.drop(msg)) {
			continue
		}
		if msg.GetType() == raftpb.MsgSnap {
			h.transferSnapshot(msg) // snapshot_test.go
			continue
		}
		if err := to.n.Step(msg); err != nil {
			h.t.Fatalf("node %d: Step %s: %v", msg.GetTo(), msg.GetType(), err)
		}
	}
}

// processOnce calls Process on node id once and routes what it returns,
// as settle does: a write Start proposed reaches raft there.
func (h *harness) processOnce(id uint64) {
	h.t.Helper()
	m := h.members[id]
	out, err := m.n.Process()
	if err != nil {
		h.t.Fatalf("node %d: Process: %v", id, err)
	}
	waitStorageIdle(h.t, m.n)
	h.record(m, out.Done)
	h.deliver(out.Messages)
	h.hashForChecks(m, out.HashRequests)
}

// waitStorageIdle waits until the flushes and compactions Pebble runs on
// its own goroutines have ended, as the simulator does after each step, so
// that the next Process sees a flush the last one started as ended
// (maybeTruncateLog) whatever the goroutines' timing.
func waitStorageIdle(t testing.TB, n *Node) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for n.StorageBusy() {
		if time.Now().After(deadline) {
			t.Fatal("Pebble still flushing or compacting after a minute")
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// tick advances every running node by one tick and settles.
func (h *harness) tick() {
	for _, id := range h.ids {
		if n := h.members[id].n; n != nil {
			n.Tick()
		}
	}
	h.settle()
}

// leader ticks until exactly one running node leads and every running node
// knows it, and returns it.
func (h *harness) leader() uint64 {
	h.t.Helper()
	h.settle()
	for range maxTicks {
		var leaders []uint64
		for _, id := range h.ids {
			if n := h.members[id].n; n != nil && n.Status().IsLeader {
				leaders = append(leaders, id)
			}
		}
		if len(leaders) == 1 && h.allKnow(leaders[0]) {
			return leaders[0]
		}
		h.tick()
	}
	h.t.Fatalf("no leader after %d ticks", maxTicks)
	return 0
}

func (h *harness) allKnow(leader uint64) bool {
	for _, id := range h.ids {
		if n := h.members[id].n; n != nil && n.Status().Leader != leader {
			return false
		}
	}
	return true
}

// inRole returns the leader for "leader", and for "follower" a member
// that is not the leader.
func (h *harness) inRole(role string) uint64 {
	h.t.Helper()
	lead := h.leader()
	switch role {
	case "leader":
		return lead
	case "follower":
		if h.ids[0] != lead {
			return h.ids[0]
		}
		return h.ids[1]
	}
	h.t.Fatalf("no role %q", role)
	return 0
}

// propose starts the write req on node id.
func (h *harness) propose(id uint64, req *pb.InternalRaftRequest) uint64 {
	h.t.Helper()
	return h.node(id).Start(Request{Put: req.Put, DeleteRange: req.DeleteRange, Txn: req.Txn,
		Compaction: req.Compaction, LeaseGrant: req.LeaseGrant, LeaseRevoke: req.LeaseRevoke})
}

// serve starts req on node id, settles, and returns its result; the
// request must have completed.
func (h *harness) serve(id uint64, req Request) (proto.Message, error) {
	h.t.Helper()
	rid := h.node(id).Start(req)
	h.settle()
	return h.mustComplete(id, rid).Result()
}

// renew sends a keep-alive for lease to node id and returns the TTL it
// answered; a lease it does not know answers TTL 0.
func (h *harness) renew(id uint64, lease int64) (int64, error) {
	h.t.Helper()
	resp, err := h.serve(id, Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: lease}})
	if err != nil {
		return 0, err
	}
	return resp.(*pb.LeaseKeepAliveResponse).GetTTL(), nil
}

// completion returns request rid's completion on node id, if it completed.
func (h *harness) completion(id, rid uint64) (done, bool) {
	d, ok := h.members[id].done[rid]
	return d, ok
}

// mustComplete returns request rid's completion on node id or fails.
func (h *harness) mustComplete(id, rid uint64) done {
	h.t.Helper()
	d, ok := h.completion(id, rid)
	if !ok {
		h.t.Fatalf("node %d: request %x did not complete", id, rid)
	}
	return d
}

// write proposes req on node id, settles, and returns its completion,
// which must be a success.
func (h *harness) write(id uint64, req *pb.InternalRaftRequest) done {
	h.t.Helper()
	rid := h.propose(id, req)
	h.settle()
	d := h.mustComplete(id, rid)
	if d.Err != nil {
		h.t.Fatalf("node %d: request %x failed: %v", id, rid, d.Err)
	}
	return d
}

func putReq(key, value string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}
}

// put writes key=value through node id and returns the revision.
func (h *harness) put(id uint64, key, value string) int64 {
	h.t.Helper()
	d := h.write(id, putReq(key, value))
	return d.Response.(*pb.PutResponse).GetHeader().GetRevision()
}

// get reads key from node id's store; found is false if it is absent.
func (h *harness) get(id uint64, key string) (value string, found bool) {
	h.t.Helper()
	resp, err := h.node(id).Store().Range(&pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		h.t.Fatalf("node %d: range %q: %v", id, key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}
