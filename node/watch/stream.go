package watch

import (
	"bytes"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Errors of a create request, with etcd's texts; they reach the client as
// cancel_reason.
var (
	ErrEmptyWatcherRange  = errors.New("mvcc: watcher range is empty")
	ErrWatcherDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
)

// InvalidWatchID is the watch_id of responses that belong to no watcher:
// failed creates and stream-wide progress (clientv3.InvalidWatchID).
const InvalidWatchID = -1

// Response is one response for the stream to send. Header holds only the
// revision; the server adds the cluster, member and term. Events are shared
// with other watchers and must not be modified.
type Response struct {
	*pb.WatchResponse
	// Fragment is set when the watcher asked for large responses to be
	// split (the server splits them past its request size limit).
	Fragment bool
	// w is the watcher whose pending count the events are part of.
	w *watcher
	// bytes is eventsBytes(Events), counted in w's pendingBytes.
	bytes int
	// ownsEvents is set once Events is a slice of this response's own, so
	// that later events of its watcher can be appended in place; until
	// then Events may be shared with other watchers.
	ownsEvents bool
}

// Stream is one client's watch stream: its watchers and the responses
// queued for it, in the order they must be sent. Like the hub, it is
// driven by one caller.
type Stream struct {
	hub *Hub
	// index is the stream's position in hub.streams while open.
	index int
	// watchers are the stream's watchers by ID (those canceled for a
	// compacted start included, until the client cancels them: etcd keeps
	// their IDs taken); list holds the same ones in a deterministic order,
	// w.streamIndex being w's position.
	watchers map[int64]*watcher
	list     []*watcher
	// nextID is the next watch ID to try for a create without one.
	nextID int64
	queue  []Response
	// epoch advances whenever the queue is taken and whenever a response
	// other than a watcher's events is queued. A watcher's events are
	// merged into its last queued response only while that response was
	// queued in the current epoch (watcher.queuedEpoch), so nothing is
	// ever moved ahead of a created, canceled or progress response.
	// Cancel, which removes responses from the queue, advances it too:
	// within an epoch the queue only grows, so watcher.queuedAt stays
	// valid. Epochs start at 1, so a new watcher's zero queuedEpoch
	// matches none.
	epoch  uint64
	closed bool
	// progressWaiting is set while the stream is in hub.progressWaiting.
	progressWaiting bool
	// onQueued, if set, is called when the queue becomes non-empty.
	onQueued func()
	// pause is what Pause returns: set by each Take.
	pause time.Duration
}

// NewStream opens a stream. onQueued, if not nil, is called (from within
// the hub's calls) whenever the stream's queue becomes non-empty: a
// driver's cue to Take.
func (h *Hub) NewStream(onQueued func()) *Stream {
	s := &Stream{hub: h, index: len(h.streams), watchers: map[int64]*watcher{}, onQueued: onQueued, epoch: 1}
	h.streams = append(h.streams, s)
	return s
}

// Queued reports whether responses are waiting to be taken.
func (s *Stream) Queued() bool { return len(s.queue) > 0 }

// Pause is how long the stream's sender waits, once it sent what the last
// Take returned, before it takes again: Config.FanOutPause after a take of
// at least Config.FanOutResponsesMin responses, else nothing.
//
// Why: every Notify queues one response per watcher, so a stream of
// hundreds of watchers of a busy key would send hundreds of small messages
// each time, and its client pays gRPC's cost per message for every one
// (clientv3 spent about twice the CPU on such a stream from cairn as from
// etcd, whose watchers fall behind and catch up in batches every 100 ms).
// While the sender waits, push merges the watchers' next events into the
// responses still queued, as for any stream that sends slower than events
// come. An event waits at most FanOutPause more, and only on such a stream.
// Measured (1,000 watchers of one key on 10 streams, 300 puts/s, one
// member; docs/performance.md, session O): 62 % fewer messages, the
// client's CPU 12.8 → 9.2 s, put-to-event p50 100-122 → 19 ms and p99
// 396-512 → 111-146 ms (etcd: 83-90 and 186-206 ms). With 10 watchers per
// stream a pause only added latency, hence the threshold.
func (s *Stream) Pause() time.Duration { return s.pause }

// Take returns every queued response, oldest first, and empties the queue.
// It is the stream's acknowledgement: a stream takes again only once it
// sent what it took before, so the events taken no longer count against
// the watchers' buffers.
func (s *Stream) Take() []Response {
	q := s.queue
	s.queue = nil
	s.epoch++
	s.pause = 0
	if len(q) >= s.hub.cfg.FanOutResponsesMin {
		s.pause = s.hub.cfg.FanOutPause
	}
	for _, r := range q {
		if r.w == nil {
			continue
		}
		r.w.pending -= len(r.Events)
		r.w.pendingBytes -= r.bytes
		if r.w.pending == 0 && !r.w.synced && !r.w.gone {
			s.hub.catchUpDue = true
		}
	}
	return q
}

// mergeBytesMax bounds, in eventBytes, the responses push merges. It is
// kept at gRPC's 32 KiB buffer size: a merged response then encodes into a
// buffer of that pool, where a larger one would take a 1 MiB buffer each,
// which showed as 20-40 MB more peak RSS under 100 watchers.
const mergeBytesMax = 32 << 10

// push queues a response. A watcher's events join its last response still
// queued while both fit in mergeBytesMax: a stream that sends slower than
// events come then sends fewer, larger responses, which costs the server
// and the client less per event, instead of one per Notify call per
// watcher. Whole responses are merged, so a revision is never split.
func (s *Stream) push(r Response) {
	if s.closed {
		return
	}
	w := r.w
	if w == nil || len(r.Events) == 0 {
		s.epoch++
	} else if w.queuedEpoch == s.epoch {
		if last := &s.queue[w.queuedAt]; last.bytes+r.bytes <= min(mergeBytesMax, s.hub.cfg.ResponseBytesMax) {
			last.merge(r)
			return
		}
	}
	s.queue = append(s.queue, r)
	if w != nil && len(r.Events) > 0 {
		w.queuedAt, w.queuedEpoch = len(s.queue)-1, s.epoch
	}
	if len(s.queue) == 1 && s.onQueued != nil {
		s.onQueued()
	}
}

// merge appends the events of later, a response of the same watcher
// queued after r, and takes its revision.
func (r *Response) merge(later Response) {
	if !r.ownsEvents {
		r.Events = append(make([]*mvccpb.Event, 0, 2*(len(r.Events)+len(later.Events))), r.Events...)
		r.ownsEvents = true
	}
	r.Events = append(r.Events, later.Events...)
	r.Header.Revision = max(r.Header.Revision, later.Header.Revision)
	r.bytes += later.bytes
}

// pushProgress queues a stream-wide progress notification.
func (s *Stream) pushProgress(rev int64) {
	s.push(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: InvalidWatchID}})
}

// Create handles a WatchCreateRequest as etcd does and queues its answer:
// created (with the watch ID) or created and canceled (watch ID -1, with
// cancel_reason). The request is not kept.
func (s *Stream) Create(req *pb.WatchCreateRequest) {
	h := s.hub
	rev := h.store.Rev()
	w, err := s.newWatcher(req, rev)
	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: InvalidWatchID, Created: true}
	if err != nil {
		resp.Canceled, resp.CancelReason = true, err.Error()
		s.push(Response{WatchResponse: resp})
		return
	}
	resp.WatchId = w.id
	// The created response goes first: events follow it in the queue.
	s.push(Response{WatchResponse: resp})
	s.watchers[w.id] = w
	w.streamIndex = len(s.list)
	s.list = append(s.list, w)
	h.add(w)
}

// Refuse answers a create request the member refused before the hub saw
// it (the client may not read the range) as etcd does: created and
// canceled, watch ID -1, with reason as cancel_reason.
func (s *Stream) Refuse(reason error) {
	s.push(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: s.hub.store.Rev()},
		WatchId: InvalidWatchID, Created: true, Canceled: true, CancelReason: reason.Error()}})
}

// newWatcher validates a create request and builds its watcher, with
// etcd's conventions: an empty key is "\x00", range_end "\x00" means every
// key from key, start revision 0 means after rev.
func (s *Stream) newWatcher(req *pb.WatchCreateRequest, rev int64) (*watcher, error) {
	if s.closed {
		return nil, ErrEmptyWatcherRange // etcd's answer on a closed stream
	}
	if req.GetStartRevision() < 0 {
		return nil, rpctypes.ErrCompacted
	}
	key := req.GetKey()
	if len(key) == 0 {
		key = []byte{0}
	}
	end := req.GetRangeEnd()
	fromKey := len(end) == 1 && end[0] == 0
	if len(end) != 0 && !fromKey && bytes.Compare(key, end) >= 0 {
		return nil, ErrEmptyWatcherRange
	}
	id, err := s.watchID(req.GetWatchId())
	if err != nil {
		return nil, err
	}
	w := &watcher{
		stream: s, id: id, key: key, startRev: req.GetStartRevision(),
		prevKV: req.GetPrevKv(), progressNotify: req.GetProgressNotify(), fragment: req.GetFragment(),
		fromKey: fromKey,
	}
	if !fromKey && len(end) > 0 {
		w.end = end
	}
	for _, f := range req.GetFilters() {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	w.minRev = w.startRev
	if w.startRev == 0 {
		w.minRev = rev + 1
	}
	return w, nil
}

// watchID is the ID of a new watcher: the one asked for, or the lowest
// free one from nextID on when 0 was asked.
func (s *Stream) watchID(asked int64) (int64, error) {
	if asked != 0 {
		if s.watchers[asked] != nil {
			return 0, ErrWatcherDuplicateID
		}
		return asked, nil
	}
	for s.watchers[s.nextID] != nil {
		s.nextID++
	}
	s.nextID++
	return s.nextID - 1, nil
}

// Cancel cancels a watcher and queues the canceled response; events queued
// for it and not yet taken are dropped. An unknown ID gets no answer, as in
// etcd.
func (s *Stream) Cancel(id int64) {
	h := s.hub
	w := s.watchers[id]
	if w == nil || s.closed {
		return
	}
	h.remove(w)
	s.forget(w)
	kept := s.queue[:0]
	for _, r := range s.queue {
		if r.w != w {
			kept = append(kept, r)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.epoch++ // the responses kept may have moved: queuedAt is stale
	w.pending, w.pendingBytes = 0, 0
	s.push(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.store.Rev()}, WatchId: id, Canceled: true}})
	// The canceled watcher may have been all a deferred progress waited for.
	h.answerProgress()
}

// forget removes a watcher from the stream's sets.
func (s *Stream) forget(w *watcher) {
	delete(s.watchers, w.id)
	last := len(s.list) - 1
	s.list[w.streamIndex] = s.list[last]
	s.list[w.streamIndex].streamIndex = w.streamIndex
	s.list[last] = nil
	s.list = s.list[:last]
}

// RequestProgress queues a progress notification (watch ID -1) at the
// hub's revision as soon as every watcher of the stream is synced: at once
// if they are, later if one is catching up. A stream without watchers gets
// none, as in etcd.
func (s *Stream) RequestProgress() {
	h := s.hub
	if s.closed || len(s.watchers) == 0 {
		return
	}
	if h.progressReady(s) {
		s.pushProgress(h.rev)
		return
	}
	if !s.progressWaiting {
		s.progressWaiting = true
		h.progressWaiting = append(h.progressWaiting, s)
	}
}

// Close cancels every watcher of the stream and drops what is queued.
func (s *Stream) Close() {
	h := s.hub
	if s.closed {
		return
	}
	for _, w := range s.list {
		h.remove(w)
	}
	s.closed = true
	s.watchers, s.list, s.queue = nil, nil, nil
	last := len(h.streams) - 1
	h.streams[s.index] = h.streams[last]
	h.streams[s.index].index = s.index
	h.streams[last] = nil
	h.streams = h.streams[:last]
	if s.progressWaiting {
		s.progressWaiting = false
		h.progressWaiting = removeStream(h.progressWaiting, s)
	}
}

func removeStream(streams []*Stream, s *Stream) []*Stream {
	kept := streams[:0]
	for _, other := range streams {
		if other != s {
			kept = append(kept, other)
		}
	}
	clear(streams[len(kept):])
	return kept
}

// watcher is one watch. Fields above the line are fixed at creation.
type watcher struct {
	stream *Stream
	id     int64
	key    []byte
	// end is the exclusive end of a range; nil for a single key or fromKey.
	end     []byte
	fromKey bool
	// startRev is the requested start revision (0: from now).
	startRev                         int64
	noPut, noDelete                  bool
	prevKV, progressNotify, fragment bool

	// minRev is the next revision the watcher needs: every matching event
	// below it has been queued, none at or above it.
	minRev int64
	// synced is set while the watcher is in the fan-out sets; otherwise,
	// unless gone, it is in the catch-up set. setIndex is its position in
	// the set it is in, streamIndex in its stream's list.
	synced                bool
	gone                  bool
	setIndex, streamIndex int
	// catchUpFailed is set when its last catch-up hit a store error; it
	// is retried at the next resync.
	catchUpFailed bool
	// pending counts its events queued and not yet taken, pendingBytes
	// their eventBytes. Invariant: 0 <= pending, 0 <= pendingBytes, and
	// pendingBytes == 0 when pending == 0.
	pending      int
	pendingBytes int
	// queuedAt is the index in its stream's queue of its last queued
	// events, valid while queuedEpoch is the stream's epoch (Stream.push).
	queuedAt    int
	queuedEpoch uint64
	// hadEvents is set when events were queued since the last progress
	// tick.
	hadEvents bool
	// batch is Notify's scratch space: its events of the current call.
	batch []*mvccpb.Event
	// prevFailed is Notify's mark that reading a PrevKv for the watcher
	// failed in the current call: the call moves it to catch-up instead.
	prevFailed bool
}

func (w *watcher) single() bool { return w.end == nil && !w.fromKey }

// contains reports whether key is in the watched range.
func (w *watcher) contains(key []byte) bool {
	switch {
	case w.fromKey:
		return bytes.Compare(key, w.key) >= 0
	case w.end == nil:
		return bytes.Equal(key, w.key)
	}
	return bytes.Compare(key, w.key) >= 0 && bytes.Compare(key, w.end) < 0
}

// historyEnd is the range end in the store's (etcd's) convention.
func (w *watcher) historyEnd() []byte {
	if w.fromKey {
		return []byte{0}
	}
	return w.end
}

func (w *watcher) filtered(ev *mvccpb.Event) bool {
	return (w.noPut && ev.Type == mvccpb.Event_PUT) || (w.noDelete && ev.Type == mvccpb.Event_DELETE)
}

// keep filters a catch-up's events and drops PrevKv unless asked for.
// Events read from history belong to this watcher alone and may be
// changed; those from the recent events are shared and come without
// PrevKv already when the watcher does not want it.
func (w *watcher) keep(evs []*mvccpb.Event) []*mvccpb.Event {
	out := evs[:0]
	for _, ev := range evs {
		if w.filtered(ev) {
			continue
		}
		if !w.prevKV && ev.PrevKv != nil {
			ev.PrevKv = nil // only events read from history: shared ones have none
		}
		out = append(out, ev)
	}
	return out
}
