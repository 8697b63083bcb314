package node

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func prop(from, to uint64, data ...string) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgProp.Enum(), From: &from, To: &to}
	for _, d := range data {
		m.Entries = append(m.Entries, &raftpb.Entry{Data: []byte(d)})
	}
	return m
}

// app is an append from 1 to 2 at term 3 after (index, logTerm), carrying
// entries of term 3 named by data, with the leader's commit index.
func app(index, logTerm, commit uint64, data ...string) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(3)),
		Index: &index, LogTerm: &logTerm, Commit: &commit}
	for i, d := range data {
		m.Entries = append(m.Entries, &raftpb.Entry{Index: new(index + uint64(i) + 1), Term: new(uint64(3)), Data: []byte(d)})
	}
	return m
}

// ack is an acknowledgement from 2 to 1 at term 3 of index.
func ack(index uint64, reject bool) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(3)),
		Index: &index, Reject: &reject}
}

func describe(msgs []*raftpb.Message) []string {
	var out []string
	for _, m := range msgs {
		s := fmt.Sprintf("%s %d->%d", m.GetType(), m.GetFrom(), m.GetTo())
		switch m.GetType() {
		case raftpb.MsgApp:
			s += fmt.Sprintf(" i%d t%d c%d", m.GetIndex(), m.GetLogTerm(), m.GetCommit())
		case raftpb.MsgAppResp:
			s += fmt.Sprintf(" i%d", m.GetIndex())
			if m.GetReject() {
				s += " reject"
			}
		}
		for _, e := range m.GetEntries() {
			s += " " + string(e.GetData())
		}
		out = append(out, s)
	}
	return out
}

func TestCoalesceMessages(t *testing.T) {
	appResp := &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: new(uint64(2)), To: new(uint64(1))}
	for _, tc := range []struct {
		name     string
		in       []*raftpb.Message
		maxBytes uint64
		want     []string
	}{
		{"one message per peer, in order, others kept in place",
			[]*raftpb.Message{prop(2, 1, "a"), appResp, prop(2, 1, "b"), prop(2, 3, "x"), prop(2, 1, "c")}, 100,
			[]string{"MsgProp 2->1 a b c", "MsgAppResp 2->1 i0", "MsgProp 2->3 x"}},
		{"the bound starts a new message",
			[]*raftpb.Message{prop(2, 1, "aa"), prop(2, 1, "bb"), prop(2, 1, "cc")}, 4,
			[]string{"MsgProp 2->1 aa bb", "MsgProp 2->1 cc"}},
		{"a proposal over the bound stays alone",
			[]*raftpb.Message{prop(2, 1, "aaaaa"), prop(2, 1, "b"), prop(2, 1, "c")}, 4,
			[]string{"MsgProp 2->1 aaaaa", "MsgProp 2->1 b c"}},
		{"nothing to merge", []*raftpb.Message{appResp}, 4, []string{"MsgAppResp 2->1 i0"}},
		{"appends that continue each other join, with the last commit index",
			[]*raftpb.Message{app(5, 2, 4, "a", "b"), app(7, 3, 6), app(7, 3, 6, "c")}, 100,
			[]string{"MsgApp 1->2 i5 t2 c6 a b c"}},
		{"an append that does not continue the previous one stays apart",
			[]*raftpb.Message{app(5, 2, 4, "a"), app(9, 3, 4, "b"), app(10, 2, 4, "c")}, 100,
			[]string{"MsgApp 1->2 i5 t2 c4 a", "MsgApp 1->2 i9 t3 c4 b", "MsgApp 1->2 i10 t2 c4 c"}},
		{"appends join within the bound",
			[]*raftpb.Message{app(5, 2, 4, "aa"), app(6, 3, 4, "bb"), app(7, 3, 5, "cc")}, 4,
			[]string{"MsgApp 1->2 i5 t2 c4 aa bb", "MsgApp 1->2 i7 t3 c5 cc"}},
		{"the acknowledgement of the highest index stands for the others",
			[]*raftpb.Message{ack(10, false), ack(12, false), ack(11, false)}, 4,
			[]string{"MsgAppResp 2->1 i12"}},
		{"acknowledgements after a rejection stay after it",
			[]*raftpb.Message{ack(10, false), ack(9, true), ack(12, false), ack(13, false)}, 4,
			[]string{"MsgAppResp 2->1 i10", "MsgAppResp 2->1 i9 reject", "MsgAppResp 2->1 i13"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(coalesceMessages(tc.in, tc.maxBytes)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// forwardWrites starts puts of values on a follower of a new 3-member
// cluster and processes it once. It returns the harness, the leader, the
// follower, the requests' IDs and the proposal messages the follower sent.
func forwardWrites(t *testing.T, adjust func(*Config), values ...string) (h *harness, leader, follower uint64, ids []uint64, props []*raftpb.Message) {
	t.Helper()
	h = newHarness(t, []uint64{1, 2, 3}, adjust)
	leader = h.leader()
	follower = 1
	if follower == leader {
		follower = 2
	}
	for i, v := range values {
		ids = append(ids, h.propose(follower, putReq(fmt.Sprintf("k%d", i), v)))
	}
	out, err := h.node(follower).Process()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		if m.GetType() == raftpb.MsgProp {
			props = append(props, m)
		}
	}
	h.deliver(out.Messages)
	h.settle()
	for i, id := range ids {
		if err := h.mustComplete(follower, id).Err; err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	return h, leader, follower, ids, props
}

// A follower's proposals of one Process reach the leader as one message,
// and every one of them applies and completes on the follower.
func TestFollowerForwardsProposalsInOneMessage(t *testing.T) {
	h, leader, follower, ids, props := forwardWrites(t, nil, slices.Repeat([]string{"v"}, 20)...)
	if len(props) != 1 || len(props[0].GetEntries()) != len(ids) || props[0].GetTo() != leader {
		t.Fatalf("forwarded %q; want one proposal of %d entries to %d", describe(props), len(ids), leader)
	}
	for i := range ids {
		if v, ok := h.get(follower, fmt.Sprintf("k%d", i)); !ok || v != "v" {
			t.Fatalf("k%d = %q, %v after the forwarded put", i, v, ok)
		}
	}
}

// The writes of one Process reach raft in proposals of at most
// MaxSizePerMsgBytes of entries, which a follower forwards whole: one
// message of everything a burst of large writes holds could exceed what
// the peer transport carries.
func TestForwardedProposalsStayWithinTheBound(t *testing.T) {
	large := string(make([]byte, 400<<10))
	_, _, _, _, props := forwardWrites(t, func(c *Config) { c.MaxSizePerMsgBytes = 1 << 20 }, slices.Repeat([]string{large}, 5)...)
	var sizes []uint64
	for _, m := range props {
		sizes = append(sizes, entriesDataBytes(m.GetEntries()))
	}
	if len(sizes) != 3 {
		t.Fatalf("forwarded proposals of %v bytes; want three (two writes, two, one)", sizes)
	}
	for _, s := range sizes {
		if s > 1<<20 {
			t.Fatalf("a forwarded proposal of %d bytes, over the bound of %d", s, 1<<20)
		}
	}
}

// The writes a leader starts between two Process calls reach raft as one
// proposal, so raft makes one append per follower for all of them, not
// one each (before coalesceMessages, which would hide the difference).
func TestLeaderHandsItsWritesToRaftTogether(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	n := h.node(h.leader())
	for i := range 10 {
		h.propose(n.ID(), putReq(fmt.Sprintf("k%d", i), "v"))
	}
	n.submitBatched()
	appends := map[uint64]int{}
	for _, m := range n.raw.Ready().Messages {
		if m.GetType() == raftpb.MsgApp && len(m.GetEntries()) > 0 {
			appends[m.GetTo()]++
		}
	}
	if len(appends) != 2 || slices.Max(slices.Collect(maps.Values(appends))) != 1 {
		t.Fatalf("raft sent appends %v (per follower) for 10 writes; want one to each of 2 followers", appends)
	}
}
