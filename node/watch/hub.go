package watch

import (
	"fmt"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Store is the history the hub catches watchers up from; *mvcc.Store
// implements it, and NodeStore adapts a node's StoreView. A driver that
// calls CatchUpRound.Read without its lock needs these methods safe for
// concurrent use.
type Store interface {
	// Rev is the published revision.
	Rev() int64
	// CompactRev is the compacted revision, 0 if none.
	CompactRev() int64
	// History returns the events of the etcd range at fromRev..toRev, at
	// most maxEvents (whole revisions), and the last revision covered; it
	// fails with rpctypes.ErrGRPCCompacted below the compacted revision.
	History(key, rangeEnd []byte, fromRev, toRev int64, maxEvents int) ([]*mvccpb.Event, int64, error)
	// VersionBefore returns the version of key that a change at rev
	// replaced, nil if there is none or compaction removed it
	// (mvcc.Store.VersionBefore).
	VersionBefore(key []byte, rev int64) (*mvccpb.KeyValue, error)
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
	// CatchUpWatchersMax bounds the watchers one catch-up step reads
	// history for. Default 512 (etcd's maxWatchersPerSync).
	CatchUpWatchersMax int
	// RecentBytesMax bounds, in bytes (eventBytes), the most recent events
	// the hub keeps in memory (whole revisions), so that watchers which
	// fell behind by less are caught up from memory, shared among them,
	// instead of each reading history from the store. The window is cut to
	// three quarters of it when it grows past it. It keeps only what the
	// watchers being caught up still need, and the newest sixteenth of
	// the bound for watchers created from a recent revision. Default
	// 32 MiB.
	RecentBytesMax int
	// ResponseBytesMax bounds the events of one catch-up response (whole
	// revisions, so one large revision may exceed it), so that a client's
	// default 4 MiB receive limit is not reached. Default 1 MiB.
	ResponseBytesMax int
	// ResyncInterval is how often, on the driver's clock, watchers whose
	// catch-up failed (a store error) are retried. Default 100 ms (etcd's
	// watchResyncPeriod).
	ResyncInterval time.Duration
	// ProgressNotifyInterval is the period, on the driver's clock, of
	// progress notifications for watchers with progress_notify. Default
	// 10 min, as etcd.
	ProgressNotifyInterval time.Duration
	// FanOutResponsesMin and FanOutPause pace a stream that fans out to
	// many watchers: after a Take of at least FanOutResponsesMin
	// responses, the stream's sender waits FanOutPause before it takes
	// again (Stream.Pause), and the watchers' events of that time join
	// the responses still queued (Stream.push) instead of going out as a
	// message each. Defaults 32 and 20 ms; see Stream.Pause.
	FanOutResponsesMin int
	FanOutPause        time.Duration
	// Knobs plant bugs (the simulator's planted-bug tests).
	Knobs Knobs
}

// Knobs plant bugs in the hub so that tests prove the watch checks can
// fail. Zero plants none.
type Knobs struct {
	// SkipHandoverEvent makes a watcher that a catch-up brings back to the
	// synced set miss the revision right after the handover.
	SkipHandoverEvent bool
	// ResyncForgetsWatcher makes a resync (after a snapshot install) drop
	// the first synced watcher instead of moving it to catch-up: it gets
	// nothing more.
	ResyncForgetsWatcher bool
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
	if c.FanOutResponsesMin == 0 {
		c.FanOutResponsesMin = 32
	}
	if c.FanOutPause == 0 {
		c.FanOutPause = 20 * time.Millisecond
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.BufferEventsMax < 1 || c.BufferBytesMax < 1 || c.CatchUpEventsMax < 1 || c.CatchUpWatchersMax < 1 || c.RecentBytesMax < 1 || c.ResponseBytesMax < 1 {
		return fmt.Errorf("watch: bounds must be positive: buffer %d events and %d bytes, catch-up events %d, catch-up watchers %d, recent %d bytes, response %d bytes",
			c.BufferEventsMax, c.BufferBytesMax, c.CatchUpEventsMax, c.CatchUpWatchersMax, c.RecentBytesMax, c.ResponseBytesMax)
	}
	if c.ResyncInterval <= 0 || c.ProgressNotifyInterval <= 0 {
		return fmt.Errorf("watch: intervals must be positive: resync %v, progress %v", c.ResyncInterval, c.ProgressNotifyInterval)
	}
	return nil
}

// Hub fans out a member's events to its watchers. See the package
// documentation. It is not safe for concurrent use: one driver calls it.
type Hub struct {
	cfg   Config
	store Store

	// rev is the last revision Notify fanned out. Invariant: every synced
	// watcher has been queued every matching event at or below rev, and
	// none below its minRev.
	rev int64
	// keyWatchers and rangeWatchers hold the synced watchers, by key for
	// single-key watchers; w.setIndex is w's position in its slice.
	keyWatchers   map[string][]*watcher
	rangeWatchers []*watcher
	// unsynced are the watchers to catch up; w.setIndex is w's position.
	unsynced []*watcher
	// catchUpCursor is where the next catch-up step starts looking in
	// unsynced, so that every watcher gets its turn.
	catchUpCursor int
	// catchUpDue is set when a watcher may have become ready to catch up
	// since the last step found none; cleared by a step that finds none.
	catchUpDue bool
	// streams are the open streams; s.index is s's position.
	streams []*Stream
	// progressWaiting are streams with a RequestProgress deferred until
	// all their watchers are synced, in request order.
	progressWaiting []*Stream
	// touched is Notify's scratch space: the watchers given events by the
	// current call, in the order they were first given one.
	touched []*watcher
	// recent are the latest events fanned out, in revision order.
	// Invariant: when recentFrom > 0, recent holds every event with a
	// revision in [recentFrom, rev].
	recent     []*mvccpb.Event
	recentFrom int64
	// recentWithoutPrev[i] is recent[i] without its PrevKv, shared by
	// every catch-up of a watcher without prev_kv (recent[i] itself when
	// it has none). Invariant: len(recentWithoutPrev) == len(recent).
	recentWithoutPrev []*mvccpb.Event
	// recentBytes is the sum of eventBytes over recent. Invariant:
	// recentBytes <= RecentBytesMax between calls.
	recentBytes int
	// recentDropped counts the events dropped from the front of recent
	// since its array was last copied: at most what it holds, about.
	recentDropped int

	// now is the driver's clock at the last Tick; nextProgress and
	// nextResync are when the next periodic progress and resync are due.
	now, nextProgress, nextResync time.Duration
	ticked                        bool
}

// New returns a hub whose watchers start at store's current revision. Feed
// it with Notify and Resync, drive it with Tick and CatchUp.
func New(store Store, cfg Config) *Hub {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Hub{cfg: cfg, store: store, rev: store.Rev(), keyWatchers: map[string][]*watcher{}}
}

// Config is the hub's configuration, with defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// Rev is the revision the hub has fanned out.
func (h *Hub) Rev() int64 { return h.rev }

// RecentBytes is what the hub's window of recent events holds, in
// eventBytes; at most Config.RecentBytesMax.
func (h *Hub) RecentBytes() int { return h.recentBytes }

// Notify fans out the events one Process applied, in revision order. It
// never blocks on a reader (slow watchers are moved to catch-up), and it
// keeps the event values, which must not change afterwards. Events at or
// below the hub's revision are ignored.
func (h *Hub) Notify(evs []*mvccpb.Event) {
	for len(evs) > 0 && evs[0].Kv.ModRevision <= h.rev {
		evs = evs[1:]
	}
	if len(evs) == 0 {
		return
	}
	if evs[0].Kv.ModRevision > h.rev+1 {
		// Revisions were skipped (a snapshot install): only history has them.
		h.resync()
	}
	firstRev, lastRev := evs[0].Kv.ModRevision, evs[len(evs)-1].Kv.ModRevision
	withoutPrev := h.collect(evs)
	for _, w := range h.touched {
		batch := w.batch
		w.batch = nil
		if w.prevFailed {
			// Its batch would miss events: catch-up reads them again,
			// and reports the error if it persists.
			w.prevFailed = false
			h.removeSynced(w)
			h.toUnsynced(w, firstRev)
			continue
		}
		h.deliver(w, batch, firstRev, lastRev)
	}
	clear(h.touched)
	h.touched = h.touched[:0]
	h.rev = lastRev
	h.remember(evs, withoutPrev)
	h.answerProgress()
}

// collect gives each synced watcher its matching events in w.batch and
// lists the watchers it gave some in h.touched. It returns the copies
// without PrevKv it made (nil if none), indexed as evs.
//
// Events come without PrevKv (but for deletes that decoded it anyway), so
// for the watchers with prev_kv it reads the version each event replaced
// from the store, once per event whatever the number of such watchers; a
// watcher whose read fails is marked prevFailed.
func (h *Hub) collect(evs []*mvccpb.Event) []*mvccpb.Event {
	var withoutPrev []*mvccpb.Event // lazily: one copy per event, shared
	withPrev := prevReader{store: h.store}
	for i, ev := range evs {
		add := func(w *watcher) {
			if ev.Kv.ModRevision < w.minRev || w.filtered(ev) || w.prevFailed {
				return
			}
			if len(w.batch) == 0 {
				h.touched = append(h.touched, w)
			}
			if w.prevKV {
				withPrevKv, err := withPrev.event(ev)
				if err != nil {
					w.prevFailed, w.batch = true, w.batch[:0]
					return
				}
				w.batch = append(w.batch, withPrevKv)
				return
			}
			if ev.PrevKv != nil {
				if withoutPrev == nil {
					withoutPrev = make([]*mvccpb.Event, len(evs))
				}
				if withoutPrev[i] == nil {
					withoutPrev[i] = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
				}
				w.batch = append(w.batch, withoutPrev[i])
				return
			}
			w.batch = append(w.batch, ev)
		}
		for _, w := range h.keyWatchers[string(ev.Kv.Key)] {
			add(w)
		}
		for _, w := range h.rangeWatchers {
			if w.contains(ev.Kv.Key) {
				add(w)
			}
		}
	}
	return withoutPrev
}

// remember adds events (following the hub's revision without a gap) to the
// recent ones, and then drops the oldest revisions that no watcher being
// caught up still needs, beyond the newest recentKeepBytes (the window for
// watchers created from a recent revision), and, past RecentBytesMax, the
// oldest revisions down to three quarters of it.
//
// Only catch-ups read the window: a synced watcher was queued every event
// as it came, and one that falls behind needs events from the batch that
// did not fit on. Keeping the whole bound while every watcher keeps up
// made the window most of the live heap (with GOGC at 200, three times
// that of resident memory), and its events cost the collector's marking
// on every cycle. While the hub has no watcher it keeps none: a watcher
// created later from a past revision catches up from history.
func (h *Hub) remember(evs, withoutPrev []*mvccpb.Event) {
	if !h.watching() {
		h.recent, h.recentWithoutPrev, h.recentFrom, h.recentBytes, h.recentDropped = nil, nil, 0, 0, 0
		return
	}
	if h.recentFrom == 0 {
		h.recentFrom = evs[0].Kv.ModRevision
	}
	h.recent = append(h.recent, evs...)
	for i, ev := range evs {
		h.recentBytes += eventBytes(ev)
		switch {
		case ev.PrevKv == nil:
		case withoutPrev != nil && withoutPrev[i] != nil:
			ev = withoutPrev[i] // made for a synced watcher already
		default:
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		h.recentWithoutPrev = append(h.recentWithoutPrev, ev)
	}
	if h.recentBytes > h.cfg.RecentBytesMax {
		h.forgetOldest(h.cfg.RecentBytesMax/4*3, math.MaxInt64)
	} else if h.recentBytes > h.recentKeepBytes() {
		h.forgetOldest(h.recentKeepBytes(), h.oldestNeeded())
	}
}

// recentKeepBytes is what the window keeps of the newest events even when
// no watcher being caught up needs them: a sixteenth of its bound.
func (h *Hub) recentKeepBytes() int { return h.cfg.RecentBytesMax / 16 }

// oldestNeeded is the oldest revision a watcher being caught up still
// needs, or past the hub's revision when none is.
func (h *Hub) oldestNeeded() int64 {
	oldest := h.rev + 1
	for _, w := range h.unsynced {
		oldest = min(oldest, w.minRev)
	}
	return oldest
}

// forgetOldest drops the oldest revisions of the recent events below
// revision below until they hold at most keepBytes. Catch-up reads may
// still hold the slices (recentView), so elements are never changed: the
// survivors stay in the same arrays while fewer events lie dropped before
// them there (recentDropped) than they are, and are copied to new slices
// otherwise, leaving the old arrays, and the events only they hold, to
// the collector. So the arrays keep alive at most about twice what the
// window holds, and the copies cost no more than what was dropped.
func (h *Hub) forgetOldest(keepBytes int, below int64) {
	recent := h.recent
	cut := 0
	for cut < len(recent) && h.recentBytes > keepBytes && recent[cut].Kv.ModRevision < below {
		h.recentBytes -= eventBytes(recent[cut])
		cut++
	}
	for cut > 0 && cut < len(recent) && recent[cut].Kv.ModRevision == recent[cut-1].Kv.ModRevision {
		h.recentBytes -= eventBytes(recent[cut]) // never half a revision
		cut++
	}
	if cut == 0 {
		return
	}
	h.recentDropped += cut
	if h.recentDropped < len(recent)-cut {
		h.recent, h.recentWithoutPrev = recent[cut:], h.recentWithoutPrev[cut:]
	} else {
		h.recent = append([]*mvccpb.Event(nil), recent[cut:]...)
		h.recentWithoutPrev = append([]*mvccpb.Event(nil), h.recentWithoutPrev[cut:]...)
		h.recentDropped = 0
	}
	if len(h.recent) == 0 {
		h.recent, h.recentWithoutPrev, h.recentFrom, h.recentDropped = nil, nil, 0, 0
		return
	}
	h.recentFrom = h.recent[0].Kv.ModRevision
}

// Resync moves every synced watcher to catch-up and takes the store's
// revision as the hub's: call it after the store jumped ahead without
// events (a snapshot install). Notify does it by itself when the next
// events show the jump.
func (h *Hub) Resync() {
	h.resync()
	h.rev = max(h.rev, h.store.Rev())
}

// resync moves every synced watcher to catch-up from the revision after
// the hub's, in a deterministic order: single-key watchers by key, then
// range watchers.
func (h *Hub) resync() {
	forget := h.cfg.Knobs.ResyncForgetsWatcher
	move := func(w *watcher) {
		if forget {
			forget = false
			w.synced, w.gone = false, true // planted bug: in no set, it gets nothing more
			return
		}
		h.toUnsynced(w, h.rev+1)
	}
	for _, key := range sortedKeys(h.keyWatchers) {
		for _, w := range h.keyWatchers[key] {
			move(w)
		}
	}
	for _, w := range h.rangeWatchers {
		move(w)
	}
	clear(h.keyWatchers)
	clear(h.rangeWatchers)
	h.rangeWatchers = h.rangeWatchers[:0]
	// The revisions skipped are in no event the hub saw.
	h.recent, h.recentWithoutPrev, h.recentFrom, h.recentBytes, h.recentDropped = nil, nil, 0, 0, 0
}

// toUnsynced marks a watcher that is being taken out of the synced sets
// (by its caller) unsynced from fromRev on, and adds it to the catch-up set.
func (h *Hub) toUnsynced(w *watcher, fromRev int64) {
	w.synced = false
	w.minRev = max(w.minRev, fromRev)
	w.setIndex = len(h.unsynced)
	h.unsynced = append(h.unsynced, w)
	h.catchUpDue = true
}

// deliver queues a live batch for a synced watcher, or moves it to
// catch-up when its stream is too far behind.
func (h *Hub) deliver(w *watcher, batch []*mvccpb.Event, firstRev, lastRev int64) {
	batchBytes := eventsBytes(batch)
	if w.pending > 0 && (w.pending+len(batch) > h.cfg.BufferEventsMax || w.pendingBytes+batchBytes > h.cfg.BufferBytesMax) {
		h.removeSynced(w)
		h.toUnsynced(w, firstRev)
		return
	}
	w.stream.push(Response{
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

// watching reports whether the hub has a watcher, synced or catching up.
func (h *Hub) watching() bool {
	return len(h.keyWatchers) > 0 || len(h.rangeWatchers) > 0 || len(h.unsynced) > 0
}

// add registers a new watcher, synced if it starts after the hub's
// revision.
func (h *Hub) add(w *watcher) {
	if w.minRev > h.rev {
		h.addSynced(w)
		return
	}
	h.toUnsynced(w, w.minRev)
}

func (h *Hub) addSynced(w *watcher) {
	w.synced = true
	if w.single() {
		set := h.keyWatchers[string(w.key)]
		w.setIndex = len(set)
		h.keyWatchers[string(w.key)] = append(set, w)
		return
	}
	w.setIndex = len(h.rangeWatchers)
	h.rangeWatchers = append(h.rangeWatchers, w)
}

func (h *Hub) removeSynced(w *watcher) {
	w.synced = false
	if !w.single() {
		h.rangeWatchers = removeAt(h.rangeWatchers, w.setIndex)
		return
	}
	set := removeAt(h.keyWatchers[string(w.key)], w.setIndex)
	if len(set) == 0 {
		delete(h.keyWatchers, string(w.key))
		return
	}
	h.keyWatchers[string(w.key)] = set
}

func (h *Hub) removeUnsynced(w *watcher) {
	h.unsynced = removeAt(h.unsynced, w.setIndex)
}

// remove takes a watcher out of the fan-out and catch-up sets.
func (h *Hub) remove(w *watcher) {
	if w.synced {
		h.removeSynced(w)
	} else if !w.gone {
		h.removeUnsynced(w)
	}
	w.gone = true
}

// removeAt removes set[i] by moving the last watcher into its place, and
// keeps the moved watcher's setIndex right.
func removeAt(set []*watcher, i int) []*watcher {
	last := len(set) - 1
	if set[i].setIndex != i {
		panic(fmt.Sprintf("watch: watcher %d at index %d believes it is at %d", set[i].id, i, set[i].setIndex))
	}
	set[i] = set[last]
	set[i].setIndex = i
	set[last] = nil
	return set[:last]
}

// Tick advances the driver's clock to now (monotonic, any origin): it
// sends the periodic progress notifications that are due, and retries
// catch-ups that failed once ResyncInterval passed.
func (h *Hub) Tick(now time.Duration) {
	if !h.ticked {
		h.ticked = true
		h.nextProgress, h.nextResync = now+h.cfg.ProgressNotifyInterval, now+h.cfg.ResyncInterval
	}
	h.now = max(h.now, now)
	if h.now >= h.nextResync {
		h.nextResync = h.now + h.cfg.ResyncInterval
		h.retryFailedCatchUps()
	}
	if h.now >= h.nextProgress {
		h.nextProgress = h.now + h.cfg.ProgressNotifyInterval
		h.progressTick()
	}
}

func (h *Hub) retryFailedCatchUps() {
	for _, w := range h.unsynced {
		if w.catchUpFailed {
			w.catchUpFailed = false
			h.catchUpDue = true
		}
	}
}

// progressTick sends the periodic progress notifications: to each synced
// watcher with progress_notify that got no event since the last tick.
func (h *Hub) progressTick() {
	for _, s := range h.streams {
		for _, w := range s.list {
			if !w.progressNotify || w.gone {
				continue
			}
			if w.hadEvents {
				w.hadEvents = false
				continue
			}
			if w.synced && h.rev >= w.startRev {
				s.push(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: w.id}})
			}
		}
	}
}

// answerProgress answers the deferred RequestProgress calls whose streams
// are now all synced.
func (h *Hub) answerProgress() {
	kept := h.progressWaiting[:0]
	for _, s := range h.progressWaiting {
		if !h.progressReady(s) {
			kept = append(kept, s)
			continue
		}
		s.progressWaiting = false
		s.pushProgress(h.rev)
	}
	clear(h.progressWaiting[len(kept):])
	h.progressWaiting = kept
}

// progressReady reports whether a progress notification at the hub's
// revision is safe for the stream: every live watcher synced (all its
// events up to rev are queued) and started (etcd's rule).
func (h *Hub) progressReady(s *Stream) bool {
	for _, w := range s.list {
		if w.gone {
			continue
		}
		if !w.synced || h.rev < w.startRev {
			return false
		}
	}
	return true
}
