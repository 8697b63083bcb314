package sim

import (
	"errors"
	"io"
	"slices"

	"github.com/cairn-db/cairn/node"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
)

// A snapshot crosses the simulated network the way the server's transport
// carries it, through the same core code: the sender's node.SnapshotReader
// reads the checkpoint's chunks when the message is sent, and the
// receiver's node.SnapshotStager writes them at delivery, with the same
// syncs, before the MsgSnap reaches the node.

// readSnapshot reads every chunk of the checkpoint m names, copied: they
// are in flight until delivery.
func readSnapshot(from *member, m *raftpb.Message) ([]node.SnapshotChunk, error) {
	r, err := node.OpenSnapshot(from.disk, memberDir, m.GetSnapshot())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var chunks []node.SnapshotChunk
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return nil, err
		}
		c.Data = slices.Clone(c.Data)
		chunks = append(chunks, c)
	}
}

// stageSnapshot writes the chunks on the receiver and returns what the
// MsgSnap's Snapshot.Data must say.
func stageSnapshot(to *member, index uint64, chunks []node.SnapshotChunk) ([]byte, error) {
	st, err := node.StageSnapshot(to.disk, memberDir, index)
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if err := st.Add(c); err != nil {
			st.Abort()
			return nil, err
		}
	}
	return st.Finish()
}

// sendSnapshot carries a MsgSnap with its checkpoint: the chunks are read
// now, staged on the receiver at delivery, and the sender always learns
// whether the snapshot arrived, as cairn's transport reports the outcome of
// every snapshot stream (server/transport/snapshot.go). A snapshot lost to
// a partition or the lossy fault is reported failed after the time a
// delivery would have taken: the moment the sender's stream breaks. Without
// the report raft would wait for that snapshot forever, a stall the real
// transport cannot cause.
func (n *network) sendSnapshot(from, to *member, m *raftpb.Message) {
	if n.beforeSnapshot != nil {
		n.beforeSnapshot(from, to)
	}
	if n.lost(from, to) {
		n.w.trace.printf("%s→%s drop %s", from.name(), to.name(), describeMessage(m))
		n.reportSnapshot(from, to.id, false)
		return
	}
	chunks, err := readSnapshot(from, m)
	if err != nil {
		// The node named a checkpoint it had just made: on the simulated
		// disk, which never fails reads, this is a bug.
		n.w.failAs(FailError, "%s: read snapshot %q: %v", from.name(), m.GetSnapshot().GetData(), err)
		n.reportSnapshot(from, to.id, false)
		return
	}
	epoch := from.epoch
	n.inFlight++
	n.w.sched.after(n.delay(), func() {
		n.inFlight--
		delivered := n.deliverSnapshot(from, to, m, chunks)
		n.tellSnapshotOutcome(from, epoch, to.id, delivered)
	})
}

// reportSnapshot tells the sender, after one network delay, whether its
// snapshot to member to arrived.
func (n *network) reportSnapshot(from *member, to uint64, delivered bool) {
	epoch := from.epoch
	n.w.sched.after(n.delay(), func() { n.tellSnapshotOutcome(from, epoch, to, delivered) })
}

// tellSnapshotOutcome reports to the sender's raft, unless the sender
// crashed since it sent (its raft restarted and forgot the snapshot).
func (n *network) tellSnapshotOutcome(from *member, epoch int, to uint64, delivered bool) {
	if !delivered {
		n.snapshotsFailed++
	}
	if from.up() && from.epoch == epoch {
		from.node.ReportSnapshot(to, delivered)
		from.kick()
	}
}

func (n *network) deliverSnapshot(from, to *member, m *raftpb.Message, chunks []node.SnapshotChunk) bool {
	if !to.up() || n.isBlocked(from, to) {
		n.w.trace.printf("%s→%s drop %s", from.name(), to.name(), describeMessage(m))
		return false
	}
	data, err := stageSnapshot(to, m.GetSnapshot().GetMetadata().GetIndex(), chunks)
	if to.crashIfCrashPointFired() {
		return false // the stream broke with the receiver
	}
	if errors.Is(err, errorfs.ErrInjected) {
		// The disk-error fault failed a sync of a staged log file: the
		// stream fails, as the server's would, and the member stops at
		// its own next log sync.
		n.w.trace.printf("%s: staging the snapshot failed: %v", to.name(), err)
		return false
	}
	if err != nil {
		n.w.failAs(FailError, "%s: stage snapshot: %v", to.name(), err)
		return false
	}
	m.Snapshot.Data = data
	n.w.watchSnapshotInstall(to)
	n.deliver(from, to, m)
	return true
}
