package sim

import (
	"io"
	"sort"

	"github.com/cairn-db/cairn/node"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// snapshotFiles is a snapshot's checkpoint in flight: file name to bytes,
// read from the sender's disk when the message is sent, as the real
// transport streams it.
type snapshotFiles map[string][]byte

func readSnapshot(fs vfs.FS, dir string) (snapshotFiles, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	files := snapshotFiles{}
	for _, name := range names {
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return files, nil
}

// stage writes the files durably into the receiver's incoming directory
// and returns the snapshot's name there.
func (files snapshotFiles) stage(fs vfs.FS, memberDir string, index uint64) (string, error) {
	rel := node.IncomingSnapshotPath(index)
	dir := fs.PathJoin(memberDir, rel)
	if err := fs.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeSynced(fs, fs.PathJoin(dir, name), files[name]); err != nil {
			return "", err
		}
	}
	return rel, nil
}

func writeSynced(fs vfs.FS, name string, b []byte) error {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// sendSnapshot carries a MsgSnap with its checkpoint: the files are read
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
	files, err := readSnapshot(from.fs, from.fs.PathJoin(memberDir, string(m.GetSnapshot().GetData())))
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
		delivered := n.deliverSnapshot(from, to, m, files)
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

func (n *network) deliverSnapshot(from, to *member, m *raftpb.Message, files snapshotFiles) bool {
	if !to.up() || n.isBlocked(from, to) {
		n.w.trace.printf("%s→%s drop %s", from.name(), to.name(), describeMessage(m))
		return false
	}
	rel, err := files.stage(to.fs, memberDir, m.GetSnapshot().GetMetadata().GetIndex())
	if err != nil {
		n.w.failAs(FailError, "%s: stage snapshot: %v", to.name(), err)
		return false
	}
	m.Snapshot.Data = []byte(rel)
	n.w.watchSnapshotInstall(to)
	n.deliver(from, to, m)
	return true
}
