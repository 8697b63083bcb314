package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
)

// transferSnapshot carries a MsgSnap as a transport does: the sender's
// checkpoint read in chunks, staged on the receiver, then the message,
// pointing at the staged copy, stepped into the receiver.
func (h *harness) transferSnapshot(msg *raftpb.Message) {
	h.t.Helper()
	from, to := h.members[msg.GetFrom()], h.members[msg.GetTo()]
	index := msg.GetSnapshot().GetMetadata().GetIndex()
	r, err := OpenSnapshot(from.cfg.FS, from.cfg.Dir, msg.GetSnapshot())
	if err != nil {
		h.t.Fatalf("node %d: open snapshot: %v", from.cfg.ID, err)
	}
	defer r.Close()
	st, err := StageSnapshot(to.cfg.FS, to.cfg.Dir, index)
	if err != nil {
		h.t.Fatalf("node %d: stage snapshot: %v", to.cfg.ID, err)
	}
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.t.Fatalf("node %d: read snapshot: %v", from.cfg.ID, err)
		}
		if err := st.Add(c); err != nil {
			h.t.Fatalf("node %d: stage snapshot: %v", to.cfg.ID, err)
		}
	}
	data, err := st.Finish()
	if err != nil {
		h.t.Fatalf("node %d: finish staging: %v", to.cfg.ID, err)
	}
	msg.Snapshot.Data = data
	if err := to.n.Step(msg); err != nil {
		h.t.Fatalf("node %d: Step MsgSnap: %v", to.cfg.ID, err)
	}
	from.n.ReportSnapshot(to.cfg.ID, true)
}

// laggingFollower builds a three-member cluster whose follower missed
// enough entries, while down, that it must catch up by snapshot, and
// returns the leader and the follower (not yet restarted).
func laggingFollower(t *testing.T, knobs TestingKnobs) (h *harness, leader, follower uint64) {
	h = newHarness(t, []uint64{1, 2, 3}, func(c *Config) {
		c.SnapshotCount, c.SnapshotCatchUpEntries, c.Knobs = 4, 1, knobs
		// The crash tests count the disk steps of a transfer: Pebble's
		// automatic compactions, on goroutines of their own, would add
		// steps at moments no test controls.
		c.PebbleOptions = func(o *pebble.Options) { o.DisableAutomaticCompactions = true }
	})
	leader = h.leader()
	follower = h.ids[0]
	if follower == leader {
		follower = h.ids[1]
	}
	h.put(leader, "before", "crash")
	h.crash(follower)
	for i := range 20 {
		h.put(leader, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	// Flushed, the snapshot holds tables as a real one does, not only a
	// write-ahead log that Pebble rewrites when it opens the copy.
	for _, id := range h.ids {
		if id != follower {
			if err := h.node(id).db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first, _ := h.node(leader).log.FirstIndex(); first <= h.node(leader).applied-20 {
		t.Fatalf("leader's log starts at %d: not truncated, no snapshot needed", first)
	}
	return h, leader, follower
}

// caughtUp ticks until node id has applied what the leader has, and
// reports whether it did.
func (h *harness) caughtUp(leader, id uint64) bool {
	for range maxTicks {
		if n := h.node(id); n != nil && n.applied == h.node(leader).applied {
			return true
		}
		h.tick()
	}
	return false
}

// sameKeyspace fails unless node id holds what the leader holds.
func (h *harness) sameKeyspace(leader, id uint64) {
	h.t.Helper()
	rev := h.node(leader).Store().Rev()
	if got := h.node(id).Store().Rev(); got != rev {
		h.t.Fatalf("node %d at revision %d, leader at %d", id, got, rev)
	}
	want, _, err := h.node(leader).Store().HashKV(rev)
	if err != nil {
		h.t.Fatal(err)
	}
	got, _, err := h.node(id).Store().HashKV(rev)
	if err != nil {
		h.t.Fatal(err)
	}
	if got != want {
		h.t.Fatalf("node %d keyspace hash %08x, leader %08x", id, got, want)
	}
}

func TestSnapshotCatchUp(t *testing.T) {
	h, leader, follower := laggingFollower(t, TestingKnobs{})
	h.open(follower)
	if !h.caughtUp(leader, follower) {
		t.Fatalf("follower did not catch up: applied %d, leader %d", h.node(follower).applied, h.node(leader).applied)
	}
	h.sameKeyspace(leader, follower)
	st := h.node(follower).RaftState()
	if st.FirstIndex <= 3 {
		t.Fatalf("follower's log starts at %d: it caught up from the log, not a snapshot", st.FirstIndex)
	}
	// Entries the follower appends on the installed database survive a
	// crash: the switch to it was durable.
	h.put(leader, "after", "install")
	before := h.node(follower).RaftState()
	h.crash(follower)
	h.open(follower)
	if err := CheckRecovery(before, h.node(follower).RaftState(), st.FirstIndex-1, false); err != nil {
		t.Fatalf("crash after the install: %v", err)
	}
	if !h.caughtUp(leader, follower) {
		t.Fatal("follower did not catch up after the crash")
	}
	h.sameKeyspace(leader, follower)

	// The install left one database, no staged snapshot, and CURRENT
	// naming the installed database, which a clean restart opens.
	m := h.members[follower]
	names, err := m.fs.List(m.cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	live, err := liveDBName(m.fs, m.cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, firstDBName) && name != live {
			t.Fatalf("left over after install: %s (live %s, all %v)", name, live, names)
		}
	}
	if staged, _ := m.fs.List(m.fs.PathJoin(m.cfg.Dir, IncomingDir)); len(staged) != 0 {
		t.Fatalf("left over after install: incoming/%v", staged)
	}
	h.restart(follower)
	h.sameKeyspace(leader, follower)
	if v, ok := h.get(follower, "k19"); !ok || v != "19" {
		t.Fatalf("k19 = %q, %v after restart", v, ok)
	}

}

func TestSnapshotReaderSplitsFilesIntoChunks(t *testing.T) {
	fs := vfs.NewMem()
	dir := madeSnapshotPath(7)
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"b-large": bytes.Repeat([]byte("0123456789abcdef"), (SnapshotChunkBytesMax*5/2)/16),
		"a-empty": nil,
		"c-small": []byte("small"),
	}
	for name, b := range files {
		f, err := fs.Create(fs.PathJoin(dir, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		// A copy: with Pebble's invariants on (the race detector) the
		// in-memory filesystem scrambles the buffers it is given.
		f.Write(bytes.Clone(b))
		f.Close()
	}
	if err := fs.MkdirAll(fs.PathJoin(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := OpenSnapshot(fs, "", snapshotAt(7, dir))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	got := map[string][]byte{}
	var cur string
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.File != "" {
			cur = c.File
			order = append(order, cur)
			got[cur] = []byte{}
			continue
		}
		if len(c.Data) == 0 || len(c.Data) > SnapshotChunkBytesMax {
			t.Fatalf("chunk of %d bytes", len(c.Data))
		}
		got[cur] = append(got[cur], c.Data...)
	}
	if strings.Join(order, ",") != "a-empty,b-large,c-small" {
		t.Fatalf("files in order %v", order)
	}
	for name, b := range files {
		if !bytes.Equal(got[name], b) {
			t.Fatalf("%s: read %d bytes, wrote %d", name, len(got[name]), len(b))
		}
	}
	if _, err := OpenSnapshot(fs, "", snapshotAt(8, dir)); err == nil {
		t.Fatal("opened a snapshot whose data names another index's checkpoint")
	}
}

func snapshotAt(index uint64, data string) *raftpb.Snapshot {
	return &raftpb.Snapshot{Data: []byte(data), Metadata: &raftpb.SnapshotMetadata{Index: &index}}
}

func TestSnapshotStagerRefusesMalformedChunks(t *testing.T) {
	bad := map[string][]SnapshotChunk{
		"data before a file": {{Data: []byte("x")}},
		"a path":             {{File: "../CURRENT"}},
		"dot dot":            {{File: ".."}},
		"a file twice":       {{File: "a"}, {File: "a"}},
		"name and data":      {{File: "a", Data: []byte("x")}},
	}
	for name, chunks := range bad {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			st, err := StageSnapshot(fs, "member", 9)
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, c := range chunks {
				if last = st.Add(c); last != nil {
					break
				}
			}
			if !errors.Is(last, ErrBadSnapshotChunk) {
				t.Fatalf("Add: %v, want ErrBadSnapshotChunk", last)
			}
			st.Abort()
			if names, _ := fs.List("member/incoming"); len(names) != 0 {
				t.Fatalf("abort left %v", names)
			}
		})
	}
}

func TestSnapshotStagedTwiceKeepsTheFirst(t *testing.T) {
	fs := vfs.NewMem()
	stage := func(content string) []byte {
		st, err := StageSnapshot(fs, "member", 9)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Add(SnapshotChunk{File: "f"}); err != nil {
			t.Fatal(err)
		}
		if err := st.Add(SnapshotChunk{Data: []byte(content)}); err != nil {
			t.Fatal(err)
		}
		data, err := st.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	first, second := stage("first"), stage("second")
	if string(first) != incomingSnapshotPath(9) || string(second) != string(first) {
		t.Fatalf("staged at %q then %q", first, second)
	}
	f, err := fs.Open("member/" + string(first) + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, _ := io.ReadAll(f); string(b) != "first" {
		t.Fatalf("staged file holds %q", b)
	}
	if names, _ := fs.List("member/incoming"); len(names) != 1 {
		t.Fatalf("incoming holds %v", names)
	}
}

// stepCrasher takes a member's disk as a crash would leave it at one step
// of a snapshot's creation or transfer: counting from the first operation
// in the member's snap/ or incoming/ directory, just before the operation
// after the first `after` durable ones (creates, links, removals,
// renames, directory creation, syncs). The member keeps running on the
// doomed disk until the test crashes it with image.
type stepCrasher struct {
	mu sync.Mutex
	fs *vfs.MemFS
	// dir is the directory whose first operation starts the count.
	dir     string
	after   int
	started bool
	steps   int
	// index is the snapshot being staged, from its directory's name.
	index uint64
	image *vfs.MemFS
	where string
}

var _ errorfs.Injector = (*stepCrasher)(nil)

func (c *stepCrasher) String() string { return "step-crasher" }

func (c *stepCrasher) MaybeError(op errorfs.Op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image != nil {
		return nil
	}
	if !c.started && strings.HasPrefix(op.Path, c.dir) {
		c.started = true
		name := strings.TrimPrefix(op.Path, c.dir)
		c.index, _ = strconv.ParseUint(name[:min(len(name), indexNameWidth)], 16, 64)
	}
	if !c.started || !isDurableStep(op.Kind) {
		return nil
	}
	if c.steps == c.after {
		c.image = c.fs.CrashClone(vfs.CrashCloneCfg{})
		c.where = describeStep(op)
		return nil
	}
	c.steps++
	return nil
}

// describeStep names an operation for a test's log.
func describeStep(op errorfs.Op) string {
	names := map[errorfs.OpKind]string{
		errorfs.OpCreate: "create", errorfs.OpLink: "link", errorfs.OpRemoveAll: "remove-all",
		errorfs.OpRename: "rename", errorfs.OpMkdirAll: "mkdir", errorfs.OpFileSync: "sync",
		errorfs.OpFileSyncData: "sync-data", errorfs.OpFileSyncTo: "sync-to",
	}
	return names[op.Kind] + " " + op.Path
}

// isDurableStep says whether an operation changes what a crash keeps.
// Plain removals are left out: Pebble deletes obsolete files from a
// goroutine of its own.
func isDurableStep(kind errorfs.OpKind) bool {
	switch kind {
	case errorfs.OpCreate, errorfs.OpLink, errorfs.OpRemoveAll, errorfs.OpRename, errorfs.OpMkdirAll,
		errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return true
	}
	return false
}

// crashInSnapshotTransfer lets a lagging follower receive and install a
// snapshot, crashes it at step `after` of staging and install, restarts it
// and checks what it restarted with. It returns the crasher (with no image
// when the transfer had fewer steps) and what was wrong.
func crashInSnapshotTransfer(t *testing.T, after int, knobs TestingKnobs) (*stepCrasher, error) {
	h, leader, follower := laggingFollower(t, knobs)
	m := h.members[follower]
	crasher := &stepCrasher{fs: m.fs, dir: m.cfg.Dir + "/" + IncomingDir + "/", after: after}
	m.cfg.FS = errorfs.Wrap(m.fs, crasher)
	h.open(follower)
	before := h.node(follower).RaftState()
	// Nothing the follower sends after the crash point leaves it.
	h.drop = func(msg *raftpb.Message) bool { return msg.GetFrom() == follower && crasher.image != nil }
	caughtUp := h.caughtUp(leader, follower)
	if crasher.image == nil {
		if !caughtUp {
			t.Fatalf("follower did not catch up without a crash")
		}
		return crasher, nil
	}
	h.node(follower).Close()
	m.fs, m.cfg.FS = crasher.image, crasher.image
	h.drop = nil
	if err := h.tryOpen(follower); err != nil {
		return crasher, err
	}
	if err := CheckRecovery(before, h.node(follower).RaftState(), crasher.index, true); err != nil {
		return crasher, err
	}
	if !h.caughtUp(leader, follower) {
		return crasher, fmt.Errorf("did not catch up after the crash: applied %d, leader %d", h.node(follower).applied, h.node(leader).applied)
	}
	h.sameKeyspace(leader, follower)
	return crasher, nil
}

// A crash at every step of staging and installing a snapshot leaves the
// follower with its old database or the installed one, never a mix, and it
// catches up either way.
func TestSnapshotCrashAtEveryStep(t *testing.T) {
	const stepsMax = 200
	for after := 0; after < stepsMax; after++ {
		c, err := crashInSnapshotTransfer(t, after, TestingKnobs{})
		if err != nil {
			t.Fatalf("crash after %d steps, before %s: %v", after, c.where, err)
		}
		if c.image == nil {
			t.Logf("staging and install took %d steps; a crash after each recovered", after)
			return
		}
	}
	t.Fatalf("staging and install took more than %d steps", stepsMax)
}

// The same crashes find each planted install bug.
func TestSnapshotCrashFindsPlantedInstallBugs(t *testing.T) {
	for name, knobs := range map[string]TestingKnobs{
		"cut-log-before-switch": {CutLogBeforeSwitch: true},
	} {
		t.Run(name, func(t *testing.T) {
			for after := 0; ; after++ {
				c, err := crashInSnapshotTransfer(t, after, knobs)
				if err != nil {
					t.Logf("found by a crash after %d steps, before %s: %v", after, c.where, err)
					return
				}
				if c.image == nil {
					t.Fatalf("no crash among %d steps found the planted bug", after)
				}
			}
		})
	}
}

// crashInSnapshotCreation crashes the member that makes the snapshot for a
// lagging follower at step `after` of making it, restarts it, and checks
// what it restarted with and that the follower still catches up. It
// returns the crasher that fired, if one did.
func crashInSnapshotCreation(t *testing.T, after int) (*stepCrasher, error) {
	h, _, follower := laggingFollower(t, TestingKnobs{})
	crashers := map[uint64]*stepCrasher{}
	for _, id := range h.ids {
		if id == follower {
			continue
		}
		m := h.members[id]
		if err := m.n.Close(); err != nil {
			t.Fatal(err)
		}
		crashers[id] = &stepCrasher{fs: m.fs, dir: m.cfg.Dir + "/" + SnapshotsDir + "/", after: after}
		m.cfg.FS = errorfs.Wrap(m.fs, crashers[id])
		h.open(id)
	}
	h.leader()
	before := map[uint64]RaftState{}
	for id := range crashers {
		before[id] = h.node(id).RaftState()
	}
	fired := func() (uint64, *stepCrasher) {
		for _, id := range h.ids {
			if c := crashers[id]; c != nil && c.image != nil {
				return id, c
			}
		}
		return 0, nil
	}
	h.drop = func(msg *raftpb.Message) bool { id, _ := fired(); return msg.GetFrom() == id }
	h.open(follower)
	for range maxTicks {
		if id, _ := fired(); id != 0 {
			break
		}
		h.tick()
	}
	id, c := fired()
	if id == 0 {
		return nil, nil
	}
	m := h.members[id]
	h.node(id).Close()
	m.fs, m.cfg.FS = c.image, c.image
	h.drop = nil
	if err := h.tryOpen(id); err != nil {
		return c, err
	}
	if err := CheckRecovery(before[id], h.node(id).RaftState(), 0, false); err != nil {
		return c, err
	}
	leader := h.leader()
	if !h.caughtUp(leader, follower) {
		return c, fmt.Errorf("follower did not catch up after the crash")
	}
	for _, other := range h.ids {
		if other != leader && h.caughtUp(leader, other) {
			h.sameKeyspace(leader, other)
		}
	}
	return c, nil
}

// A crash at every step of making a snapshot (a Pebble checkpoint) leaves
// the member's own database intact.
func TestSnapshotCrashWhileMakingOne(t *testing.T) {
	const stepsMax = 100
	for after := 0; after < stepsMax; after++ {
		c, err := crashInSnapshotCreation(t, after)
		if err != nil {
			t.Fatalf("crash after %d steps, before %s: %v", after, c.where, err)
		}
		if c == nil {
			t.Logf("making the snapshot and what followed until the follower caught up took %d steps; a crash after each recovered", after)
			return
		}
	}
	t.Fatalf("more than %d steps", stepsMax)
}
