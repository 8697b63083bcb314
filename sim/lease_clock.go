package sim

import "time"

// leaseClock is a member's lease clock: the monotonic time its node reads
// for lease expiry (node.Config.Clock), as the server's driver hands the
// node the wall clock. It is separate from the member's raft time, which is
// its ticks (member.tickMicros), so clock faults can move one without the
// other: a skew of the ticks alone, of the lease clock alone, or of both,
// and jumps of either. It reads only virtual time, so it is deterministic.
// It survives the member's restarts, as a machine's clock does.
type leaseClock struct {
	w *world
	// anchorMicros is the virtual time of the last rate change or jump;
	// anchorReadMicros what the clock read then.
	anchorMicros, anchorReadMicros int64
	// ratePercent is how fast the clock runs relative to virtual time.
	ratePercent int64
}

// leaseClockEpoch is what every lease clock reads at virtual time 0.
var leaseClockEpoch = time.Unix(0, 0).UTC()

func newLeaseClock(w *world) *leaseClock {
	return &leaseClock{w: w, anchorMicros: w.sched.nowMicros, anchorReadMicros: w.sched.nowMicros, ratePercent: 100}
}

// Now implements node.Clock.
func (c *leaseClock) Now() time.Time {
	return leaseClockEpoch.Add(time.Duration(c.readMicros()) * time.Microsecond)
}

func (c *leaseClock) readMicros() int64 {
	return c.anchorReadMicros + (c.w.sched.nowMicros-c.anchorMicros)*c.ratePercent/100
}

// reanchor starts a new stretch at the current virtual time.
func (c *leaseClock) reanchor() {
	c.anchorReadMicros, c.anchorMicros = c.readMicros(), c.w.sched.nowMicros
}

// setRate makes the clock run at percent of real time from now on.
func (c *leaseClock) setRate(percent int64) {
	c.reanchor()
	c.ratePercent = percent
}

// jump makes the clock leap ahead by micros at once.
func (c *leaseClock) jump(micros int64) {
	c.reanchor()
	c.anchorReadMicros += micros
}

// clockTarget is what a clock fault moves: raft time (ticks), lease time,
// or both.
type clockTarget struct{ ticks, lease bool }

func (t clockTarget) String() string {
	switch {
	case t.ticks && t.lease:
		return "raft ticks and lease clock"
	case t.ticks:
		return "raft ticks"
	}
	return "lease clock"
}

// clockTarget draws what a clock fault moves, each case a third of the
// time: the two clocks apart (skew between raft time and lease time) or
// together.
func (n *nemesis) clockTarget() clockTarget {
	switch n.w.rng.IntN(3) {
	case 0:
		return clockTarget{ticks: true}
	case 1:
		return clockTarget{lease: true}
	}
	return clockTarget{ticks: true, lease: true}
}
