package sim

import (
	"fmt"
	"strings"
	"sync"

	"github.com/cairn-db/cairn/node"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Crash points crash a member in the middle of a snapshot's creation,
// staging or install, at a step drawn from the seed, where a crash between
// Process calls never lands. They live in the member's filesystem, not in
// the node: the node runs its production code, and the filesystem takes
// the disk as a crash would leave it just before a chosen operation.
//
// A step is a sync, of a file or a directory: a simulated crash keeps
// exactly what was synced, so two crash points with no sync between them
// leave the same disk, and only syncs tell crash points apart (a create,
// rename or removal is kept by the next sync of its directory). Inside a
// database directory only write-ahead-log syncs count: Pebble's other
// files there (its manifest, markers, options, tables) matter only once
// CURRENT names the database, and their syncs while it does not are the
// same crash as before the first of them. Every counted sync runs on the
// simulator's goroutine or one it waits for (a commit waits for its WAL
// sync), so the count is deterministic.

// snapshotPhase is the snapshot activity a crash point counts steps of.
type snapshotPhase int

const (
	phaseCreate  snapshotPhase = iota // the leader makes a checkpoint under snap/
	phaseStage                        // a member writes a received snapshot under incoming/
	phaseInstall                      // a member makes a staged snapshot its database
)

var phaseNames = [...]string{"create", "stage", "install"}

func (p snapshotPhase) String() string { return phaseNames[p] }

// phaseStepsMax bounds the step a crash point is armed for, per phase:
// about the syncs the phase takes in the simulator, so most crash points
// land inside it and the rest just after. Making a checkpoint takes about
// 12 (the flush and WAL syncs, the checkpoint's files and directory),
// staging one about 7 (each of its six files or so, then the directory),
// and installing it about as many: opening the new database (syncs of the
// member's directory), CURRENT.tmp synced, the member's directory synced
// after the rename, and the log's next WAL syncs after the install.
var phaseStepsMax = [...]int{phaseCreate: 12, phaseStage: 8, phaseInstall: 8}

// crashPoint is one member's crash-point injector. MaybeError is called
// by Pebble's goroutines too: mu guards everything.
type crashPoint struct {
	mu sync.Mutex
	// disk is the member's in-memory disk, to clone when the point fires.
	disk func() *vfs.MemFS
	// snapDir and incomingDir are the member's snapshot directories, with
	// a trailing separator.
	snapDir, incomingDir string

	armed bool
	phase snapshotPhase
	// afterSteps is how many steps of the phase run before the crash.
	afterSteps int
	started    bool
	steps      int

	// image is the disk as the crash left it, once the point fired, and
	// where says before which operation.
	image *vfs.MemFS
	where string

	// installed is the index of the last snapshot install the member
	// started in this life (the rename of incoming/<index>), and
	// installDone says the Process that started it returned: what the
	// recovery check needs to know if it crashes.
	installed   uint64
	installDone bool
}

var _ errorfs.Injector = (*crashPoint)(nil)

func newCrashPoint(disk func() *vfs.MemFS) *crashPoint {
	return &crashPoint{disk: disk,
		snapDir:     memberDir + "/" + node.SnapshotsDir + "/",
		incomingDir: memberDir + "/" + node.IncomingDir + "/"}
}

func (c *crashPoint) String() string { return "snapshot-crash-point" }

// MaybeError never fails an operation; it only watches them.
func (c *crashPoint) MaybeError(op errorfs.Op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.startsInstall(op) {
		c.installed, c.installDone = indexOf(strings.TrimPrefix(op.Path, c.incomingDir)), false
	}
	if !c.armed || c.image != nil {
		return nil
	}
	if !c.started && c.startsPhase(op) {
		c.started = true
	}
	if !c.started || !c.isStep(op) {
		return nil
	}
	if c.steps == c.afterSteps {
		c.image = c.disk().CrashClone(vfs.CrashCloneCfg{})
		c.where = describeOp(op)
		return nil
	}
	c.steps++
	return nil
}

func (c *crashPoint) startsInstall(op errorfs.Op) bool {
	return op.Kind == errorfs.OpRename && strings.HasPrefix(op.Path, c.incomingDir) &&
		!strings.Contains(op.Path, ".partial")
}

func (c *crashPoint) startsPhase(op errorfs.Op) bool {
	switch c.phase {
	case phaseCreate:
		return strings.HasPrefix(op.Path, c.snapDir)
	case phaseStage:
		return strings.HasPrefix(op.Path, c.incomingDir) && strings.Contains(op.Path, ".partial")
	default:
		return c.startsInstall(op)
	}
}

func indexOf(name string) uint64 {
	var index uint64
	fmt.Sscanf(name, "%16x", &index)
	return index
}

func (c *crashPoint) isStep(op errorfs.Op) bool {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
	default:
		return false
	}
	name, ok := strings.CutPrefix(op.Path, memberDir+"/")
	if !ok || !strings.HasPrefix(name, databasePrefix) {
		return true
	}
	_, file, inside := strings.Cut(name, "/")
	return inside && strings.HasSuffix(file, ".log")
}

// databasePrefix starts the names of a member's database directories
// ("db", "db-<index>").
const databasePrefix = "db"

var opNames = map[errorfs.OpKind]string{
	errorfs.OpFileSync: "sync", errorfs.OpFileSyncData: "sync-data", errorfs.OpFileSyncTo: "sync-to",
}

func describeOp(op errorfs.Op) string { return opNames[op.Kind] + " " + op.Path }

// arm makes the point crash the member after afterSteps steps of phase.
func (c *crashPoint) arm(phase snapshotPhase, afterSteps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.phase, c.afterSteps = true, phase, afterSteps
	c.started, c.steps, c.image, c.where = false, 0, nil, ""
}

func (c *crashPoint) disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.image = false, nil
}

// fired returns the crash's disk and where it happened, once the point
// fired, and disarms it.
func (c *crashPoint) fired() (image *vfs.MemFS, phase snapshotPhase, steps int, where string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image == nil {
		return nil, 0, 0, ""
	}
	image, where = c.image, c.where
	c.armed, c.image = false, nil
	return image, c.phase, c.steps, where
}

// lastInstall returns the index of the last install the member started
// in the life that ended, and whether a crash interrupted it; the member
// is starting again, so it forgets both.
func (c *crashPoint) lastInstall() (index uint64, interrupted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	index, interrupted = c.installed, !c.installDone
	c.installed, c.installDone = 0, false
	return index, interrupted
}

// processReturned marks an install under way as complete.
func (c *crashPoint) processReturned() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.installDone = true
}

// crashPointRestartMicros bounds how long a member crashed by a crash
// point stays down.
const crashPointRestartMicros = 2 * second

// crashIfCrashPointFired crashes the member with the disk its crash point
// took, if it fired, and schedules its restart. The driver calls it after
// every call into the node that may touch the disk, before it uses what
// the call returned: what the member did after the crash point never
// happened.
func (m *member) crashIfCrashPointFired() bool {
	image, phase, steps, where := m.crashPoint.fired()
	if image == nil {
		return false
	}
	w := m.w
	w.crashPointsFired[phase]++
	w.trace.printf("crash point: %s crashes after %d steps of snapshot %s, before %s", m.name(), steps, phase, where)
	m.crashTo(image)
	epoch := m.epoch
	w.sched.after(100*millisecond+w.rng.Int64N(crashPointRestartMicros), func() {
		if m.epoch != epoch || m.removed {
			return
		}
		// Half the time the member crashes again in the snapshot it
		// catches up with: a crash while recovering from one.
		if phase != phaseCreate && w.sched.nowMicros < w.opts.DurationMicros && w.rng.IntN(2) == 0 {
			w.armCrashPoint(m, phaseStage+snapshotPhase(w.rng.IntN(2)))
		}
		w.restart(m)
	})
	return true
}

// armCrashPoint arms a member's crash point for a phase at a step drawn
// from the seed, until the end of the run's faults.
func (w *world) armCrashPoint(m *member, phase snapshotPhase) {
	if w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	steps := w.rng.IntN(phaseStepsMax[phase] + 1)
	w.crashPointsArmed[phase]++
	w.trace.printf("crash point: %s armed to crash after %d steps of snapshot %s", m.name(), steps, phase)
	m.crashPoint.arm(phase, steps)
	w.sched.after(w.opts.DurationMicros-w.sched.nowMicros, m.crashPoint.disarm)
}

// checkRecovery compares the raft state a member restarted with after a
// crash with what it held before (node.CheckRecovery): the crash
// recovery check.
func (m *member) checkRecovery() {
	installed, interrupted := m.crashPoint.lastInstall()
	after := m.node.RaftState()
	if m.durableKnown {
		if err := node.CheckRecovery(m.durable, after, installed, interrupted); err != nil {
			m.w.failAs(FailCrashRecovery, "%s %v", m.name(), err)
		}
	}
	m.noteDurable()
}

// noteDurable records the raft state the member holds after a Process: a
// crash from here on must keep its term, vote and log. An install the
// Process started is complete.
func (m *member) noteDurable() {
	m.durable, m.durableKnown = m.node.RaftState(), true
	m.crashPoint.processReturned()
}

// snapshotCrash is the nemesis's snapshot-crash fault: a member crashes,
// so the cluster moves on without it, and restarts when healed with a
// crash point armed in its catch-up (staging or installing the snapshot
// it will likely need), while the leader may get one in making it.
func (n *nemesis) snapshotCrash(m *member) func() {
	w := n.w
	w.trace.printf("nemesis: crash %s, to crash it again in a snapshot", m.name())
	m.crash()
	return func() {
		if m.removed {
			return
		}
		w.armCrashPoint(m, phaseStage+snapshotPhase(w.rng.IntN(2)))
		w.restart(m)
		if l := w.leader(); l != nil && l != m && w.rng.IntN(2) == 0 {
			w.armCrashPoint(l, phaseCreate)
		}
	}
}
