package node

import (
	"fmt"
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

func describe(msgs []*raftpb.Message) []string {
	var out []string
	for _, m := range msgs {
		s := fmt.Sprintf("%s %d->%d", m.GetType(), m.GetFrom(), m.GetTo())
		for _, e := range m.GetEntries() {
			s += " " + string(e.GetData())
		}
		out = append(out, s)
	}
	return out
}

func TestCoalesceProposals(t *testing.T) {
	appResp := &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: new(uint64(2)), To: new(uint64(1))}
	for _, tc := range []struct {
		name     string
		in       []*raftpb.Message
		maxBytes uint64
		want     []string
	}{
		{"one message per peer, in order, others kept in place",
			[]*raftpb.Message{prop(2, 1, "a"), appResp, prop(2, 1, "b"), prop(2, 3, "x"), prop(2, 1, "c")}, 100,
			[]string{"MsgProp 2->1 a b c", "MsgAppResp 2->1", "MsgProp 2->3 x"}},
		{"the bound starts a new message",
			[]*raftpb.Message{prop(2, 1, "aa"), prop(2, 1, "bb"), prop(2, 1, "cc")}, 4,
			[]string{"MsgProp 2->1 aa bb", "MsgProp 2->1 cc"}},
		{"a proposal over the bound stays alone",
			[]*raftpb.Message{prop(2, 1, "aaaaa"), prop(2, 1, "b"), prop(2, 1, "c")}, 4,
			[]string{"MsgProp 2->1 aaaaa", "MsgProp 2->1 b c"}},
		{"nothing to merge", []*raftpb.Message{appResp}, 4, []string{"MsgAppResp 2->1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(coalesceProposals(tc.in, tc.maxBytes)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A follower's proposals of one Process reach the leader as one message,
// and every one of them applies and completes on the follower.
func TestFollowerForwardsProposalsInOneMessage(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	follower := uint64(1)
	if follower == leader {
		follower = 2
	}
	var ids []uint64
	for i := range 20 {
		ids = append(ids, h.propose(follower, putReq(fmt.Sprintf("k%d", i), "v")))
	}
	out, err := h.node(follower).Process()
	if err != nil {
		t.Fatal(err)
	}
	var props []*raftpb.Message
	for _, m := range out.Messages {
		if m.GetType() == raftpb.MsgProp {
			props = append(props, m)
		}
	}
	if len(props) != 1 || len(props[0].GetEntries()) != len(ids) || props[0].GetTo() != leader {
		t.Fatalf("forwarded %q; want one proposal of %d entries to %d", describe(props), len(ids), leader)
	}
	h.deliver(out.Messages)
	h.settle()
	for i, id := range ids {
		if err := h.mustComplete(follower, id).Err; err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if v, ok := h.get(follower, fmt.Sprintf("k%d", i)); !ok || v != "v" {
			t.Fatalf("k%d = %q, %v after the forwarded put", i, v, ok)
		}
	}
}
