package node

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Automatic compaction (etcd's --auto-compaction-mode and
// --auto-compaction-retention). Which revision is compacted, and when,
// changes what clients can read, so the decision is core logic: the
// leader's autoCompactor looks at its tick count and the applied revision
// once a tick and proposes a Compaction request like a client's. Time is
// ticks × TickInterval, the driver's clock input, so the simulator drives
// it as it drives elections.
//
// The rules are etcd 3.7's:
//   - periodic, retention P: the revision is sampled every
//     min(P, 1 h)/10; once P has passed since the start (then every
//     min(P, 1 h) after the last compaction), the leader compacts to the
//     oldest sample of the last P, unless it compacted to it already;
//   - revision, retention N: every 5 minutes the leader compacts to the
//     current revision minus N, if that is positive and new.
//
// A compaction to a revision already compacted counts as done, as etcd
// counts ErrCompacted. A compaction that does not apply within
// RequestTimeoutTicks (a lost leadership) is forgotten and tried again at
// the next check.

// AutoCompactionMode is how the leader chooses revisions to compact.
type AutoCompactionMode int

const (
	// AutoCompactionOff never compacts by itself (retention 0 in etcd).
	AutoCompactionOff AutoCompactionMode = iota
	// AutoCompactionPeriodic keeps AutoCompactionRetention of history.
	AutoCompactionPeriodic
	// AutoCompactionRevision keeps AutoCompactionRetainRevisions revisions.
	AutoCompactionRevision
)

const (
	// autoCompactionIntervalMax caps the periodic mode's compaction
	// interval, as etcd's does: a retention of days still compacts hourly.
	autoCompactionIntervalMax = time.Hour
	// autoCompactionSamplesPerInterval is how many revision samples the
	// periodic mode takes per compaction interval (etcd's retryDivisor).
	autoCompactionSamplesPerInterval = 10
	// autoCompactionRevisionInterval is how often the revision mode checks.
	autoCompactionRevisionInterval = 5 * time.Minute
)

// autoCompactor decides when the leader compacts. Every member keeps one
// (the samples must exist when it becomes leader); only the leader's
// decisions are proposed.
type autoCompactor struct {
	mode AutoCompactionMode
	// checkIntervalTicks is the period of checks, and of samples in the
	// periodic mode.
	checkIntervalTicks uint64
	nextCheckTick      uint64

	// Periodic mode.
	// samples are the revisions sampled every checkIntervalTicks, oldest
	// first. Invariant: len(samples) <= samplesMax.
	samples    []int64
	samplesMax int
	// waitTicks is how long after lastSuccessTick the next compaction
	// waits: the retention at first, then the compaction interval.
	waitTicks            uint64
	compactIntervalTicks uint64
	lastSuccessTick      uint64

	// Revision mode.
	retainRevisions int64

	// lastRevision is the revision last compacted by this compactor.
	lastRevision int64
	// pendingRevision, if non-zero, was proposed at pendingSinceTick and is
	// not yet applied.
	pendingRevision  int64
	pendingSinceTick uint64
	pendingTimeout   uint64
}

// ticksOf converts d to ticks of tick, at least one.
func ticksOf(d, tick time.Duration) uint64 {
	return max(uint64((d+tick-1)/tick), 1)
}

// newAutoCompactor returns the compactor cfg asks for, or nil when off;
// nowTick and rev are the node's tick count and revision at open.
func newAutoCompactor(cfg *Config, nowTick uint64, rev int64) *autoCompactor {
	c := &autoCompactor{mode: cfg.AutoCompactionMode, pendingTimeout: uint64(cfg.RequestTimeoutTicks)}
	switch cfg.AutoCompactionMode {
	case AutoCompactionPeriodic:
		interval := min(cfg.AutoCompactionRetention, autoCompactionIntervalMax)
		c.checkIntervalTicks = ticksOf(interval/autoCompactionSamplesPerInterval, cfg.TickInterval)
		c.compactIntervalTicks = ticksOf(interval, cfg.TickInterval)
		c.waitTicks = ticksOf(cfg.AutoCompactionRetention, cfg.TickInterval)
		c.samplesMax = int(c.waitTicks/c.checkIntervalTicks) + 1
		c.samples = []int64{rev}
		c.lastSuccessTick = nowTick
	case AutoCompactionRevision:
		c.checkIntervalTicks = ticksOf(autoCompactionRevisionInterval, cfg.TickInterval)
		c.retainRevisions = cfg.AutoCompactionRetainRevisions
	default:
		return nil
	}
	c.nextCheckTick = nowTick + c.checkIntervalTicks
	return c
}

// tick is called once a tick with the node's tick count, its applied and
// compacted revisions, and whether it leads; it returns the revision to
// compact now, or 0.
func (c *autoCompactor) tick(nowTick uint64, rev, compactRev int64, leader bool) int64 {
	c.settlePending(nowTick, compactRev)
	if nowTick < c.nextCheckTick {
		return 0
	}
	c.nextCheckTick = nowTick + c.checkIntervalTicks
	var target int64
	if c.mode == AutoCompactionPeriodic {
		target = c.periodicTarget(nowTick)
		c.samples = append(c.samples, rev)
		if len(c.samples) > c.samplesMax {
			c.samples = c.samples[1:]
		}
	} else {
		target = c.revisionTarget(rev)
	}
	if target <= 0 || !leader || c.pendingRevision != 0 {
		return 0
	}
	if target <= compactRev {
		c.succeeded(nowTick, target) // etcd's ErrCompacted counts as done
		return 0
	}
	c.pendingRevision, c.pendingSinceTick = target, nowTick
	return target
}

// periodicTarget is the oldest sample of the retention window once the
// wait since the last compaction is over and it is new.
func (c *autoCompactor) periodicTarget(nowTick uint64) int64 {
	oldest := c.samples[0]
	if nowTick-c.lastSuccessTick < c.waitTicks || oldest == c.lastRevision {
		return 0
	}
	return oldest
}

func (c *autoCompactor) revisionTarget(rev int64) int64 {
	target := rev - c.retainRevisions
	if target <= 0 || target == c.lastRevision {
		return 0
	}
	return target
}

// settlePending records a proposed compaction that applied, or forgets
// one that did not in time.
func (c *autoCompactor) settlePending(nowTick uint64, compactRev int64) {
	switch {
	case c.pendingRevision == 0:
	case compactRev >= c.pendingRevision:
		// etcd counts from when its compaction call returned, right
		// after the check: the proposal's tick, not this one.
		c.succeeded(c.pendingSinceTick, c.pendingRevision)
	case nowTick-c.pendingSinceTick >= c.pendingTimeout:
		c.pendingRevision = 0
	}
}

func (c *autoCompactor) succeeded(nowTick uint64, rev int64) {
	c.lastRevision, c.lastSuccessTick, c.pendingRevision = rev, nowTick, 0
	c.waitTicks = c.compactIntervalTicks
}

// autoCompactTick runs the compactor once a tick and, on the leader,
// proposes the compaction it decides.
func (n *Node) autoCompactTick() {
	if n.autoCompactor == nil {
		return
	}
	target := n.autoCompactor.tick(n.ticks, n.store.Rev(), n.store.CompactRev(), n.isLeader())
	if target == 0 {
		return
	}
	n.cfg.Logger.Infof("starting auto compaction at revision %d (%s)", target, n.cfg.autoCompactionString())
	// The completion has no waiter; drivers drop it. The compactor sees
	// the result in the store's compacted revision.
	n.Start(Request{Compaction: &pb.CompactionRequest{Revision: target}, byMember: true})
}

// autoCompactionString describes the configuration for the log.
func (c *Config) autoCompactionString() string {
	switch c.AutoCompactionMode {
	case AutoCompactionPeriodic:
		return fmt.Sprintf("periodic, retention %v", c.AutoCompactionRetention)
	case AutoCompactionRevision:
		return fmt.Sprintf("revision, retention %d revisions", c.AutoCompactionRetainRevisions)
	}
	return "off"
}
