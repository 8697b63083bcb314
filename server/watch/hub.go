package watch

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Store is the history the hub catches watchers up from; *mvcc.Store
// implements it. Its methods must be safe for concurrent use.
type Store interface {
	// Rev is the published revision.
	Rev() int64
	// CompactRev is the compacted revision, 0 if none.
	CompactRev() int64
	// History returns the events of the etcd range at fromRev..toRev, at
	// most maxEvents (whole revisions), and the last revision covered; it
	// fails with rpctypes.ErrGRPCCompacted below the compacted revision.
	History(key, rangeEnd []byte, fromRev, toRev int64, maxEvents int) ([]*mvccpb.Event, int64, error)
}

// Config configures a Hub.
type Config struct {
	// BufferEventsMax bounds the events queued for one watcher that its
	// stream has not taken; past it the watcher is caught up from history
	// instead. Default 1024.
	BufferEventsMax int
	// BufferBytesMax bounds the same queue in bytes (eventBytes of its
	// events), so that a watcher whose client does not read pins little
	// memory whatever the value size: past it, as past BufferEventsMax.
	// The first batch of an empty queue is always queued. Default 4 MiB.
	BufferBytesMax int
	// CatchUpEventsMax bounds the events of one history read (whole
	// revisions, so one large revision may exceed it). Default 1024.
	CatchUpEventsMax int
	// CatchUpWatchersMax bounds the watchers one catch-up round reads
	// history for while the hub's lock is released. Default 512 (etcd's
	// maxWatchersPerSync).
	CatchUpWatchersMax int
	// RecentBytesMax bounds, in bytes (eventBytes), the most recent events
	// the hub keeps in memory (whole revisions), so that watchers which
	// fell behind by less are caught up from memory, shared among them,
	// instead of each reading history from the store. The window is cut to
	// three quarters of it when it grows past it. Default 32 MiB.
	RecentBytesMax int
	// ResponseBytesMax bounds the events of one catch-up response (whole
	// revisions, so one large revision may exceed it), so that a client's
	// default 4 MiB receive limit is not reached. Default 1 MiB.
	ResponseBytesMax int
	// ResyncInterval is how often unsynced watchers are retried when
	// nothing wakes the catch-up goroutine sooner. Default 100 ms (etcd's
	// watchResyncPeriod).
	ResyncInterval time.Duration
	// ProgressNotifyInterval is the period of progress notifications for
	// watchers with progress_notify. Default 10 min, as etcd.
	ProgressNotifyInterval time.Duration
	Logger                 *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.BufferEventsMax == 0 {
		c.BufferEventsMax = 1024
	}
	if c.CatchUpEventsMax == 0 {
		c.CatchUpEventsMax = 1024
	}
	if c.CatchUpWatchersMax == 0 {
		c.CatchUpWatchersMax = 512
	}
	if c.ResponseBytesMax == 0 {
		c.ResponseBytesMax = 1 << 20
	}
	if c.RecentBytesMax == 0 {
		c.RecentBytesMax = 32 << 20
	}
	if c.BufferBytesMax == 0 {
		c.BufferBytesMax = 4 << 20
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 100 * time.Millisecond
	}
	if c.ProgressNotifyInterval == 0 {
		c.ProgressNotifyInterval = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.BufferEventsMax < 1 || c.BufferBytesMax < 1 || c.CatchUpEventsMax < 1 || c.CatchUpWatchersMax < 1 || c.RecentBytesMax < 1 {
		return fmt.Errorf("watch: bounds must be positive: buffer %d events and %d bytes, catch-up events %d, catch-up watchers %d, recent %d bytes",
			c.BufferEventsMax, c.BufferBytesMax, c.CatchUpEventsMax, c.CatchUpWatchersMax, c.RecentBytesMax)
	}
	if c.ResyncInterval < 0 || c.ProgressNotifyInterval < 0 {
		return fmt.Errorf("watch: negative interval")
	}
	return nil
}

// Hub fans out a member's events to its watchers. See the package
// documentation.
type Hub struct {
	cfg   Config
	store Store

	mu struct {
		sync.Mutex
		// rev is the last revision Notify fanned out. Invariant: every
		// synced watcher has been queued every matching event at or below
		// rev, and none below its minRev.
		rev int64
		// keyWatchers and rangeWatchers hold the synced watchers, by key
		// for single-key watchers.
		keyWatchers   map[string]map[*watcher]struct{}
		rangeWatchers map[*watcher]struct{}
		unsynced      map[*watcher]struct{}
		streams       map[*Stream]struct{}
		// progressWaiting are streams with a RequestProgress deferred
		// until all their watchers are synced.
		progressWaiting map[*Stream]struct{}
		// batches is Notify's scratch space, reused between calls.
		batches map[*watcher][]*mvccpb.Event
		// recent are the latest events fanned out, in revision order.
		// Invariant: when recentFrom > 0, recent holds every event with a
		// revision in [recentFrom, rev].
		recent     []*mvccpb.Event
		recentFrom int64
		// recentWithoutPrev[i] is recent[i] without its PrevKv, shared by
		// every catch-up of a watcher without prev_kv (recent[i] itself
		// when it has none). Invariant: len(recentWithoutPrev) == len(recent).
		recentWithoutPrev []*mvccpb.Event
		// recentBytes is the sum of eventBytes over recent: what the
		// window holds. Invariant: recentBytes <= RecentBytesMax between
		// calls.
		recentBytes int
	}

	pokec chan struct{} // wakes the catch-up goroutine; capacity 1
	stopc chan struct{}
	donec chan struct{}
	once  sync.Once
}

// New returns a hub whose watchers start at store's current revision, and
// starts its catch-up goroutine. Call it before the driver starts, and feed
// it with Notify; stop it with Close.
func New(store Store, cfg Config) *Hub {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	h := &Hub{cfg: cfg, store: store, pokec: make(chan struct{}, 1), stopc: make(chan struct{}), donec: make(chan struct{})}
	h.mu.rev = store.Rev()
	h.mu.keyWatchers = map[string]map[*watcher]struct{}{}
	h.mu.rangeWatchers = map[*watcher]struct{}{}
	h.mu.unsynced = map[*watcher]struct{}{}
	h.mu.streams = map[*Stream]struct{}{}
	h.mu.progressWaiting = map[*Stream]struct{}{}
	h.mu.batches = map[*watcher][]*mvccpb.Event{}
	go h.run()
	return h
}

// Close stops the catch-up goroutine. Streams get no more events.
func (h *Hub) Close() {
	h.once.Do(func() { close(h.stopc) })
	<-h.donec
}

// Rev is the revision the hub has fanned out.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.rev
}

// Notify fans out the events one Process applied, in revision order. It is
// the driver's OnEvents callback: it never blocks on a reader (slow
// watchers are moved to catch-up), and it keeps the event values, which
// must not change afterwards. Events at or below the hub's revision are
// ignored.
func (h *Hub) Notify(evs []*mvccpb.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(evs) > 0 && evs[0].Kv.ModRevision <= h.mu.rev {
		evs = evs[1:]
	}
	if len(evs) == 0 {
		return
	}
	if evs[0].Kv.ModRevision > h.mu.rev+1 {
		// Revisions were skipped (a snapshot install): only history has them.
		h.resyncLocked()
	}
	firstRev, lastRev := evs[0].Kv.ModRevision, evs[len(evs)-1].Kv.ModRevision
	batches := h.mu.batches
	var withoutPrev []*mvccpb.Event // lazily: one copy per event, shared
	for i, ev := range evs {
		add := func(w *watcher) {
			if ev.Kv.ModRevision < w.minRev || w.filtered(ev) {
				return
			}
			if !w.prevKV && ev.PrevKv != nil {
				if withoutPrev == nil {
					withoutPrev = make([]*mvccpb.Event, len(evs))
				}
				if withoutPrev[i] == nil {
					withoutPrev[i] = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
				}
				batches[w] = append(batches[w], withoutPrev[i])
				return
			}
			batches[w] = append(batches[w], ev)
		}
		for w := range h.mu.keyWatchers[string(ev.Kv.Key)] {
			add(w)
		}
		for w := range h.mu.rangeWatchers {
			if w.contains(ev.Kv.Key) {
				add(w)
			}
		}
	}
	for w, batch := range batches {
		h.deliverLocked(w, batch, firstRev, lastRev)
	}
	clear(batches)
	h.mu.rev = lastRev
	h.rememberLocked(evs, withoutPrev)
	h.answerProgressLocked()
}

// rememberLocked adds events (following the hub's revision without a gap)
// to the recent ones and, past RecentBytesMax, drops the oldest revisions
// down to three quarters of it. REQUIRES: h.mu is held.
func (h *Hub) rememberLocked(evs, withoutPrev []*mvccpb.Event) {
	if h.mu.recentFrom == 0 {
		h.mu.recentFrom = evs[0].Kv.ModRevision
	}
	h.mu.recent = append(h.mu.recent, evs...)
	for i, ev := range evs {
		h.mu.recentBytes += eventBytes(ev)
		switch {
		case ev.PrevKv == nil:
		case withoutPrev != nil && withoutPrev[i] != nil:
			ev = withoutPrev[i] // made for a synced watcher already
		default:
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		h.mu.recentWithoutPrev = append(h.mu.recentWithoutPrev, ev)
	}
	if h.mu.recentBytes > h.cfg.RecentBytesMax {
		h.forgetOldestLocked(h.cfg.RecentBytesMax / 4 * 3)
	}
}

// forgetOldestLocked drops the oldest revisions of the recent events until
// they hold at most keepBytes. The survivors are copied to new slices so
// that the old arrays, and the events only they hold, become garbage (a
// catch-up round may still read the old ones: they are never changed).
// REQUIRES: h.mu is held.
func (h *Hub) forgetOldestLocked(keepBytes int) {
	recent := h.mu.recent
	cut := 0
	for cut < len(recent) && h.mu.recentBytes > keepBytes {
		h.mu.recentBytes -= eventBytes(recent[cut])
		cut++
	}
	for cut < len(recent) && recent[cut].Kv.ModRevision == recent[cut-1].Kv.ModRevision {
		h.mu.recentBytes -= eventBytes(recent[cut]) // never half a revision
		cut++
	}
	h.mu.recent = append([]*mvccpb.Event(nil), recent[cut:]...)
	h.mu.recentWithoutPrev = append([]*mvccpb.Event(nil), h.mu.recentWithoutPrev[cut:]...)
	if len(h.mu.recent) == 0 {
		h.mu.recentFrom = 0
		return
	}
	h.mu.recentFrom = h.mu.recent[0].Kv.ModRevision
}

// RecentBytes is what the hub's window of recent events holds, in
// eventBytes; at most Config.RecentBytesMax.
func (h *Hub) RecentBytes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.recentBytes
}

// recentView is the hub's recent events as one catch-up round reads them
// without the hub's lock: Notify only appends beyond len(events) or
// replaces the slice, so these elements never change.
type recentView struct {
	events, withoutPrev []*mvccpb.Event
	// from and rev bound the revisions events holds completely.
	from, rev int64
}

// fromRecent serves a catch-up from the recent events when they cover its
// start: the watcher's events from fromRev, at most maxEvents (whole
// revisions), and the revision they reach. The events are shared with the
// hub and every other watcher (with PrevKv or without, as the watcher
// asked): nobody may change them. At or below the compacted revision,
// history decides (it cancels the watch, or serves etcd's partial
// revision).
func (v recentView) fromRecent(w *watcher, fromRev, compactRev int64, maxEvents int) ([]*mvccpb.Event, int64, bool) {
	if v.from == 0 || fromRev < v.from || fromRev <= compactRev {
		return nil, 0, false
	}
	i := sort.Search(len(v.events), func(i int) bool { return v.events[i].Kv.ModRevision >= fromRev })
	var out []*mvccpb.Event
	for ; i < len(v.events); i++ {
		ev := v.events[i]
		if len(out) >= maxEvents && ev.Kv.ModRevision != out[len(out)-1].Kv.ModRevision {
			return out, out[len(out)-1].Kv.ModRevision, true
		}
		if !w.contains(ev.Kv.Key) {
			continue
		}
		if !w.prevKV {
			ev = v.withoutPrev[i]
		}
		out = append(out, ev)
	}
	return out, v.rev, true
}

// Resync moves every synced watcher to catch-up and takes the store's
// revision as the hub's: call it from the goroutine that calls Notify after
// the store jumped ahead without events (a snapshot install). Notify does
// it by itself when the next events show the jump.
func (h *Hub) Resync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resyncLocked()
	h.mu.rev = max(h.mu.rev, h.store.Rev())
}

// resyncLocked moves every synced watcher to catch-up from the revision
// after the hub's. REQUIRES: h.mu is held.
func (h *Hub) resyncLocked() {
	var all []*watcher
	for _, set := range h.mu.keyWatchers {
		for w := range set {
			all = append(all, w)
		}
	}
	for w := range h.mu.rangeWatchers {
		all = append(all, w)
	}
	for _, w := range all {
		h.removeSyncedLocked(w)
		w.minRev = max(w.minRev, h.mu.rev+1)
		h.mu.unsynced[w] = struct{}{}
	}
	// The revisions skipped are in no event the hub saw.
	h.mu.recent, h.mu.recentWithoutPrev, h.mu.recentFrom, h.mu.recentBytes = nil, nil, 0, 0
	h.poke()
}

// deliverLocked queues a live batch for a synced watcher, or moves it to
// catch-up when its stream is too far behind.
// REQUIRES: h.mu is held.
func (h *Hub) deliverLocked(w *watcher, batch []*mvccpb.Event, firstRev, lastRev int64) {
	batchBytes := eventsBytes(batch)
	if w.pending > 0 && (w.pending+len(batch) > h.cfg.BufferEventsMax || w.pendingBytes+batchBytes > h.cfg.BufferBytesMax) {
		h.removeSyncedLocked(w)
		w.minRev = max(w.minRev, firstRev)
		h.mu.unsynced[w] = struct{}{}
		return
	}
	w.stream.pushLocked(Response{
		WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: lastRev}, WatchId: w.id, Events: batch},
		Fragment:      w.fragment,
		w:             w,
		bytes:         batchBytes,
	})
	w.pending += len(batch)
	w.pendingBytes += batchBytes
	w.hadEvents = true
	w.minRev = lastRev + 1
}

// addLocked registers a new watcher, synced if it starts after the hub's
// revision. REQUIRES: h.mu is held.
func (h *Hub) addLocked(w *watcher) {
	if w.minRev > h.mu.rev {
		h.addSyncedLocked(w)
		return
	}
	h.mu.unsynced[w] = struct{}{}
	h.poke()
}

// REQUIRES: h.mu is held.
func (h *Hub) addSyncedLocked(w *watcher) {
	w.synced = true
	if w.single() {
		set := h.mu.keyWatchers[string(w.key)]
		if set == nil {
			set = map[*watcher]struct{}{}
			h.mu.keyWatchers[string(w.key)] = set
		}
		set[w] = struct{}{}
		return
	}
	h.mu.rangeWatchers[w] = struct{}{}
}

// REQUIRES: h.mu is held.
func (h *Hub) removeSyncedLocked(w *watcher) {
	w.synced = false
	if !w.single() {
		delete(h.mu.rangeWatchers, w)
		return
	}
	set := h.mu.keyWatchers[string(w.key)]
	delete(set, w)
	if len(set) == 0 {
		delete(h.mu.keyWatchers, string(w.key))
	}
}

// removeLocked takes a watcher out of the fan-out and catch-up sets.
// REQUIRES: h.mu is held.
func (h *Hub) removeLocked(w *watcher) {
	if w.synced {
		h.removeSyncedLocked(w)
	}
	delete(h.mu.unsynced, w)
	w.gone = true
}

func (h *Hub) poke() {
	select {
	case h.pokec <- struct{}{}:
	default:
	}
}

// run is the catch-up goroutine; it also sends periodic progress.
func (h *Hub) run() {
	defer close(h.donec)
	resync := time.NewTicker(h.cfg.ResyncInterval)
	defer resync.Stop()
	progress := time.NewTicker(h.cfg.ProgressNotifyInterval)
	defer progress.Stop()
	for {
		select {
		case <-h.pokec:
		case <-resync.C:
		case <-progress.C:
			h.progressTick()
			continue
		case <-h.stopc:
			return
		}
		for h.catchUpRound() {
			select {
			case <-h.stopc:
				return
			default:
			}
		}
	}
}

// catchUp is one history read for one unsynced watcher.
type catchUp struct {
	w       *watcher
	fromRev int64
	events  []*mvccpb.Event
	upTo    int64
	err     error
	// fromMemory says events came from the hub's recent events.
	fromMemory bool
}

// catchUpRound reads history for up to CatchUpWatchersMax unsynced
// watchers whose stream has taken all their events, and reports whether
// another round has work right away.
func (h *Hub) catchUpRound() bool {
	jobs := h.pickCatchUps()
	if len(jobs) == 0 {
		return false
	}
	recent, compactRev := h.recentView(), h.store.CompactRev()
	for i := range jobs {
		j := &jobs[i]
		if j.events, j.upTo, j.fromMemory = recent.fromRecent(j.w, j.fromRev, compactRev, h.cfg.CatchUpEventsMax); j.fromMemory {
			continue
		}
		j.events, j.upTo, j.err = h.store.History(j.w.key, j.w.historyEnd(), j.fromRev, math.MaxInt64, h.cfg.CatchUpEventsMax)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	more := false
	for i := range jobs {
		if h.applyCatchUpLocked(&jobs[i]) {
			more = true
		}
	}
	h.answerProgressLocked()
	return more
}

func (h *Hub) recentView() recentView {
	h.mu.Lock()
	defer h.mu.Unlock()
	return recentView{events: h.mu.recent, withoutPrev: h.mu.recentWithoutPrev, from: h.mu.recentFrom, rev: h.mu.rev}
}

func (h *Hub) pickCatchUps() []catchUp {
	h.mu.Lock()
	defer h.mu.Unlock()
	var jobs []catchUp
	for w := range h.mu.unsynced {
		if len(jobs) == h.cfg.CatchUpWatchersMax {
			break
		}
		if w.pending == 0 {
			jobs = append(jobs, catchUp{w: w, fromRev: w.minRev})
		}
	}
	return jobs
}

// applyCatchUpLocked queues what a history read found, and reports whether
// the watcher can read again at once.
// REQUIRES: h.mu is held.
func (h *Hub) applyCatchUpLocked(j *catchUp) bool {
	w := j.w
	if w.gone || w.minRev != j.fromRev {
		return false
	}
	if errors.Is(j.err, rpctypes.ErrGRPCCompacted) {
		h.removeLocked(w)
		w.compacted = true
		w.stream.pushLocked(Response{WatchResponse: &pb.WatchResponse{
			Header: &pb.ResponseHeader{}, WatchId: w.id, Canceled: true, CompactRevision: h.store.CompactRev(),
		}})
		return false
	}
	if j.err != nil {
		h.cfg.Logger.Error("watch catch-up failed; retrying", "watch-id", w.id, "from", j.fromRev, "error", j.err)
		return false
	}
	upTo := j.upTo
	for evs := w.keep(j.events); len(evs) > 0; {
		if w.pendingBytes >= h.cfg.BufferBytesMax {
			// The rest waits until the stream took these (whole revisions:
			// evs starts one).
			upTo = evs[0].Kv.ModRevision - 1
			break
		}
		n := responseLength(evs, h.cfg.ResponseBytesMax)
		bytes := eventsBytes(evs[:n])
		w.stream.pushLocked(Response{
			WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: upTo}, WatchId: w.id, Events: evs[:n]},
			Fragment:      w.fragment,
			w:             w,
			bytes:         bytes,
		})
		w.pending += n
		w.pendingBytes += bytes
		w.hadEvents = true
		evs = evs[n:]
	}
	w.minRev = max(w.minRev, upTo+1)
	if w.minRev > h.mu.rev {
		delete(h.mu.unsynced, w)
		h.addSyncedLocked(w)
		return false
	}
	return w.pending == 0
}

// responseLength is how many of evs (in revision order) go in one response:
// whole revisions up to maxBytes of events, at least one revision.
func responseLength(evs []*mvccpb.Event, maxBytes int) int {
	size, cut := 0, 0
	for i, ev := range evs {
		if i > 0 && ev.Kv.ModRevision != evs[i-1].Kv.ModRevision {
			if size > maxBytes {
				if cut > 0 {
					return cut
				}
				return i
			}
			cut = i
		}
		size += proto.Size(ev)
	}
	if size > maxBytes && cut > 0 {
		return cut
	}
	return len(evs)
}

// progressTick sends the periodic progress notifications: to each synced
// watcher with progress_notify that got no event since the last tick.
func (h *Hub) progressTick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.mu.streams {
		for _, w := range s.state.watchers {
			if !w.progressNotify || w.gone {
				continue
			}
			if w.hadEvents {
				w.hadEvents = false
				continue
			}
			if w.synced && h.mu.rev >= w.startRev {
				s.pushLocked(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.mu.rev}, WatchId: w.id}})
			}
		}
	}
}

// answerProgressLocked answers the deferred RequestProgress calls whose
// streams are now all synced. REQUIRES: h.mu is held.
func (h *Hub) answerProgressLocked() {
	for s := range h.mu.progressWaiting {
		if h.progressReadyLocked(s) {
			delete(h.mu.progressWaiting, s)
			s.pushProgressLocked(h.mu.rev)
		}
	}
}

// progressReadyLocked reports whether a progress notification at the hub's
// revision is safe for the stream: every live watcher synced (all its
// events up to rev are queued) and started (etcd's rule). REQUIRES: h.mu is held.
func (h *Hub) progressReadyLocked(s *Stream) bool {
	for _, w := range s.state.watchers {
		if w.gone {
			continue
		}
		if !w.synced || h.mu.rev < w.startRev {
			return false
		}
	}
	return true
}
