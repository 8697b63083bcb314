package node

import (
	"slices"

	"go.etcd.io/raft/v3/raftpb"
)

// coalesceMessages merges, in place, the messages of one Ready that say
// to one peer what a single message could, so that fewer cross the peer
// transport: each costs its encoding, framing, flow control and decoding,
// and a Step on the receiver.
//
//   - Proposals a follower forwards (MsgProp): raft makes one of one entry
//     per write a follower serves. One MsgProp may carry many entries; the
//     leader appends them in order as it would appends of one each, or
//     drops them all where it would drop each (no leader, a transfer in
//     progress, the uncommitted-size limit).
//   - A leader's appends to one follower (MsgApp): raft sends one per
//     batch of proposals it appends and, with no entries, one each time
//     the commit index moves (several times a Ready under load). An append
//     that continues the previous one (its index is where the previous
//     one's entries end, its log term that of their last entry) joins it,
//     with the later commit index: the message raft would have sent had
//     it sent once. raft's flow control counts messages in flight and
//     frees every one up to the index an acknowledgement names, so one
//     acknowledgement of the merged message frees them all.
//   - A follower's acknowledgements of appends (MsgAppResp, not rejections)
//     of one term: the one of the highest index says all the others do.
//
// Merging moves a message's content into an earlier message to the same
// peer, and drops what a later one makes redundant: in raft's model of the
// network messages may be delayed, reordered and lost, so no outcome
// changes. Merged entries stay within maxBytes of data, the bound raft
// keeps one append to (a proposal or an append over it stays alone);
// messages of any other kind are kept as they are.
func coalesceMessages(msgs []*raftpb.Message, maxBytes uint64) []*raftpb.Message {
	// open maps a message kind and destination to the message in out
	// that later ones of that kind may join, and its entry bytes.
	type slot struct {
		kind raftpb.MessageType
		to   uint64
	}
	type filling struct {
		at    int
		bytes uint64
	}
	var open map[slot]filling
	out := msgs[:0]
	for _, m := range msgs {
		k := slot{m.GetType(), m.GetTo()}
		size := entriesDataBytes(m.GetEntries())
		if f, ok := open[k]; ok && f.bytes+size <= maxBytes && joins(out[f.at], m) {
			into := out[f.at]
			switch m.GetType() {
			case raftpb.MsgProp, raftpb.MsgApp:
				// Clipped: the first append copies, never writing into
				// an array raft may still hold.
				into.Entries = append(slices.Clip(into.Entries), m.Entries...)
				if m.GetType() == raftpb.MsgApp {
					into.Commit = new(max(into.GetCommit(), m.GetCommit()))
				}
			case raftpb.MsgAppResp:
				if m.GetIndex() > into.GetIndex() {
					out[f.at] = m
				}
			}
			open[k] = filling{at: f.at, bytes: f.bytes + size}
			continue
		}
		out = append(out, m)
		if m.GetType() == raftpb.MsgAppResp && m.GetReject() {
			// A later acknowledgement stays after the rejection, as raft
			// sent it.
			delete(open, k)
		}
		if mergeable(m) {
			if open == nil {
				open = make(map[slot]filling)
			}
			open[k] = filling{at: len(out) - 1, bytes: size}
		}
	}
	clear(msgs[len(out):])
	return out
}

// mergeable reports whether later messages may join m.
func mergeable(m *raftpb.Message) bool {
	switch m.GetType() {
	case raftpb.MsgProp, raftpb.MsgApp:
		return true
	case raftpb.MsgAppResp:
		return !m.GetReject()
	}
	return false
}

// joins reports whether m, a later message of prev's kind to the same
// peer, can be merged into prev.
func joins(prev, m *raftpb.Message) bool {
	if prev.GetFrom() != m.GetFrom() || prev.GetTerm() != m.GetTerm() {
		return false
	}
	switch m.GetType() {
	case raftpb.MsgProp:
		return true
	case raftpb.MsgApp:
		end, endTerm := prev.GetIndex(), prev.GetLogTerm()
		if n := len(prev.GetEntries()); n > 0 {
			end, endTerm = prev.GetEntries()[n-1].GetIndex(), prev.GetEntries()[n-1].GetTerm()
		}
		return m.GetIndex() == end && m.GetLogTerm() == endTerm
	case raftpb.MsgAppResp:
		return !m.GetReject()
	}
	return false
}

func entriesDataBytes(ents []*raftpb.Entry) uint64 {
	var n uint64
	for i := range ents {
		n += uint64(len(ents[i].GetData()))
	}
	return n
}
