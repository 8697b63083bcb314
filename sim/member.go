package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/watch"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3"
)

// member is one simulated cairn member: a real node.Node on a crashable
// in-memory disk.
type member struct {
	w  *world
	id uint64
	// joins is set for members added to the running cluster: they start
	// empty and wait for a snapshot.
	joins bool
	// removed is set once the cluster applied this member's removal.
	removed bool
	fs      *vfs.MemFS
	// diskFailing, when on, fails every sync of the member's write-ahead
	// log (the nemesis's disk-error fault). Only syncs: a sync is what a
	// commit waits for, so the failure surfaces at a deterministic point.
	diskFailing errorfs.Toggle
	// crashPoint crashes the member inside a snapshot's creation, staging
	// or install (crashpoint.go).
	crashPoint *crashPoint
	// disk is fs as the node sees it, through both injectors.
	disk vfs.FS
	// durable is the raft state the member held after its last Process,
	// what a crash must keep (crashpoint.go); durableKnown once it ran.
	durable      node.RaftState
	durableKnown bool
	node         *node.Node // nil while crashed
	// epoch grows at every crash; events scheduled for an older epoch are
	// stale and do nothing.
	epoch int
	// processing is set while a Process call is scheduled.
	processing bool
	// tickMicros is this member's tick period: skewed clocks tick at
	// different rates.
	tickMicros int64
	// leaseClock is the time its node reads for leases (lease_clock.go).
	leaseClock *leaseClock
	// diskMicros is the virtual latency of one Process (an fsync).
	diskMicros int64
	// waiting maps request IDs on this member to client operations.
	waiting map[uint64]*pendingOp
	// callbacks maps request IDs on this member to the lease workload's
	// requests (ops.go).
	callbacks map[uint64]completionCallback
	// lastLeader is the leader this member last reported, for the trace.
	lastLeader uint64
	// leasePrimary is whether its lessor was primary at the last check,
	// valid for leasePrimaryEpoch (lease_checkpoint.go).
	leasePrimary      bool
	leasePrimaryEpoch int
	// stateFlushesSeen is the node's count of the applied state's flushes
	// when the member last waited for storage to be idle.
	stateFlushesSeen uint64
	// paused is set while the member is frozen (pause.go); held are the
	// messages that reached it meanwhile, delivered when it resumes.
	paused bool
	held   []heldMessage
	// hub is the member's watch hub (watch.go), nil while crashed;
	// hubTicks counts the ticks it was given.
	hub      *watch.Hub
	hubTicks int64
}

const memberDir = "data"

// name is the member's name in traces: founding members are n1, n2, ...;
// members added later have IDs derived by the member API (hashes), shown
// by their first hex digits.
func (m *member) name() string {
	if m.id < 1000 {
		return fmt.Sprintf("n%d", m.id)
	}
	return fmt.Sprintf("n%04x", m.id>>48)
}

func (m *member) open() error {
	m.disk = errorfs.Wrap(m.fs, errorfs.Any(&m.diskFailing, m.crashPoint))
	n, err := node.Open(node.Config{
		ID:             m.id,
		InitialVoters:  m.w.foundingIDs(),
		InitialMembers: m.w.foundingMembers(),
		Join:           m.joins,
		FS:             m.disk,
		Dir:            memberDir,
		ElectionTicks:  electionTicks,
		// A short log makes members that were down catch up by snapshot.
		SnapshotCount:           m.w.snapshotCount,
		SnapshotCatchUpEntries:  m.w.snapshotCatchUp,
		LogSegmentBytes:         m.w.disk.logSegmentBytes,
		SeparatedValueBytesMin:  m.w.disk.separatedValueBytesMin,
		LatestVersionCacheBytes: m.w.disk.latestVersionCacheBytes,
		ReadCacheBytes:          m.w.disk.readCacheBytes,
		Rand:                    rand.New(rand.NewPCG(m.w.rng.Uint64(), m.w.rng.Uint64())),
		Logger:                  &raftTrace{m: m},
		PebbleOptions:           m.pebbleOptions,
		Limits:                  m.w.quota.limits(),
		Knobs:                   m.knobs(),
		CorruptCheckTicks:       corruptCheckTicks,
		CompactHashCheckTicks:   compactHashCheckTicks,
		Clock:                   m.leaseClock,
		AuthJWT:                 m.w.tokens.jwtFor(m.id),
		// A write without a leader fails definitely before its client
		// gives up (requestTimeoutMicros), so the history knows it.
		RequestTimeoutTicks: 15,
		// Streamed ranges take several chunks of the few keys.
		RangeStreamFirstChunkKeys: rangeStreamFirstChunkKeys(m.w.opts.Seed),
		LeaseCheckpointInterval:   m.w.opts.leaseCheckpointInterval(),
	})
	if err != nil {
		return fmt.Errorf("%s: open: %w", m.name(), err)
	}
	m.node = n
	m.openWatchHub()
	m.waitStorageIdle()
	m.waiting = map[uint64]*pendingOp{}
	m.callbacks = map[uint64]completionCallback{}
	m.checkRecovery()
	return nil
}

func (m *member) up() bool { return m.node != nil }

// crash stops the member, keeping what it synced and a seeded part of
// what it wrote without syncing (disk.go).
func (m *member) crash() {
	if !m.up() {
		return
	}
	keepPercent, seed := m.w.unsyncedPercentOfCrash(), m.w.rng.Uint64()
	m.w.trace.printf("%s crashes, keeping %d%% of unsynced data", m.name(), keepPercent)
	crashed, err := m.crashDisk(keepPercent, seed)
	if err != nil {
		m.w.fail("%s: crash image: %v", m.name(), err)
		crashed = m.fs.CrashClone(vfs.CrashCloneCfg{})
	}
	m.crashTo(crashed)
}

// crashTo stops the member, leaving crashed on its disk.
func (m *member) crashTo(crashed *vfs.MemFS) {
	m.node.Close() // ErrStopped if crashDisk closed it already
	m.node, m.fs = nil, crashed
	m.epoch++
	m.processing = false
	m.paused, m.held = false, nil
	for _, id := range sortedKeys(m.waiting) {
		m.waiting[id].unknown()
	}
	m.waiting = nil
	callbacks := m.callbacks
	m.callbacks = nil
	for _, id := range sortedKeys(callbacks) {
		callbacks[id](m, nil)
	}
	m.w.detachWatchers(m)
	m.lastLeader = 0
}

// kick schedules a Process call if the member has work and none is
// scheduled. Inputs that arrive before it runs ride the same one, as they
// ride one fsync in the real server.
func (m *member) kick() {
	if m.removed || !m.up() || m.paused || m.crashIfCrashPointFired() || m.processing || !m.node.HasReady() {
		return
	}
	m.processing = true
	epoch := m.epoch
	m.w.sched.after(m.diskMicros, func() {
		if m.epoch != epoch {
			return
		}
		m.processing = false
		if m.paused {
			return // resume kicks it again
		}
		m.process()
		m.kick()
	})
}

func (m *member) process() {
	out, err := m.node.Process()
	if m.crashIfCrashPointFired() {
		return
	}
	m.waitStorageIdle()
	if errors.Is(err, node.ErrRemoved) {
		m.w.retire(m.id)
		return
	}
	if errors.Is(err, node.ErrStorageFailed) {
		m.w.trace.printf("%s fail-stop: %v", m.name(), err)
		m.w.failStops = append(m.w.failStops, err.Error())
		m.crash()
		return
	}
	if err != nil {
		m.w.fail("%s: Process failed: %v", m.name(), err)
		return
	}
	m.noteDurable()
	if err := m.node.CheckMemoryBudgets(); err != nil {
		m.w.fail("%s: memory budget: %v", m.name(), err)
	}
	if out.MembershipChanged {
		defer m.w.retireRemoved(m)
	}
	m.w.net.send(m, out.Messages)
	m.w.feedWatchers(m, out)
	m.hashForChecks(out.HashRequests)
	m.w.checkCorruptAlarmOn(m)
	for _, c := range out.Done {
		if op, ok := m.waiting[c.ID]; ok {
			delete(m.waiting, c.ID)
			op.complete(m, c)
		}
		if cb, ok := m.callbacks[c.ID]; ok {
			delete(m.callbacks, c.ID)
			cb(m, &c)
		}
	}
	m.traceLeader()
	m.checkLeaseCheckpoints()
}

func (m *member) traceLeader() {
	st := m.node.Status()
	if st.Leader != m.lastLeader {
		m.lastLeader = st.Leader
		m.w.trace.printf("%s leader=n%d term=%d", m.name(), st.Leader, st.Term)
	}
}

func (m *member) tick() {
	if !m.up() || m.paused {
		return
	}
	m.node.Tick()
	m.checkLeaseCheckpoints()
	if m.node.LeaderLost() {
		m.w.endLeaderlessStreams(m)
	}
	m.tickWatchHub()
	m.kick()
}

// raftTrace puts raft's notable log lines into the trace.
type raftTrace struct{ m *member }

func (r *raftTrace) Debug(...any)          {}
func (r *raftTrace) Debugf(string, ...any) {}
func (r *raftTrace) Info(v ...any)         {}
func (r *raftTrace) Infof(f string, v ...any) {
	r.m.w.trace.printf("%s raft: "+f, append([]any{r.m.name()}, v...)...)
}
func (r *raftTrace) Warning(v ...any) {
	r.m.w.trace.printf("%s raft: %s", r.m.name(), fmt.Sprint(v...))
}
func (r *raftTrace) Warningf(f string, v ...any) {
	r.m.w.trace.printf("%s raft: "+f, append([]any{r.m.name()}, v...)...)
}
func (r *raftTrace) Error(v ...any) { r.m.w.trace.printf("%s raft: %s", r.m.name(), fmt.Sprint(v...)) }
func (r *raftTrace) Errorf(f string, v ...any) {
	r.m.w.trace.printf("%s raft: "+f, append([]any{r.m.name()}, v...)...)
}
func (r *raftTrace) Fatal(v ...any) { panic(fmt.Sprint(v...)) }
func (r *raftTrace) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
func (r *raftTrace) Panic(v ...any) { panic(fmt.Sprint(v...)) }
func (r *raftTrace) Panicf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}

var _ raft.Logger = (*raftTrace)(nil)

// walSyncFails is the disk-error fault's injector: it fails syncs of
// Pebble's write-ahead log files.
type walSyncFails struct{}

func (walSyncFails) String() string { return "wal-sync-fails" }

func (walSyncFails) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if strings.HasSuffix(op.Path, ".log") {
			return errorfs.ErrInjected
		}
	}
	return nil
}

// diskFails reports whether the disk-error fault is failing the member's
// log syncs.
func (m *member) diskFails() bool {
	return m.diskFailing.MaybeError(errorfs.Op{Kind: errorfs.OpFileSync, Path: "probe.log"}) != nil
}
