package sim

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node/watch"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// defaultDiskMicros is the virtual latency of one Process call: an fsync
// on a fast disk.
const defaultDiskMicros = 500

// Result is what one run did and found.
type Result struct {
	Options Options
	// TraceHash fingerprints the run: equal seeds give equal hashes.
	TraceHash  string
	TraceLines int
	Trace      string // kept only with Options.KeepTrace
	// Failures are the checks that failed, empty when the run passed.
	Failures Failures
	// Ops counts client operations by outcome.
	OpsAcknowledged, OpsUnknown, OpsFailed int
	SimulatedMicros                        int64
	WallTime                               time.Duration
	// Recorder holds the client history, for reports.
	Recorder *linearizability.Recorder
	// Usage is what the run used of its Limits.
	Usage Usage
	// CrashPointsArmed and CrashPointsFired count the crash points armed
	// and those that crashed a member, by snapshot phase (create, stage,
	// install).
	CrashPointsArmed, CrashPointsFired [3]int
}

// Passed reports whether every check passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// world is the state of one run.
type world struct {
	opts     Options
	rng      *rand.Rand
	sched    scheduler
	members  []*member
	clients  []*client
	net      *network
	workload workload
	// quota is the members' --quota-backend-bytes (quota.go).
	quota    quotaWorld
	rec      *linearizability.Recorder
	trace    *tracer
	limits   *limiter
	failures Failures
	// lastID is the highest member ID given out.
	lastID uint64
	// removing are members whose removal was proposed.
	removing map[uint64]bool
	// snapshotCount is the members' SnapshotCount: small, so logs are
	// truncated and lagging members get snapshots.
	snapshotCount, snapshotCatchUp uint64
	// inflight counts client operations started and not finished.
	inflight int
	// acknowledged, unknown and failedOps count client operations by outcome.
	acknowledged, unknown, failedOps int
	// ackedPuts are the acknowledged writes of a value to a key, with the
	// revision they were acknowledged at: each must be in every member's
	// history at the end.
	ackedPuts []ackedPut
	// watchers are the simulated watches (watch.go); hubConfig the
	// members' watch hub configuration, drawn once; applied the events of
	// every revision a member applied, the committed history; watchRng
	// the watch world's own random source.
	watchers  []*watcher
	hubConfig *watch.Config
	applied   map[int64][]linearizability.Event
	// compactRevisions are the revisions the compactor asked a member to
	// compact at, in order; the watch check allows events without
	// prev_kv at and below them.
	compactRevisions []int64
	watchRng         *rand.Rand
	// historyRng is the historical reader's random source
	// (history_reads.go).
	historyRng *rand.Rand
	// leases are the lease workload's leases by ID, and in grant order
	// (lease.go); clockFaults the skews and jumps the lease checks allow
	// for.
	leases      map[int64]*simLease
	leaseOrder  []*simLease
	clockFaults []clockFault
	// checkpointedPromotions counts the leases with a checkpoint that a
	// promoted lessor was checked against (lease_checkpoint.go).
	checkpointedPromotions int
	// failStops are the errors members stopped on (fail-stop).
	failStops []string
	// crashPointsArmed and crashPointsFired count crash points by phase
	// (crashpoint.go).
	crashPointsArmed, crashPointsFired [len(phaseNames)]int
	// disk is the seed's storage behaviour (disk.go); burstReaders the
	// clients of read bursts (readburst.go).
	disk         diskWorld
	burstReaders []*burstReader
	// serializableReads are the acknowledged serializable reads, checked
	// at the end (serializable.go).
	serializableReads []serializableRead
	// auth is the auth workload's state, nil without it (auth.go).
	auth *authWorld
	// tokens are the auth workload's tokens (authtoken.go); tokensErr is
	// a failure to make their keys, reported when the workload starts.
	tokens    authTokenWorld
	tokensErr error
}

type ackedPut struct {
	key, value string
	revision   int64
}

// Run executes one simulation. It replaces crypto/rand.Reader while it
// runs, so runs in one process are serialized.
func Run(opts Options) *Result {
	var res *Result
	withSeededCryptoRand(opts.Seed, func() { res = run(opts) })
	return res
}

func run(opts Options) *Result {
	start := time.Now()
	w := newWorld(opts)
	w.outsideEvents(w.simulate)
	w.outsideEvents(w.close)
	res := &Result{
		Options:         w.opts,
		TraceHash:       w.trace.sum(),
		TraceLines:      w.trace.lines,
		Failures:        w.failures,
		SimulatedMicros: w.sched.nowMicros,
		WallTime:        time.Since(start),
		Recorder:        w.rec,
		Usage:           w.limits.finish(),
	}
	if w.trace.kept != nil {
		res.Trace = w.trace.kept.String()
	}
	res.OpsAcknowledged, res.OpsUnknown, res.OpsFailed = w.acknowledged, w.unknown, w.failedOps
	res.CrashPointsArmed, res.CrashPointsFired = w.crashPointsArmed, w.crashPointsFired
	return res
}

func (w *world) simulate() {
	w.trace.printf("run %s", w.opts)
	w.startMembers()
	w.startClients()
	w.startWatchers()
	w.startLeaseClients()
	w.startAuth()
	(&nemesis{w: w, kinds: w.faultKinds()}).start()
	w.runUntil(w.opts.DurationMicros)
	w.finish()
}

// outsideEvents runs f, which runs no scheduled event of its own (the
// checks, closing the members), and records a panic in it as the run's
// failure, as the scheduler does for events.
func (w *world) outsideEvents(f func()) {
	defer func() {
		if r := recover(); r != nil {
			w.failAs(FailPanic, "%v (outside an event)", r)
		}
	}()
	f()
}

func newWorld(opts Options) *world {
	w := &world{}
	w.rng = opts.resolve()
	w.opts = opts
	w.limits = newLimiter(opts.Limits, opts.DurationMicros)
	w.trace = newTracer(func() int64 { return w.sched.nowMicros }, opts.Trace, opts.KeepTrace)
	w.rec = linearizability.NewRecorder(1, func() int64 { return w.sched.nowMicros })
	w.net = newNetwork(w)
	w.removing = map[uint64]bool{}
	w.workload = workload{rng: w.rng}
	w.quota = newQuotaWorld(opts.Seed)
	w.tokens, w.tokensErr = newAuthTokenWorld(opts)
	w.sched.onPanic = func(r any) { w.failAs(FailPanic, "%v", r) }
	w.snapshotCount = 20 + w.rng.Uint64N(180)
	w.snapshotCatchUp = 2 + w.rng.Uint64N(20)
	w.disk = newDiskWorld(&w.opts, w.rng)
	return w
}

func (w *world) faultKinds() []FaultKind {
	if w.opts.NoFaults {
		return nil
	}
	if len(w.opts.Faults) > 0 {
		return w.opts.Faults
	}
	return AllFaults
}

func (w *world) startMembers() {
	for i := range w.opts.Members {
		w.members = append(w.members, w.newMember(uint64(i+1), false))
		w.lastID = uint64(i + 1)
	}
	for _, m := range w.members {
		w.restart(m)
		// Members' clocks start out of phase.
		w.scheduleTick(m, w.rng.Int64N(tickMicros))
	}
}

func (w *world) newMember(id uint64, joins bool) *member {
	m := &member{w: w, id: id, joins: joins, fs: vfs.NewCrashableMem(), tickMicros: tickMicros, diskMicros: defaultDiskMicros,
		leaseClock: newLeaseClock(w)}
	m.diskFailing.Injector = walSyncFails{}
	m.crashPoint = newCrashPoint(func() *vfs.MemFS { return m.fs })
	return m
}

func (w *world) scheduleTick(m *member, delay int64) {
	w.sched.after(delay, func() {
		if m.removed {
			return
		}
		m.tick()
		w.scheduleTick(m, m.tickMicros)
	})
}

func (w *world) restart(m *member) {
	if m.up() || m.removed {
		return
	}
	if err := m.open(); err != nil {
		// A member that cannot open what a crash or a stop left on its
		// disk lost the state it made durable.
		w.failAs(FailCrashRecovery, "%v", err)
		return
	}
	w.trace.printf("%s up", m.name())
	m.kick()
}

func (w *world) startClients() {
	for i := range w.opts.Clients {
		c := &client{w: w, id: i + 1, seenModRevision: map[string]int64{}}
		w.clients = append(w.clients, c)
		c.schedule()
	}
}

// step runs the next event due by untilMicros, if any, and holds the run
// to its limits: the first one exceeded fails it.
func (w *world) step(untilMicros int64) bool {
	if !w.sched.step(untilMicros) {
		return false
	}
	if exceeded := w.limits.afterEvent(len(w.sched.queue), w.net.inFlight); exceeded != "" {
		w.failAs(FailLimit, "%s (sim.Limits)", exceeded)
	}
	return true
}

func (w *world) runUntil(untilMicros int64) {
	for !w.failed() && w.step(untilMicros) {
	}
	if w.sched.nowMicros < untilMicros {
		w.sched.nowMicros = untilMicros
	}
}

// runWhile runs events until cond is false or the bound passes; it
// reports whether cond became false in time.
func (w *world) runWhile(boundMicros int64, cond func() bool) bool {
	deadline := w.sched.nowMicros + boundMicros
	for cond() {
		if w.failed() || !w.step(deadline) {
			return !cond()
		}
	}
	return true
}

func (w *world) failed() bool { return len(w.failures) > 0 }

// foundingIDs are the raft IDs of the members the cluster started with.
func (w *world) foundingIDs() []uint64 {
	ids := make([]uint64, w.opts.Members)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// memberByID finds a current member; removed ones are gone.
func (w *world) memberByID(id uint64) *member {
	for _, m := range w.members {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (w *world) randomLiveMember() *member {
	var live []*member
	for _, m := range w.members {
		if m.up() {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[w.rng.IntN(len(live))]
}

// pick returns k distinct members chosen from the seed.
func (w *world) pick(k int) []*member {
	perm := w.rng.Perm(len(w.members))
	out := make([]*member, k)
	for i := range k {
		out[i] = w.members[perm[i]]
	}
	return out
}

// leader is the live member that believes it leads at the highest term.
func (w *world) leader() *member {
	var best *member
	for _, m := range w.members {
		if !m.up() {
			continue
		}
		st := m.node.Status()
		if st.IsLeader && (best == nil || st.Term > best.node.Status().Term) {
			best = m
		}
	}
	return best
}

func (w *world) leaderOrAny() *member {
	if l := w.leader(); l != nil {
		return l
	}
	return w.pick(1)[0]
}

// close closes every member that is up, each within closeWallMax.
func (w *world) close() {
	for _, m := range w.members {
		if m.up() {
			if !closeWithin(m.node, closeWallMax) {
				w.failAs(FailLimit, "closing %s did not finish within %v; its database was abandoned", m.name(), closeWallMax)
			}
			m.node = nil
		}
	}
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
