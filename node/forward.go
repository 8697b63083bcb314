package node

import (
	"slices"

	"go.etcd.io/raft/v3/raftpb"
)

// coalesceProposals merges the proposals a follower forwards to its leader
// into as few messages as maxBytes of entry data allows, in place.
//
// raft turns each Propose on a follower into a MsgProp of one entry; under
// load a Ready holds dozens of them, and each would cross the peer
// transport as a message of its own: its encoding, framing, flow control
// and decoding, then a Step on the leader. One MsgProp may carry many
// entries, and the leader appends them in order as it would appends of
// one each, or drops them all where it would drop each (no leader, a
// transfer in progress, the uncommitted-size limit). Messages may be
// delayed and reordered in raft's model of the network, so moving a
// proposal into an earlier message to the same peer changes no outcome.
// The merged message takes the place of the first one; the others go.
//
// A proposal of maxBytes or more stays in a message of its own, as does
// every message that is not a forwarded proposal.
func coalesceProposals(msgs []*raftpb.Message, maxBytes uint64) []*raftpb.Message {
	// open maps a destination to the index in out of the proposal being
	// filled for it, and the entry bytes it holds.
	type filling struct {
		at    int
		bytes uint64
	}
	var open map[uint64]filling
	out := msgs[:0]
	for _, m := range msgs {
		if m.GetType() != raftpb.MsgProp {
			out = append(out, m)
			continue
		}
		size := entriesDataBytes(m.Entries)
		if f, ok := open[m.GetTo()]; ok && f.bytes+size <= maxBytes && sameSender(out[f.at], m) {
			// Clipped: the first append copies, never writing into an
			// array raft may still hold.
			out[f.at].Entries = append(slices.Clip(out[f.at].Entries), m.Entries...)
			open[m.GetTo()] = filling{at: f.at, bytes: f.bytes + size}
			continue
		}
		if open == nil {
			open = make(map[uint64]filling)
		}
		open[m.GetTo()] = filling{at: len(out), bytes: size}
		out = append(out, m)
	}
	clear(msgs[len(out):])
	return out
}

// sameSender reports whether two proposals may share a message: raft's
// forwarded proposals carry no term, so only their addresses matter.
func sameSender(a, b *raftpb.Message) bool {
	return a.GetFrom() == b.GetFrom() && a.GetTerm() == b.GetTerm()
}

func entriesDataBytes(ents []*raftpb.Entry) uint64 {
	var n uint64
	for i := range ents {
		n += uint64(len(ents[i].GetData()))
	}
	return n
}
