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
// A step is an operation that changes what the member's directory holds
// after a crash: a create, link, recursive removal, rename, directory
// creation or sync. Inside a database directory only two kinds count: a
// write-ahead-log sync (what makes data durable) and removing the
// database; Pebble's other files there (its manifest, markers, options,
// tables) matter only once CURRENT names the database, and a crash among
// them while it does not is the same crash as before the first of them.
// Plain removals are not counted: Pebble deletes obsolete files from a
// goroutine of its own, and counting them would make the step a crash
// lands on depend on goroutine timing. Every counted step runs on the
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
// about the steps the phase takes in the simulator, so most crash points
// land inside it and the rest just after. Making a checkpoint of the five
// files a simulated database has takes about 14 steps, staging it 14
// (each file created and synced, the directory synced and renamed), and
// installing it 11: the rename into place, closing the old database (a
// WAL sync), opening the new one (directory syncs), this member's raft
// state committed (a WAL sync), CURRENT written, synced, renamed and its
// directory synced, the old database removed.
var phaseStepsMax = [...]int{phaseCreate: 16, phaseStage: 16, phaseInstall: 12}

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

	// installing is the index of a snapshot install the member started
	// (the rename of incoming/<index>) in a Process that has not returned:
	// what the recovery check needs to know if it crashes meanwhile.
	installing uint64
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
		c.installing = indexOf(strings.TrimPrefix(op.Path, c.incomingDir))
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
	sync := false
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		sync = true
	case errorfs.OpCreate, errorfs.OpLink, errorfs.OpRemoveAll, errorfs.OpRename, errorfs.OpMkdirAll:
	default:
		return false
	}
	name, ok := strings.CutPrefix(op.Path, memberDir+"/")
	if !ok || !strings.HasPrefix(name, databasePrefix) {
		return true
	}
	database, file, inside := strings.Cut(name, "/")
	if !inside {
		return op.Kind == errorfs.OpRemoveAll && (database == databasePrefix || strings.HasPrefix(database, databasePrefix+"-"))
	}
	return sync && strings.HasSuffix(file, ".log")
}

// databasePrefix starts the names of a member's database directories
// ("db", "db-<index>").
const databasePrefix = "db"

var opNames = map[errorfs.OpKind]string{
	errorfs.OpCreate: "create", errorfs.OpLink: "link", errorfs.OpRemoveAll: "remove-all",
	errorfs.OpRename: "rename", errorfs.OpMkdirAll: "mkdir", errorfs.OpFileSync: "sync",
	errorfs.OpFileSyncData: "sync-data", errorfs.OpFileSyncTo: "sync-to",
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

// startedInstall returns the index of the install the member started in
// the Process under way, and forgets it.
func (c *crashPoint) startedInstall() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	index := c.installing
	c.installing = 0
	return index
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
	installing := m.crashPoint.startedInstall()
	after := m.node.RaftState()
	if m.durableKnown {
		if err := node.CheckRecovery(m.durable, after, installing); err != nil {
			m.w.fail("crash recovery: %s %v", m.name(), err)
		}
	}
	m.noteDurable()
}

// noteDurable records the raft state the member holds after a Process: a
// crash from here on must keep its term, vote and log. An install the
// Process started is complete.
func (m *member) noteDurable() {
	m.durable, m.durableKnown = m.node.RaftState(), true
	m.crashPoint.startedInstall()
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
