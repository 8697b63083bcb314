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
	read       bool
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
		if j.events, j.upTo, ok = r.recent.fromRecent(j.w, j.fromRev, r.compactRev, r.eventsMax); ok {
			continue
		}
		j.events, j.upTo, j.err = r.store.History(j.w.key, j.w.historyEnd(), j.fromRev, math.MaxInt64, r.eventsMax)
	}
	r.read = true
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
