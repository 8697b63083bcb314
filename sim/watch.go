package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/watch"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Watches: every simulated member runs the real watch hub (node/watch),
// fed with the events each Process applied and told about snapshot
// installs, exactly as the server's driver feeds it; it dies with a crash.
// Simulated watchers are streams on their member's hub: they create a
// watch, take what the hub queued (fast readers at once, slow ones every
// few hundred milliseconds, so their buffers overflow and the hub catches
// them up), ask for progress now and then, and record every event.
//
// What stays here is client behaviour, as the etcd client has it: a
// watcher whose member crashed, or that moves, resumes on another member
// from the revision after the last event it received; a watcher canceled
// because its start was compacted (the workload compacts, see
// compactor) watches again from the revision after compact_revision.
// The end-of-run check compares everything each watcher received, per
// uninterrupted segment, with the committed history; a progress
// notification at revision R promises that every event up to R was
// received before it.

// watcher is one simulated watch client.
type watcher struct {
	w  *world
	id int
	// req is what the watch asks for; its StartRevision is where the
	// first segment starts.
	req lin.WatchRequest
	// slow readers take what their stream queued only every readMicros;
	// progressNotify watches ask for etcd's periodic progress.
	slow           bool
	readMicros     int64
	progressNotify bool
	// m is the member the watch is attached to, stream its stream on m's
	// hub, epoch m's epoch when it attached; m is nil while reconnecting.
	m      *member
	stream *watch.Stream
	epoch  int
	// created is set once the current create's created response arrived;
	// until then a progress notification says nothing about this watch.
	created bool
	// readScheduled is set while a read of the stream is scheduled.
	readScheduled bool
	// pausedUntilMicros is when the hub's pause after the last read ends
	// (watch.Stream.Pause): the next read waits for it, as the server's
	// sender does.
	pausedUntilMicros int64
	// home, when set, is the member a detached watcher waits for: a
	// client configured with one endpoint.
	home *member
	// nextRevision is the first revision not yet received: the last one
	// seen plus one, where a resumed watch starts.
	nextRevision int64
	// segments are the runs of events between compaction cancels; the
	// last one is current.
	segments []watchSegment
	// resumes counts how many times the watch was (re)attached.
	resumes int
	// requireLeader watches carry etcd's hasleader metadata
	// (clientv3.WithRequireLeader, as Kubernetes sets it): a member that
	// knows no leader refuses them, and ends them once node.LeaderLost;
	// leaderLostEnds counts those ends. A third of the watchers do.
	requireLeader  bool
	leaderLostEnds int
}

// watchSegment is what a watcher received from one start revision on,
// across resumes, until a compaction cancel.
type watchSegment struct {
	start    int64
	received []lin.Event
	// progress are the progress notifications received in the segment.
	progress []progressMark
}

// progressMark is a progress notification at revision, after received
// events of its segment.
type progressMark struct {
	revision int64
	received int
}

// Bounds of the watch clients and of driving the hubs.
const (
	// watchReconnectMicros bounds how long a detached watcher waits
	// before it reconnects; watchMoveMicros how often an attached one
	// moves to another member.
	watchReconnectMicros = 500 * millisecond
	watchMoveMicros      = 8 * second
	// watchSlowReadMicros bounds a slow reader's pause between reads.
	watchSlowReadMicros = 2 * second
	// watchCatchUpStepsMax bounds the hub catch-up steps one simulator
	// event runs; more are left to a later event.
	watchCatchUpStepsMax = 64
	// watchDrainRoundsMax bounds the final drain of one watcher.
	watchDrainRoundsMax = 100000
	// compactEveryMicros bounds the compactor's pause between
	// compactions; compactBehindRevisionsMax how far behind the current
	// revision it compacts.
	compactEveryMicros        = 6 * second
	compactBehindRevisionsMax = 40
)

// watchHubConfig is the hubs' configuration, drawn once per run: etcd's
// bounds, or in a third of the seeds tiny ones, so that buffers overflow,
// catch-ups take many steps and responses split.
func (w *world) watchHubConfig() watch.Config {
	if w.hubConfig != nil {
		return *w.hubConfig
	}
	rng := w.watchRand()
	cfg := watch.Config{
		ProgressNotifyInterval: time.Duration(1+rng.IntN(5)) * time.Second,
		Knobs: watch.Knobs{
			SkipHandoverEvent:    w.opts.Knobs.WatchSkipsHandoverEvent,
			ResyncForgetsWatcher: w.opts.Knobs.WatchResyncForgetsWatcher,
		},
	}
	if rng.IntN(3) == 0 {
		cfg.BufferEventsMax = 1 + rng.IntN(4)
		cfg.BufferBytesMax = 200 + rng.IntN(2000)
		cfg.CatchUpEventsMax = 1 + rng.IntN(8)
		cfg.CatchUpWatchersMax = 1 + rng.IntN(2)
		cfg.RecentBytesMax = 500 + rng.IntN(5000)
		cfg.ResponseBytesMax = 100 + rng.IntN(1000)
		// A simulated stream has one watcher: pause after small takes.
		cfg.FanOutResponsesMin = 1 + rng.IntN(3)
		cfg.FanOutPause = time.Duration(1+rng.IntN(50)) * time.Millisecond
	}
	cfg.EnsureDefaults()
	w.hubConfig = &cfg
	w.trace.printf("watch hubs: buffer %d events %d bytes, catch-up %d events %d watchers, recent %d bytes, response %d bytes, progress every %v, pause %v after %d responses",
		cfg.BufferEventsMax, cfg.BufferBytesMax, cfg.CatchUpEventsMax, cfg.CatchUpWatchersMax, cfg.RecentBytesMax, cfg.ResponseBytesMax, cfg.ProgressNotifyInterval,
		cfg.FanOutPause, cfg.FanOutResponsesMin)
	return cfg
}

// watchRand is the random source of what the real hub added to the
// watch world (hub bounds, slow readers, progress, the compactor): a
// stream of its own, so that the world's other draws, and so the seeds'
// runs, stay as they were before.
func (w *world) watchRand() *rand.Rand {
	if w.watchRng == nil {
		w.watchRng = rand.New(rand.NewPCG(w.opts.Seed, 0x77617463_68687562)) // "watchhub"
	}
	return w.watchRng
}

// openWatchHub gives a member that just opened its node a new hub.
func (m *member) openWatchHub() {
	m.hub = watch.New(watch.NodeStore(m.node.Store()), m.w.watchHubConfig())
	m.hubTicks = 0
	m.hub.Tick(0)
}

// tickWatchHub advances the member's hub clock (progress notifications,
// resync) by one of the member's own ticks, so skewed clocks skew it too.
func (m *member) tickWatchHub() {
	m.hubTicks++
	m.hub.Tick(time.Duration(m.hubTicks*tickMicros) * time.Microsecond)
	m.pumpWatchHub()
}

// pumpWatchHub runs the member's hub catch-up steps, as the server's hub
// goroutine does, at most watchCatchUpStepsMax now and the rest in a
// later event.
func (m *member) pumpWatchHub() {
	if m.hub == nil {
		return
	}
	for range watchCatchUpStepsMax {
		if !m.hub.WantsCatchUp() {
			return
		}
		if _, err := m.hub.CatchUp(); err != nil {
			m.w.fail("%s: watch catch-up: %v", m.name(), err)
			return
		}
	}
	epoch := m.epoch
	m.w.sched.after(millisecond, func() {
		if m.epoch == epoch && m.up() && !m.paused {
			m.pumpWatchHub()
		}
	})
}

func (w *world) startWatchers() {
	count := 1 + w.rng.IntN(3)
	for i := range count {
		wt := &watcher{w: w, id: i + 1, req: w.randomWatchRequest()}
		rng := w.watchRand()
		wt.slow, wt.progressNotify = rng.IntN(3) == 0, rng.IntN(2) == 0
		wt.requireLeader = w.historyRand().IntN(3) == 0
		wt.readMicros = millisecond
		if wt.slow {
			wt.readMicros = 100*millisecond + rng.Int64N(watchSlowReadMicros)
		}
		wt.nextRevision = wt.req.StartRevision
		wt.segments = []watchSegment{{start: wt.req.StartRevision}}
		w.watchers = append(w.watchers, wt)
		w.sched.after(w.rng.Int64N(second), wt.reconnect)
		w.sched.after(second+rng.Int64N(3*second), wt.requestProgress)
	}
	// Half of the seeds compact, as clusters with and without etcd's
	// auto-compaction do.
	if rng := w.watchRand(); rng.IntN(2) == 0 {
		w.trace.printf("compactor: on")
		w.sched.after(rng.Int64N(compactEveryMicros), w.compact)
	}
	w.startHistoryReader()
}

// randomWatchRequest draws what a watcher watches: everything, the KV
// workload's prefix or one of its keys, with or without prev_kv.
func (w *world) randomWatchRequest() lin.WatchRequest {
	req := lin.WatchRequest{StartRevision: 1 + w.rng.Int64N(3), PrevKV: w.rng.IntN(2) == 0}
	switch w.rng.IntN(3) {
	case 0:
		req.Key, req.End = "\x00", lin.RangeEndAll
	case 1:
		req.Key, req.End = keyPrefix, prefixEnd(keyPrefix)
	default:
		req.Key = keys[w.rng.IntN(len(keys))]
	}
	return req
}

func prefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

func (wt *watcher) name() string { return fmt.Sprintf("w%d", wt.id) }

// compact is the workload's compactor: now and then it asks a random
// member to compact the keyspace a few revisions behind the current one,
// so that watchers that fell behind, or resume late, are canceled with
// compact_revision.
func (w *world) compact() {
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	rng := w.watchRand()
	defer w.sched.after(second+rng.Int64N(compactEveryMicros), w.compact)
	m := w.randomServingMember(rng)
	if m == nil {
		return
	}
	rev := m.node.Store().Rev() - rng.Int64N(compactBehindRevisionsMax)
	if rev <= m.node.Store().CompactRev() {
		return
	}
	// A watch from exactly rev will get rev's events without prev_kv,
	// as in etcd, and so will events at or below rev fanned out after the
	// compaction: the watch check allows that at and below the revisions
	// recorded here (a superset: a request may not commit).
	w.compactRevisions = append(w.compactRevisions, rev)
	w.trace.printf("compactor → %s compact at revision %d", m.name(), rev)
	m.start(node.Request{Compaction: &pb.CompactionRequest{Revision: rev}})
	m.kick()
}

// reconnect attaches the watcher to a random live member, or tries again
// later; once attached it moves now and then, as a client does after a
// partition or a leader change.
func (wt *watcher) reconnect() {
	w := wt.w
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	if !wt.attached() {
		m := w.randomLiveMember()
		if wt.home != nil && !wt.home.removed {
			m = nil
			if wt.home.up() {
				m = wt.home
			}
		}
		if m != nil && wt.refusedBy(m) {
			m = nil
		}
		if m != nil {
			wt.attach(m)
		}
	} else if m := w.randomLiveMember(); m != nil && m != wt.m && !wt.refusedBy(m) {
		w.trace.printf("%s moves %s → %s", wt.name(), wt.m.name(), m.name())
		wt.attach(m)
	}
	delay := watchReconnectMicros
	if wt.attached() {
		delay = second + w.rng.Int64N(watchMoveMicros)
	}
	w.sched.after(w.rng.Int64N(delay)+millisecond, wt.reconnect)
}

// refusedBy reports whether m refuses the watcher's stream: it requires a
// leader and m knows none (`etcdserver: no leader`, as the server's
// interceptor answers).
func (wt *watcher) refusedBy(m *member) bool {
	if wt.requireLeader && m.node.Status().Leader == 0 {
		wt.w.trace.printf("%s: %s refuses the stream: no leader", wt.name(), m.name())
		return true
	}
	return false
}

// endLeaderlessStreams ends, as the server does when node.LeaderLost, the
// streams on m of watchers that require a leader; they reconnect on their
// own schedule, to another member, from the revision after the last one
// received.
func (w *world) endLeaderlessStreams(m *member) {
	for _, wt := range w.watchers {
		if wt.requireLeader && wt.m == m && wt.attached() {
			w.trace.printf("%s: %s lost its leader: the stream ends with etcdserver: no leader", wt.name(), m.name())
			wt.stream.Close()
			wt.m, wt.stream = nil, nil
			wt.leaderLostEnds++
		}
	}
}

// attached reports whether the watcher has a stream on a running member.
func (wt *watcher) attached() bool {
	return wt.m != nil && wt.m.up() && wt.m.epoch == wt.epoch
}

// attach opens a stream on m's hub and watches from nextRevision there,
// closing the stream it had.
func (wt *watcher) attach(m *member) {
	if wt.attached() {
		wt.stream.Close()
	}
	wt.m, wt.home, wt.epoch = m, nil, m.epoch
	wt.resumes++
	var s *watch.Stream
	s = m.hub.NewStream(func() { wt.scheduleRead(s) })
	wt.stream = s
	wt.create(wt.nextRevision)
	wt.w.trace.printf("%s watches %s on %s from revision %d", wt.name(), describeWatch(wt.req), m.name(), wt.nextRevision)
	m.pumpWatchHub()
}

// create asks the stream for the watch from startRevision.
func (wt *watcher) create(startRevision int64) {
	wt.created = false
	req := &pb.WatchCreateRequest{Key: []byte(wt.req.Key), StartRevision: startRevision, PrevKv: wt.req.PrevKV, ProgressNotify: wt.progressNotify}
	if wt.req.End != "" {
		req.RangeEnd = []byte(wt.req.End)
	}
	wt.stream.Create(req)
}

// scheduleRead schedules a read of s after the watcher's read delay; the
// hub calls it when s's queue becomes non-empty.
func (wt *watcher) scheduleRead(s *watch.Stream) {
	if wt.readScheduled || s != wt.stream {
		return
	}
	wt.readScheduled = true
	wt.w.sched.after(max(wt.readMicros, wt.pausedUntilMicros-wt.w.sched.nowMicros), func() {
		wt.readScheduled = false
		if s != wt.stream || !wt.attached() {
			return
		}
		if wt.m.paused {
			wt.scheduleRead(s) // a frozen member sends nothing
			return
		}
		wt.read()
	})
}

// read takes what the stream queued, handles it, and lets the hub catch
// up what the read made room for.
func (wt *watcher) read() {
	for _, r := range wt.stream.Take() {
		wt.handle(r)
	}
	wt.pausedUntilMicros = wt.w.sched.nowMicros + wt.stream.Pause().Microseconds()
	wt.m.pumpWatchHub()
}

// handle is the client's reaction to one response.
func (wt *watcher) handle(r watch.Response) {
	seg := &wt.segments[len(wt.segments)-1]
	switch {
	case r.Created && r.Canceled:
		wt.w.failAs(FailWatch, "%s: create on %s refused: %s", wt.name(), wt.m.name(), r.CancelReason)
	case r.Created:
		wt.created = true
	case r.Canceled && r.CompactRevision > 0:
		wt.compacted(r.CompactRevision)
	case r.Canceled:
		wt.w.failAs(FailWatch, "%s: canceled by %s without a reason", wt.name(), wt.m.name())
	case len(r.Events) == 0:
		if wt.created {
			seg.progress = append(seg.progress, progressMark{revision: r.Header.Revision, received: len(seg.received)})
		}
	default:
		if last := r.Events[len(r.Events)-1].GetKv().GetModRevision(); r.Header.Revision < last {
			wt.w.failAs(FailWatch, "%s: response at revision %d holds an event at %d", wt.name(), r.Header.Revision, last)
		}
		for _, e := range r.Events {
			seg.received = append(seg.received, wt.toEvent(e))
		}
		wt.nextRevision = r.Events[len(r.Events)-1].GetKv().GetModRevision() + 1
	}
}

// compacted handles a cancel for a compacted start: it must be deserved
// (the watch needed a revision below compactRevision); the client then
// watches again after it, in a new segment.
func (wt *watcher) compacted(compactRevision int64) {
	if wt.nextRevision >= compactRevision {
		wt.w.failAs(FailWatch, "%s: canceled on %s for compaction at %d though it needed revision %d", wt.name(), wt.m.name(), compactRevision, wt.nextRevision)
		return
	}
	wt.w.trace.printf("%s: compacted at %d on %s, needed %d; watches again from %d", wt.name(), compactRevision, wt.m.name(), wt.nextRevision, compactRevision+1)
	wt.nextRevision = compactRevision + 1
	wt.segments = append(wt.segments, watchSegment{start: wt.nextRevision})
	wt.create(wt.nextRevision)
}

// requestProgress asks the attached stream for a progress notification,
// every few seconds.
func (wt *watcher) requestProgress() {
	w := wt.w
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	if wt.attached() && !wt.m.paused {
		wt.stream.RequestProgress()
	}
	w.sched.after(second+w.watchRand().Int64N(3*second), wt.requestProgress)
}

func describeWatch(req lin.WatchRequest) string {
	s := fmt.Sprintf("%q", req.Key)
	if req.End != "" {
		s = fmt.Sprintf("[%q,%q)", req.Key, req.End)
	}
	if req.PrevKV {
		s += " prev_kv"
	}
	return s
}

func (wt *watcher) toEvent(e *mvccpb.Event) lin.Event {
	ev := eventOf(e)
	if e.GetPrevKv() != nil {
		kv := fromKV(e.GetPrevKv())
		ev.PrevKV = &kv
	}
	return ev
}

// eventOf is an mvcc event as the checker describes it, without prev_kv.
func eventOf(e *mvccpb.Event) lin.Event {
	ev := lin.Event{Revision: e.GetKv().GetModRevision(), Type: lin.EventPut, Key: string(e.GetKv().GetKey()), Value: string(e.GetKv().GetValue())}
	if e.GetType() == mvccpb.Event_DELETE {
		ev.Type, ev.Value = lin.EventDelete, ""
	}
	return ev
}

// feedWatchers hands the events one Process call applied on m to m's hub
// (after a snapshot install, Resync first, as the server's driver does),
// to the committed-history log and to the lease checks.
func (w *world) feedWatchers(m *member, out node.Output) {
	w.observeRevocations(out.Events)
	w.logApplied(m, out.Events)
	if out.SnapshotInstalled {
		w.trace.printf("%s installed a snapshot: its watch hub resyncs", m.name())
		m.hub.Resync()
	}
	m.hub.Notify(out.Events)
	m.pumpWatchHub()
}

// logApplied records the events of every revision the first time a
// member applies it, and checks that every other member applies the same.
// With compaction, the members' history no longer holds every revision:
// this log is the committed history the checks compare with.
func (w *world) logApplied(m *member, events []*mvccpb.Event) {
	for i := 0; i < len(events); {
		rev := events[i].GetKv().GetModRevision()
		j := i
		var evs []lin.Event
		for ; j < len(events) && events[j].GetKv().GetModRevision() == rev; j++ {
			evs = append(evs, eventOf(events[j]))
		}
		i = j
		if w.applied == nil {
			w.applied = map[int64][]lin.Event{}
		}
		logged, ok := w.applied[rev]
		if !ok {
			w.applied[rev] = evs
			continue
		}
		if fmt.Sprint(logged) != fmt.Sprint(evs) {
			w.failAs(FailConvergence, "%s applied %v at revision %d, another member %v", m.name(), evs, rev, logged)
		}
	}
}

// watchSnapshotInstall moves a watcher onto a member about to install a
// snapshot, if none is there, so that every install happens under a watch.
func (w *world) watchSnapshotInstall(m *member) {
	if len(w.watchers) == 0 {
		return
	}
	for _, wt := range w.watchers {
		if wt.m == m && wt.attached() {
			return
		}
	}
	wt := w.watchers[w.rng.IntN(len(w.watchers))]
	w.trace.printf("%s moves to %s, which is receiving a snapshot", wt.name(), m.name())
	wt.attach(m)
}

// detachWatchers disconnects the watchers of a member that crashed or was
// removed (its hub died with it); they reconnect on their own schedule.
func (w *world) detachWatchers(m *member) {
	m.hub = nil
	for _, wt := range w.watchers {
		if wt.m == m {
			wt.m, wt.stream = nil, nil
			if w.rng.IntN(2) == 0 {
				wt.home = m
			}
		}
	}
}

// committedHistory is every change in the converged keyspace, from the
// first write, up to m's revision: the log of applied events (the
// members' own history may be compacted).
func (w *world) committedHistory(m *member) ([]lin.Event, error) {
	var committed []lin.Event
	for rev := int64(2); rev <= m.node.Store().Rev(); rev++ {
		evs, ok := w.applied[rev]
		if !ok {
			return nil, fmt.Errorf("no member applied revision %d with events (%s is at %d)", rev, m.name(), m.node.Store().Rev())
		}
		committed = append(committed, evs...)
	}
	return committed, nil
}

// appliedPut reports whether the committed history has a put of value to
// key at revision rev: acknowledged writes below the compacted revision
// are checked here.
func (w *world) appliedPut(rev int64, key, value string) bool {
	for _, e := range w.applied[rev] {
		if e.Type == lin.EventPut && e.Key == key && e.Value == value {
			return true
		}
	}
	return false
}

// checkWatches attaches every detached watcher once more (as a client
// reconnecting after the faults healed), drains its stream until its
// member's hub has nothing more for it, then checks each segment of what
// it received against the committed history: everything its members
// applied from the segment's start, in order, without gaps or duplicates,
// each revision whole, with the right prev_kv, and everything up to each
// progress notification before it.
func (w *world) checkWatches(committed []lin.Event) {
	for _, wt := range w.watchers {
		if !wt.attached() {
			members := w.inCluster()
			wt.attach(members[w.rng.IntN(len(members))])
		}
		if !wt.drain() {
			return
		}
		if hubRev, rev := wt.m.hub.Rev(), wt.m.node.Store().Rev(); hubRev != rev {
			w.failAs(FailWatch, "%s: the watch hub of %s is at revision %d, its store at %d", wt.name(), wt.m.name(), hubRev, rev)
			return
		}
		if w.opts.plantDropWatchEvent {
			wt.dropOneEvent()
		}
		if err := wt.checkSegments(committed, wt.m.hub.Rev()); err != nil {
			w.failAs(FailWatch, "%s %s: %v", wt.name(), describeWatch(wt.req), err)
			continue
		}
		w.trace.printf("watch %s: %d segments through revision %d, resumed %d times, %d ended for a lost leader: ok", wt.name(), len(wt.segments), wt.m.hub.Rev(), wt.resumes, wt.leaderLostEnds)
	}
}

// drain reads the watcher's stream and runs its member's hub until the
// stream is empty and the hub wants no catch-up.
func (wt *watcher) drain() bool {
	for round := 0; wt.stream.Queued() || wt.m.hub.WantsCatchUp(); round++ {
		if wt.w.failed() {
			return false
		}
		if round == watchDrainRoundsMax {
			wt.w.failAs(FailWatch, "%s: the watch hub of %s did not settle in %d rounds", wt.name(), wt.m.name(), round)
			return false
		}
		wt.read()
	}
	return true
}

// dropOneEvent is the planted client bug: one received event is lost.
func (wt *watcher) dropOneEvent() {
	for i := range wt.segments {
		seg := &wt.segments[i]
		if n := len(seg.received); n > 0 {
			seg.received = append(seg.received[:n/2:n/2], seg.received[n/2+1:]...)
			return
		}
	}
}

// checkSegments checks every segment, and every progress notification's
// promise, with lin.CheckWatch; the last segment must be complete through
// completeRevision.
func (wt *watcher) checkSegments(committed []lin.Event, completeRevision int64) error {
	for i, seg := range wt.segments {
		req := wt.req
		req.StartRevision = seg.start
		req.CompactRevisions = wt.w.compactRevisions
		for _, p := range seg.progress {
			req.CompleteRevision = p.revision
			if err := lin.CheckWatch(committed, req, seg.received[:p.received]); err != nil {
				return fmt.Errorf("segment from revision %d, progress notification at revision %d after %d events: %w", seg.start, p.revision, p.received, err)
			}
		}
		req.CompleteRevision = 0
		if i == len(wt.segments)-1 {
			req.CompleteRevision = completeRevision
		}
		if err := lin.CheckWatch(committed, req, seg.received); err != nil {
			return fmt.Errorf("segment from revision %d (%d events): %w", seg.start, len(seg.received), err)
		}
	}
	return nil
}

// randomServingMember draws one of the members that are up and not paused,
// nil if none is.
func (w *world) randomServingMember(rng *rand.Rand) *member {
	var live []*member
	for _, m := range w.members {
		if m.up() && !m.paused {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[rng.IntN(len(live))]
}
