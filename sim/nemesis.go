package sim

import (
	"fmt"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"slices"
)

// FaultKind names one kind of fault the nemesis injects.
type FaultKind string

// The faults. Each is injected for a while and then healed.
const (
	FaultCrash          FaultKind = "crash"           // one member crashes, restarts later
	FaultCrashMinority  FaultKind = "crash-minority"  // a minority crashes
	FaultCrashAll       FaultKind = "crash-all"       // every member crashes at once
	FaultPartition      FaultKind = "partition"       // a symmetric split into two sides
	FaultIsolateLeader  FaultKind = "isolate-leader"  // the leader is cut off from everyone
	FaultOneWay         FaultKind = "one-way"         // messages from one member to another are dropped
	FaultFlapping       FaultKind = "flapping"        // a partition that comes and goes
	FaultLossy          FaultKind = "lossy"           // random loss and duplication
	FaultClockSkew      FaultKind = "clock-skew"      // one member's clock runs fast or slow
	FaultClockJump      FaultKind = "clock-jump"      // one member's clock jumps ahead
	FaultSlowDisk       FaultKind = "slow-disk"       // one member's fsyncs take long
	FaultLeaderTransfer FaultKind = "leader-transfer" // the leader hands over to another member
	FaultMembership     FaultKind = "membership"      // add a learner, promote it, or remove a voter
	FaultDiskError      FaultKind = "disk-error"      // one member's log syncs fail: it must stop, then restart
	FaultSnapshotCrash  FaultKind = "snapshot-crash"  // one member crashes, and again inside its catch-up snapshot
	FaultPause          FaultKind = "pause"           // one member (often the leader) freezes, then resumes with its stale view
	// Storage maintenance rather than faults: Pebble's memtable flushes
	// and compactions, at moments the seed chooses, on their own schedule
	// beside the nemesis's faults (disk.go).
	FaultFlush   FaultKind = "flush"
	FaultCompact FaultKind = "compact"
)

// AllFaults lists every fault kind.
var AllFaults = []FaultKind{
	FaultCrash, FaultCrashMinority, FaultCrashAll, FaultPartition, FaultIsolateLeader,
	FaultOneWay, FaultFlapping, FaultLossy, FaultClockSkew, FaultClockJump,
	FaultSlowDisk, FaultLeaderTransfer, FaultMembership, FaultDiskError, FaultSnapshotCrash, FaultPause,
	FaultFlush, FaultCompact,
}

// Clock faults' bounds. Rates run from half to three times real time, and
// jumps leap up to five election timeouts: see "Clocks" in
// docs/simulation.md for why these bounds and what they assume.
const (
	skewPercentMin = 50
	skewPercentMax = 300
	jumpTicksMax   = 5 * electionTicks
)

// nemesis schedules faults from the seed, one at a time: a quiet gap, a
// fault for a while, its healing, and again, until the run's duration.
type nemesis struct {
	w     *world
	kinds []FaultKind
}

func (n *nemesis) start() {
	n.w.trace.printf("disk: memtables of %d KiB, raft log segments of %d KiB, values in blob files from %d bytes, newest version cache of %d bytes, read cache of %d bytes",
		n.w.disk.memTableBytes>>10, n.w.disk.logSegmentBytes>>10, n.w.disk.separatedValueBytesMin, n.w.disk.latestVersionCacheBytes, n.w.disk.readCacheBytes)
	flush, compact := slices.Contains(n.kinds, FaultFlush), slices.Contains(n.kinds, FaultCompact)
	if flush || compact {
		n.maintainStorage(flush, compact)
	}
	n.kinds = slices.DeleteFunc(slices.Clone(n.kinds), func(k FaultKind) bool { return k == FaultFlush || k == FaultCompact })
	if len(n.kinds) == 0 {
		return
	}
	n.w.sched.after(n.quiet(), n.inject)
}

func (n *nemesis) quiet() int64 { return 500*millisecond + n.w.rng.Int64N(3*second) }

func (n *nemesis) inject() {
	w := n.w
	if w.sched.nowMicros >= w.opts.DurationMicros || w.failed() {
		return
	}
	kind := n.kinds[w.rng.IntN(len(n.kinds))]
	length := second + w.rng.Int64N(5*second)
	heal := n.apply(kind, length)
	w.trace.printf("nemesis: %s", kind)
	w.sched.after(length, func() {
		heal()
		w.trace.printf("nemesis: healed %s", kind)
		w.sched.after(n.quiet(), n.inject)
	})
}

// apply injects a fault and returns what heals it.
func (n *nemesis) apply(kind FaultKind, length int64) func() {
	w := n.w
	switch kind {
	case FaultCrash:
		return n.crash(w.pick(1))
	case FaultCrashMinority:
		return n.crash(w.pick((len(w.members) - 1) / 2))
	case FaultCrashAll:
		return n.crash(w.members)
	case FaultPartition:
		side := w.pick(1 + w.rng.IntN(len(w.members)/2))
		if l := w.leader(); slices.Contains(side, l) {
			w.readBurst(l, burstMicros) // the leader is cut off from a majority
		}
		return n.partition(side)
	case FaultIsolateLeader:
		return n.isolateLeader()
	case FaultOneWay:
		from, to := w.pick(2)[0], w.pick(2)[1]
		w.net.block(from, to)
		w.trace.printf("nemesis: drop %s→%s", from.name(), to.name())
		return w.net.heal
	case FaultFlapping:
		return n.flap(w.pick(1+w.rng.IntN(len(w.members)/2)), length)
	case FaultLossy:
		w.net.lossPercent, w.net.duplicatePercent = 5+w.rng.IntN(25), 5+w.rng.IntN(20)
		return w.net.heal
	case FaultClockSkew:
		return n.skew(w.pick(1)[0])
	case FaultClockJump:
		return n.jump(w.pick(1)[0])
	case FaultSlowDisk:
		return n.slowDisk(w.pick(1)[0])
	case FaultLeaderTransfer:
		return n.transfer()
	case FaultMembership:
		return n.changeMembership()
	case FaultDiskError:
		return n.diskError(w.pick(1)[0])
	case FaultSnapshotCrash:
		return n.snapshotCrash(w.pick(1)[0]) // crashpoint.go
	case FaultPause:
		return n.pauseFault(length)
	}
	panic(fmt.Sprintf("sim: unknown fault %q", kind))
}

func (n *nemesis) crash(victims []*member) func() {
	for _, m := range victims {
		n.w.trace.printf("nemesis: crash %s", m.name())
		m.crash()
	}
	return func() {
		for _, m := range victims {
			n.w.restart(m)
		}
	}
}

func (n *nemesis) partition(side []*member) func() {
	w := n.w
	names := make([]string, len(side))
	for i, m := range side {
		names[i] = m.name()
	}
	w.trace.printf("nemesis: partition %v from the rest", names)
	for _, a := range w.members {
		for _, b := range w.members {
			if slices.Contains(side, a) != slices.Contains(side, b) {
				w.net.block(a, b)
			}
		}
	}
	return w.net.heal
}

// flap toggles a partition every few hundred milliseconds.
func (n *nemesis) flap(side []*member, length int64) func() {
	w := n.w
	healed := false
	var toggle func(on bool)
	toggle = func(on bool) {
		if healed {
			return
		}
		if on {
			n.partition(side)
		} else {
			w.net.heal()
		}
		w.sched.after(100*millisecond+w.rng.Int64N(400*millisecond), func() { toggle(!on) })
	}
	toggle(true)
	return func() { healed = true; w.net.heal() }
}

// isolateLeader cuts the leader off, with a burst of reads at it.
func (n *nemesis) isolateLeader() func() {
	leader := n.w.leaderOrAny()
	n.w.readBurst(leader, burstMicros)
	return n.partition([]*member{leader})
}

// skew makes a member's raft ticks, its lease clock, or both run at
// another rate (clockTarget).
func (n *nemesis) skew(m *member) func() {
	percent := int64(skewPercentMin + n.w.rng.IntN(skewPercentMax-skewPercentMin+1))
	target := n.clockTarget()
	n.w.trace.printf("nemesis: %s %s at %d%%", m.name(), target, percent)
	healed := func() {}
	if target.ticks {
		m.tickMicros = tickMicros * 100 / percent
	}
	if target.lease {
		m.leaseClock.setRate(percent)
		healed = n.w.noteClockFault(float64(percent) / 100)
	}
	return func() { m.tickMicros = tickMicros; m.leaseClock.setRate(100); healed() }
}

// jump makes a member's raft time (a burst of ticks), its lease clock, or
// both leap ahead at once.
func (n *nemesis) jump(m *member) func() {
	ticks := 1 + n.w.rng.IntN(jumpTicksMax)
	target := n.clockTarget()
	n.w.trace.printf("nemesis: %s %s jump %d ticks", m.name(), target, ticks)
	if target.lease {
		n.w.noteClockFault(0)
		m.leaseClock.jump(int64(ticks) * tickMicros)
	}
	if target.ticks {
		for range ticks {
			m.tick()
		}
	}
	return func() {}
}

func (n *nemesis) slowDisk(m *member) func() {
	m.diskMicros = 20*millisecond + n.w.rng.Int64N(200*millisecond)
	n.w.trace.printf("nemesis: %s fsync takes %dms", m.name(), m.diskMicros/millisecond)
	return func() { m.diskMicros = defaultDiskMicros }
}

// diskError makes a member's log syncs fail. The member must stop at the
// first failed sync (fail-stop, nothing acknowledged from doubtful state);
// healing restores the disk and restarts it.
func (n *nemesis) diskError(m *member) func() {
	n.w.trace.printf("nemesis: %s log syncs fail", m.name())
	m.diskFailing.On()
	return func() {
		m.diskFailing.Off()
		n.w.restart(m)
	}
}

func (n *nemesis) transfer() func() {
	w := n.w
	leader := w.leader()
	if leader == nil {
		return func() {}
	}
	var others []*member
	for _, m := range w.members {
		if m != leader {
			others = append(others, m)
		}
	}
	to := others[w.rng.IntN(len(others))]
	w.trace.printf("nemesis: transfer leadership %s → %s", leader.name(), to.name())
	// As etcdctl move-leader does; nobody waits for the answer.
	leader.start(node.Request{MoveLeader: &pb.MoveLeaderRequest{TargetID: to.id}})
	leader.kick()
	return func() {}
}
