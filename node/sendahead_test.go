package node

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// ackedBeforeDurable proposes a put on the leader of a 3-member cluster,
// hands its append to one follower, and crashes that follower as soon as
// a Process of it has acknowledged the entry. It reports whether the
// follower's log after the restart lacks an entry it acknowledged.
func ackedBeforeDurable(t *testing.T, knobs TestingKnobs) bool {
	h := newHarness(t, []uint64{1, 2, 3}, func(c *Config) { c.Knobs = knobs })
	leader := h.leader()
	follower := uint64(1)
	if follower == leader {
		follower = 2
	}
	h.propose(leader, putReq("k", "v"))
	var app *raftpb.Message
	for range maxProcessRounds {
		out, err := h.node(leader).Process()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if m.GetTo() == follower && m.GetType() == raftpb.MsgApp && len(m.GetEntries()) > 0 {
				app = m
			}
		}
		if app != nil {
			break
		}
	}
	if app == nil {
		t.Fatal("the leader sent no append to the follower")
	}
	if err := h.node(follower).Step(app); err != nil {
		t.Fatal(err)
	}
	var acked uint64
	for range maxProcessRounds {
		out, err := h.node(follower).Process()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if m.GetType() == raftpb.MsgAppResp && !m.GetReject() {
				acked = max(acked, m.GetIndex())
			}
		}
		if acked > 0 {
			break
		}
	}
	if acked == 0 {
		t.Fatal("the follower never acknowledged the append")
	}
	h.crash(follower)
	h.open(follower)
	last, err := h.node(follower).log.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last < acked
}

// A follower acknowledges only entries that are on its disk; the leader's
// send-ahead (Node.sendsAhead) must never extend to followers. The planted
// bug shows the test can fail.
func TestFollowerAcknowledgesOnlyDurableEntries(t *testing.T) {
	if ackedBeforeDurable(t, TestingKnobs{}) {
		t.Fatal("a follower acknowledged an entry a crash then lost")
	}
	if !ackedBeforeDurable(t, TestingKnobs{FollowerSendsAhead: true}) {
		t.Fatal("with FollowerSendsAhead planted, the acknowledged entry survived the crash: the test cannot fail")
	}
}

// The leader does send ahead: its append to the followers leaves before
// the entry is on its disk, and no message that carries a commit index
// covering the entry leaves before it is.
func TestLeaderSendsAheadButCommitsAfterPersisting(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	n := h.node(leader)
	last, err := n.log.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	entry := last + 1
	h.propose(leader, putReq("k", "v"))
	out, err := n.Process()
	if err != nil {
		t.Fatal(err)
	}
	sentAhead := false
	for _, m := range out.Messages {
		if m.GetType() == raftpb.MsgApp && len(m.GetEntries()) > 0 {
			sentAhead = true
		}
	}
	if durable, _ := n.log.LastIndex(); !sentAhead || durable >= entry {
		t.Fatalf("first Process: append sent %v, durable last index %d; want the append sent before entry %d is durable", sentAhead, durable, entry)
	}
	// Deliver everything, and check each message of the leader's that
	// names a commit index covering the entry was sent after it was
	// durable.
	for range maxProcessRounds {
		h.deliver(out.Messages)
		busy := false
		for _, id := range h.ids {
			m := h.members[id]
			if !m.n.HasReady() {
				continue
			}
			busy = true
			o, err := m.n.Process()
			if err != nil {
				t.Fatal(err)
			}
			if id == leader {
				durable, _ := n.log.LastIndex()
				for _, msg := range o.Messages {
					if msg.GetCommit() >= entry && durable < entry {
						t.Fatalf("%s to %d carries commit %d before entry %d is durable", msg.GetType(), msg.GetTo(), msg.GetCommit(), entry)
					}
				}
			}
			h.deliver(o.Messages)
		}
		out.Messages = nil
		if !busy {
			break
		}
	}
	if got, ok := h.get(leader, "k"); !ok || got != "v" {
		t.Fatalf("get k = %q, %v after the put committed", got, ok)
	}
}
