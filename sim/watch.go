package sim

import (
	"fmt"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/mvcc"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Watches: simulated watchers consume a member's Output.Events, the feed
// the production watch hub gets, and check etcd's watch guarantees at the
// node level (sim/ may not import the server's hub).
//
// A watcher is attached to one member at a time. Attaching (at the start,
// after its member crashed, or when it reconnects elsewhere) catches it up
// from that member's MVCC history from the revision after the last one it
// received, then it takes the member's live events, skipping revisions it
// already has (a lagging member replays them). A snapshot install replaces
// the member's keyspace without events, so an attached watcher catches up
// from history again. Everything else is taken from the feed as is: a gap
// in a member's Events is the node's bug, and the end-of-run check finds it.

// watcher is one simulated watch.
type watcher struct {
	w  *world
	id int
	// req is what the watch asks for; its StartRevision is fixed for the
	// whole run, whatever the member.
	req lin.WatchRequest
	// m is the member the watch is attached to; nil while reconnecting.
	m *member
	// home, when set, is the member a detached watcher waits for: a
	// client configured with one endpoint. Members that restart lag, and
	// some catch up by snapshot under the watch.
	home *member
	// nextRevision is the first revision not yet received: the last one
	// seen plus one, where a resumed watch starts.
	nextRevision int64
	received     []lin.Event
	// resumes counts how many times the watch was (re)attached.
	resumes int
}

// historyBatchEvents bounds one History read while catching up; a catch-up
// reads in batches of whole revisions until it reaches the member.
const historyBatchEvents = 1000

// watchReconnect bounds how long a detached watcher waits before it
// reconnects, and how often an attached one moves to another member.
const (
	watchReconnectMicros = 500 * millisecond
	watchMoveMicros      = 8 * second
)

func (w *world) startWatchers() {
	count := 1 + w.rng.IntN(3)
	for i := range count {
		wt := &watcher{w: w, id: i + 1, req: w.randomWatchRequest()}
		wt.nextRevision = wt.req.StartRevision
		w.watchers = append(w.watchers, wt)
		w.sched.after(w.rng.Int64N(second), wt.reconnect)
	}
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

// reconnect attaches the watcher to a random live member, or tries again
// later; once attached it moves now and then, as a client does after a
// partition or a leader change.
func (wt *watcher) reconnect() {
	w := wt.w
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	if wt.m == nil {
		m := w.randomLiveMember()
		if wt.home != nil && !wt.home.removed {
			m = nil
			if wt.home.up() {
				m = wt.home
			}
		}
		if m != nil {
			wt.attach(m)
		}
	} else if m := w.randomLiveMember(); m != nil && m != wt.m {
		w.trace.printf("%s moves %s → %s", wt.name(), wt.m.name(), m.name())
		wt.attach(m)
	}
	delay := watchReconnectMicros
	if wt.m != nil {
		delay = second + w.rng.Int64N(watchMoveMicros)
	}
	w.sched.after(w.rng.Int64N(delay)+millisecond, wt.reconnect)
}

// attach resumes the watch on m from nextRevision: history first, then
// m's live events.
func (wt *watcher) attach(m *member) {
	wt.m, wt.home = m, nil
	wt.resumes++
	from := wt.nextRevision
	wt.catchUp()
	wt.w.trace.printf("%s watches %s on %s from revision %d, caught up to %d", wt.name(), describeWatch(wt.req), m.name(), from, wt.nextRevision-1)
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

// catchUp reads the attached member's history from nextRevision to its
// current revision.
func (wt *watcher) catchUp() {
	for {
		var events []*mvccpb.Event
		var upTo int64
		var err error
		wt.m.node.Store().With(func(s *mvcc.Store) {
			events, upTo, err = s.History([]byte(wt.req.Key), []byte(wt.req.End), wt.nextRevision, s.Rev(), historyBatchEvents)
		})
		if err != nil {
			// The simulator never compacts, so a compacted start is a bug.
			wt.w.fail("%s: history from revision %d on %s: %v", wt.name(), wt.nextRevision, wt.m.name(), err)
			return
		}
		wt.take(events)
		if upTo < wt.nextRevision {
			return // nothing newer on this member
		}
		wt.nextRevision = upTo + 1
	}
}

// take appends events at or after nextRevision and moves nextRevision
// past the last one.
func (wt *watcher) take(events []*mvccpb.Event) {
	for _, e := range events {
		rev := e.GetKv().GetModRevision()
		if rev < wt.nextRevision {
			continue
		}
		wt.received = append(wt.received, wt.toEvent(e))
		wt.nextRevision = rev + 1
	}
}

func (wt *watcher) toEvent(e *mvccpb.Event) lin.Event {
	ev := eventOf(e)
	if wt.req.PrevKV && e.GetPrevKv() != nil {
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

func inWatchRange(req lin.WatchRequest, key string) bool {
	switch {
	case req.End == "":
		return key == req.Key
	case req.End == lin.RangeEndAll:
		return key >= req.Key
	}
	return key >= req.Key && key < req.End
}

// feedWatchers hands the events one Process call applied on m to the
// watchers attached to m, and to the lease checks.
func (w *world) feedWatchers(m *member, out node.Output) {
	w.observeRevocations(out.Events)
	for _, wt := range w.watchers {
		if wt.m != m {
			continue
		}
		if out.SnapshotInstalled {
			// The installed range never arrives in Events: catch up from
			// the new keyspace, which already holds this call's events.
			w.trace.printf("%s: %s installed a snapshot, catching up from revision %d", wt.name(), m.name(), wt.nextRevision)
			if !w.opts.plantNoSnapshotCatchUp {
				wt.catchUp()
			}
			continue
		}
		var matching []*mvccpb.Event
		for _, e := range out.Events {
			if inWatchRange(wt.req, string(e.GetKv().GetKey())) {
				matching = append(matching, e)
			}
		}
		wt.take(matching)
		if n := len(out.Events); n > 0 {
			wt.nextRevision = max(wt.nextRevision, out.Events[n-1].GetKv().GetModRevision()+1)
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
		if wt.m == m {
			return
		}
	}
	wt := w.watchers[w.rng.IntN(len(w.watchers))]
	w.trace.printf("%s moves to %s, which is receiving a snapshot", wt.name(), m.name())
	wt.attach(m)
}

// detachWatchers disconnects the watchers of a member that crashed or was
// removed; they reconnect on their own schedule.
func (w *world) detachWatchers(m *member) {
	for _, wt := range w.watchers {
		if wt.m == m {
			wt.m = nil
			if w.rng.IntN(2) == 0 {
				wt.home = m
			}
		}
	}
}

// committedHistory is every change in the converged keyspace, from the
// first write: the simulator never compacts, so it is all there.
func (w *world) committedHistory(m *member) ([]lin.Event, error) {
	var committed []lin.Event
	from := int64(2)
	for {
		var events []*mvccpb.Event
		var upTo int64
		var err error
		m.node.Store().With(func(s *mvcc.Store) {
			events, upTo, err = s.History([]byte{0}, []byte(lin.RangeEndAll), from, s.Rev(), historyBatchEvents)
		})
		if err != nil {
			return nil, fmt.Errorf("history of %s from revision %d: %w", m.name(), from, err)
		}
		for _, e := range events {
			committed = append(committed, eventOf(e))
		}
		if upTo < from {
			return committed, nil
		}
		from = upTo + 1
	}
}

// checkWatches attaches every watcher once more (as a client reconnecting
// after the faults healed), then checks each one's events against the
// committed history: the watcher must have received everything its member
// applied, in order, without gaps or duplicates, each revision whole, with
// the right prev_kv.
func (w *world) checkWatches(committed []lin.Event) {
	for _, wt := range w.watchers {
		if wt.m == nil || !wt.m.up() {
			wt.attach(w.inCluster()[w.rng.IntN(len(w.inCluster()))])
		}
		req := wt.req
		req.CompleteRevision = wt.m.node.Store().Rev()
		received := wt.received
		if w.opts.plantDropWatchEvent && len(received) > 0 {
			received = append(received[:len(received)/2:len(received)/2], received[len(received)/2+1:]...)
		}
		if err := lin.CheckWatch(committed, req, received); err != nil {
			w.failAs(FailWatch, "%s %s: %v", wt.name(), describeWatch(wt.req), err)
			continue
		}
		w.trace.printf("watch %s: %d events through revision %d, resumed %d times: ok", wt.name(), len(received), req.CompleteRevision, wt.resumes)
	}
}
