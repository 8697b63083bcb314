package sim

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// network carries raft messages between members with seeded delays, loss,
// duplication and partitions. Random delays reorder messages.
//
// Every kind of message may be duplicated except MsgProp, a proposal a
// follower forwards to its leader: raft appends each copy it receives as a
// new entry, so a duplicate would apply one client request twice. cairn's
// peer transport delivers each message at most once (a gRPC stream is never
// replayed), which is the guarantee this exception models.
type network struct {
	w *world
	// blocked[{from, to}] drops every message on that directed link.
	blocked map[[2]uint64]bool
	// lossPercent and duplicatePercent apply to every message.
	lossPercent      int
	duplicatePercent int
	// delay of a message: uniform in [minDelayMicros, maxDelayMicros], with
	// a 1% tail of up to tailDelayMicros.
	minDelayMicros  int64
	maxDelayMicros  int64
	tailDelayMicros int64
	// snapshotsFailed counts snapshots reported to their sender as not
	// delivered.
	snapshotsFailed int
	// inFlight counts messages scheduled for delivery and not yet
	// delivered or dropped (Limits.MessagesInFlightMax).
	inFlight int
	// beforeSnapshot, if set (tests only), runs when a member is about to
	// send a snapshot, before the network decides whether it is lost.
	beforeSnapshot func(from, to *member)
}

func newNetwork(w *world) *network {
	return &network{w: w, blocked: map[[2]uint64]bool{},
		minDelayMicros: 200, maxDelayMicros: 3 * millisecond, tailDelayMicros: 100 * millisecond}
}

func (n *network) heal() {
	clear(n.blocked)
	n.lossPercent, n.duplicatePercent = 0, 0
}

func (n *network) block(from, to *member) { n.blocked[[2]uint64{from.id, to.id}] = true }

func (n *network) isBlocked(from, to *member) bool { return n.blocked[[2]uint64{from.id, to.id}] }

func (n *network) send(from *member, msgs []*raftpb.Message) {
	for _, m := range msgs {
		to := n.w.memberByID(m.GetTo())
		if to == nil {
			if m.GetType() == raftpb.MsgSnap {
				// A retired member: the stream cannot even connect.
				n.w.trace.printf("%s→n%d drop %s", from.name(), m.GetTo(), describeMessage(m))
				n.reportSnapshot(from, m.GetTo(), false)
			}
			continue
		}
		n.transmit(from, to, m)
	}
}

// lost decides whether a message from one member to another is dropped: a
// blocked link, or the lossy fault's draw.
func (n *network) lost(from, to *member) bool {
	return n.isBlocked(from, to) || n.w.rng.IntN(100) < n.lossPercent
}

func (n *network) transmit(from, to *member, m *raftpb.Message) {
	if m.GetType() == raftpb.MsgSnap {
		// A snapshot travels on its own stream, whose sender always
		// learns the outcome (snapshot.go).
		n.sendSnapshot(from, to, proto.Clone(m).(*raftpb.Message))
		return
	}
	rng := n.w.rng
	if n.lost(from, to) {
		n.w.trace.printf("%s→%s drop %s", from.name(), to.name(), describeMessage(m))
		return
	}
	copies := 1
	if rng.IntN(100) < n.duplicatePercent && m.GetType() != raftpb.MsgProp {
		copies = 2
	}
	for range copies {
		// Each delivery gets its own copy, as if it had been serialized.
		msg := proto.Clone(m).(*raftpb.Message)
		n.inFlight++
		n.w.sched.after(n.delay(), func() {
			n.inFlight--
			n.deliver(from, to, msg)
		})
	}
}

func (n *network) delay() int64 {
	rng := n.w.rng
	if rng.IntN(100) == 0 {
		return n.minDelayMicros + rng.Int64N(n.tailDelayMicros)
	}
	return n.minDelayMicros + rng.Int64N(n.maxDelayMicros-n.minDelayMicros+1)
}

func (n *network) deliver(from, to *member, m *raftpb.Message) {
	if !to.up() || n.isBlocked(from, to) || to.hold(from, m) {
		return
	}
	n.w.trace.printf("%s→%s %s", from.name(), to.name(), describeMessage(m))
	if err := to.node.Step(m); err != nil {
		n.w.trace.printf("%s step error: %v", to.name(), err)
	}
	to.kick()
}
