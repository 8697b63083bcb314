package watch

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// CatchUpRound is one catch-up step: the watchers StartCatchUp picked and,
// once Read ran, what it read for them.
type CatchUpRound struct {
	jobs       []catchUp
	recent     recentView
	compactRev int64
	store      Store
	eventsMax  int
	// bytesMax bounds, in eventBytes, what one watcher's read from the
	// recent events collects (whole revisions): the BufferBytesMax that
	// queueCatchUp stops at, so that the versions read for PrevKv are not
	// read only to be dropped.
	bytesMax int
	// withPrev reads, for the watchers with prev_kv, the version each
	// recent event replaced, once per event for the whole round.
	withPrev prevReader
	read     bool
}

// catchUp is one history read for one unsynced watcher.
type catchUp struct {
	w       *watcher
	fromRev int64
	events  []*mvccpb.Event
	upTo    int64
	err     error
}

// recentView is the hub's recent events as a catch-up read sees them: the
// hub only appends beyond len(events) or replaces the slices, so these
// elements never change.
type recentView struct {
	events, withoutPrev []*mvccpb.Event
	// from and rev bound the revisions events holds completely.
	from, rev int64
}

// WantsCatchUp reports whether a catch-up step may have work: a watcher to
// catch up whose stream has taken everything queued for it. A driver runs
// CatchUp (or its three parts) while it does.
func (h *Hub) WantsCatchUp() bool { return h.catchUpDue }

// CatchUp runs one catch-up step and reports whether another one has work
// right away. Any store error other than a compacted start is returned
// after the step; its watcher is retried after ResyncInterval.
func (h *Hub) CatchUp() (more bool, err error) {
	r := h.StartCatchUp()
	if r == nil {
		return false, nil
	}
	r.Read()
	return h.FinishCatchUp(r)
}

// StartCatchUp picks up to CatchUpWatchersMax unsynced watchers whose
// stream has taken all their events, starting where the last step
// stopped; nil when there are none.
func (h *Hub) StartCatchUp() *CatchUpRound {
	var jobs []catchUp
	n := len(h.unsynced)
	if h.catchUpCursor >= n {
		h.catchUpCursor = 0
	}
	for i := 0; i < n && len(jobs) < h.cfg.CatchUpWatchersMax; i++ {
		w := h.unsynced[(h.catchUpCursor+i)%n]
		if w.pending == 0 && !w.catchUpFailed {
			jobs = append(jobs, catchUp{w: w, fromRev: w.minRev})
		}
	}
	if n > 0 {
		h.catchUpCursor = (h.catchUpCursor + h.cfg.CatchUpWatchersMax) % n
	}
	if len(jobs) == 0 {
		h.catchUpDue = false
		return nil
	}
	return &CatchUpRound{
		jobs:       jobs,
		recent:     recentView{events: h.recent, withoutPrev: h.recentWithoutPrev, from: h.recentFrom, rev: h.rev},
		compactRev: h.store.CompactRev(),
		store:      h.store,
		eventsMax:  h.cfg.CatchUpEventsMax,
		bytesMax:   h.cfg.BufferBytesMax,
		withPrev:   prevReader{store: h.store},
	}
}

// Read reads the events of every picked watcher, from the recent events
// when they cover its start and from the store's history otherwise. It
// reads no hub state that the hub changes, so a driver may run it without
// the lock that serializes its other calls.
func (r *CatchUpRound) Read() {
	for i := range r.jobs {
		j := &r.jobs[i]
		var ok bool
		if j.events, j.upTo, ok, j.err = r.fromRecent(j.w, j.fromRev); ok {
			continue
		}
		j.events, j.upTo, j.err = r.store.History(j.w.key, j.w.historyEnd(), j.fromRev, math.MaxInt64, r.eventsMax)
	}
	r.read = true
}

// fromRecent serves a catch-up from the recent events when they cover its
// start (ok): the watcher's events from fromRev, at most eventsMax of them
// and about bytesMax (whole revisions), and the revision they reach. The
// events are shared with the hub and every other watcher (with PrevKv or
// without, as the watcher asked): nobody may change them. At or below the
// compacted revision, history decides (it cancels the watch, or serves
// etcd's partial revision). err is a failed read of a previous version.
func (r *CatchUpRound) fromRecent(w *watcher, fromRev int64) (_ []*mvccpb.Event, upTo int64, ok bool, err error) {
	v := r.recent
	if v.from == 0 || fromRev < v.from || fromRev <= r.compactRev {
		return nil, 0, false, nil
	}
	i := sort.Search(len(v.events), func(i int) bool { return v.events[i].Kv.ModRevision >= fromRev })
	var out []*mvccpb.Event
	outBytes := 0
	for ; i < len(v.events); i++ {
		ev := v.events[i]
		if n := len(out); n > 0 && (n >= r.eventsMax || outBytes >= r.bytesMax) && ev.Kv.ModRevision != out[n-1].Kv.ModRevision {
			return out, out[n-1].Kv.ModRevision, true, nil
		}
		if !w.contains(ev.Kv.Key) {
			continue
		}
		if w.prevKV {
			if ev, err = r.withPrev.event(ev); err != nil {
				return nil, 0, true, err
			}
		} else {
			ev = v.withoutPrev[i]
		}
		out = append(out, ev)
		outBytes += eventBytes(ev)
	}
	return out, v.rev, true, nil
}

// prevReader gives watchers with prev_kv the events with PrevKv: it reads
// the version each event replaced from the store once, and shares the copy
// among the watchers of one Notify call or one catch-up round. Events do
// not carry PrevKv (but deletes that decoded it anyway), so that neither
// the apply path nor the recent window holds a second copy of every value
// when no watcher asks for it; etcd too reads PrevKv when it sends.
type prevReader struct {
	store Store
	// copies maps each event read to what watchers with prev_kv get. It is
	// only looked up, never ranged over. Bound: the events of one Notify
	// call or one round.
	copies map[*mvccpb.Event]*mvccpb.Event
}

// event returns ev as a watcher with prev_kv gets it: ev itself when it
// carries PrevKv, created its key, or replaced a version that compaction
// removed since (etcd then sends no PrevKv either); else a copy with PrevKv.
func (r *prevReader) event(ev *mvccpb.Event) (*mvccpb.Event, error) {
	if ev.PrevKv != nil || isCreate(ev) {
		return ev, nil
	}
	if out, ok := r.copies[ev]; ok {
		return out, nil
	}
	prev, err := r.store.VersionBefore(ev.Kv.Key, ev.Kv.ModRevision)
	if err != nil {
		return nil, fmt.Errorf("previous version of %q at revision %d: %w", ev.Kv.Key, ev.Kv.ModRevision, err)
	}
	out := ev
	if prev != nil {
		out = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: prev}
	}
	if r.copies == nil {
		r.copies = map[*mvccpb.Event]*mvccpb.Event{}
	}
	r.copies[ev] = out
	return out, nil
}

// isCreate reports whether ev created its key (a put of version 1): it
// replaced no version.
func isCreate(ev *mvccpb.Event) bool {
	return ev.Type == mvccpb.Event_PUT && ev.Kv.Version == 1
}

// FinishCatchUp queues what a round read, and reports whether another
// step has work right away. Reads made stale by calls since StartCatchUp
// (the watcher canceled, or moved on) are dropped. The first store error
// other than a compacted start is returned.
func (h *Hub) FinishCatchUp(r *CatchUpRound) (more bool, err error) {
	if !r.read {
		panic("watch: FinishCatchUp before CatchUpRound.Read")
	}
	for i := range r.jobs {
		again, jobErr := h.applyCatchUp(&r.jobs[i])
		more = more || again
		if err == nil {
			err = jobErr
		}
	}
	h.answerProgress()
	if more {
		h.catchUpDue = true
	}
	return more, err
}

// applyCatchUp queues what one read found, and reports whether the
// watcher can read again at once.
func (h *Hub) applyCatchUp(j *catchUp) (bool, error) {
	w := j.w
	if w.gone || w.synced || w.minRev != j.fromRev {
		return false, nil
	}
	if errors.Is(j.err, rpctypes.ErrGRPCCompacted) {
		h.remove(w)
		w.stream.push(Response{WatchResponse: &pb.WatchResponse{
			Header: &pb.ResponseHeader{}, WatchId: w.id, Canceled: true, CompactRevision: h.store.CompactRev(),
		}})
		return false, nil
	}
	if j.err != nil {
		w.catchUpFailed = true
		return false, fmt.Errorf("watch %d: catch up from revision %d: %w", w.id, j.fromRev, j.err)
	}
	upTo := h.queueCatchUp(w, w.keep(j.events), j.upTo)
	w.minRev = max(w.minRev, upTo+1)
	if w.minRev > h.rev {
		h.removeUnsynced(w)
		if h.cfg.Knobs.SkipHandoverEvent {
			w.minRev++ // planted bug: the first live revision is lost
		}
		h.addSynced(w)
		return false, nil
	}
	return w.pending == 0, nil
}

// queueCatchUp queues evs (whole revisions) for w in responses of at most
// ResponseBytesMax, stopping at a revision boundary once the watcher holds
// BufferBytesMax; it returns the revision the queued responses cover.
func (h *Hub) queueCatchUp(w *watcher, evs []*mvccpb.Event, upTo int64) int64 {
	for len(evs) > 0 {
		if w.pendingBytes >= h.cfg.BufferBytesMax {
			// The rest waits until the stream took these.
			return evs[0].Kv.ModRevision - 1
		}
		n := responseLength(evs, h.cfg.ResponseBytesMax)
		bytes := eventsBytes(evs[:n])
		w.stream.push(Response{
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
	return upTo
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
