package watch

import (
	"bytes"
	"errors"

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
}

// Stream is one client's watch stream: its watchers and the responses
// queued for it, in the order they must be sent. Its methods are safe from
// any goroutine; typically one reads requests and calls Create, Cancel and
// RequestProgress, and one waits on Ready and sends what Take returns.
type Stream struct {
	hub   *Hub
	ready chan struct{} // signalled when the queue becomes non-empty; capacity 1

	// state is guarded by hub.mu.
	state struct {
		watchers map[int64]*watcher
		// nextID is the next watch ID to try for a create without one.
		nextID int64
		queue  []Response
		closed bool
	}
}

// NewStream opens a stream.
func (h *Hub) NewStream() *Stream {
	s := &Stream{hub: h, ready: make(chan struct{}, 1)}
	s.state.watchers = map[int64]*watcher{}
	h.mu.Lock()
	h.mu.streams[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Ready is signalled when responses are queued; then call Take.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Take returns every queued response, oldest first, and empties the queue.
func (s *Stream) Take() []Response {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	q := s.state.queue
	s.state.queue = nil
	for _, r := range q {
		if r.w == nil {
			continue
		}
		r.w.pending -= len(r.Events)
		r.w.pendingBytes -= r.bytes
		if r.w.pending == 0 && !r.w.synced && !r.w.gone {
			h.poke()
		}
	}
	return q
}

// pushLocked queues a response. REQUIRES: hub.mu is held.
func (s *Stream) pushLocked(r Response) {
	if s.state.closed {
		return
	}
	s.state.queue = append(s.state.queue, r)
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// pushProgressLocked queues a stream-wide progress notification.
// REQUIRES: hub.mu is held.
func (s *Stream) pushProgressLocked(rev int64) {
	s.pushLocked(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: InvalidWatchID}})
}

// Create handles a WatchCreateRequest as etcd does and queues its answer:
// created (with the watch ID) or created and canceled (watch ID -1, with
// cancel_reason). The request is not kept.
func (s *Stream) Create(req *pb.WatchCreateRequest) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	rev := h.store.Rev()
	w, err := s.newWatcherLocked(req, rev)
	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: InvalidWatchID, Created: true}
	if err != nil {
		resp.Canceled, resp.CancelReason = true, err.Error()
		s.pushLocked(Response{WatchResponse: resp})
		return
	}
	resp.WatchId = w.id
	// The created response goes first: events follow it in the queue.
	s.pushLocked(Response{WatchResponse: resp})
	s.state.watchers[w.id] = w
	h.addLocked(w)
}

// newWatcherLocked validates a create request and builds its watcher,
// with etcd's conventions: an empty key is "\x00", range_end "\x00" means
// every key from key, start revision 0 means after rev.
// REQUIRES: hub.mu is held.
func (s *Stream) newWatcherLocked(req *pb.WatchCreateRequest, rev int64) (*watcher, error) {
	if s.state.closed {
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
	id := req.GetWatchId()
	if id == 0 {
		for s.state.watchers[s.state.nextID] != nil {
			s.state.nextID++
		}
		id = s.state.nextID
		s.state.nextID++
	} else if s.state.watchers[id] != nil {
		return nil, ErrWatcherDuplicateID
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

// Cancel cancels a watcher and queues the canceled response; events queued
// for it and not yet taken are dropped. An unknown ID gets no answer, as in
// etcd.
func (s *Stream) Cancel(id int64) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.state.watchers[id]
	if w == nil || s.state.closed {
		return
	}
	h.removeLocked(w)
	delete(s.state.watchers, id)
	kept := s.state.queue[:0]
	for _, r := range s.state.queue {
		if r.w != w {
			kept = append(kept, r)
		}
	}
	clear(s.state.queue[len(kept):])
	s.state.queue = kept
	w.pending, w.pendingBytes = 0, 0
	s.pushLocked(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.store.Rev()}, WatchId: id, Canceled: true}})
}

// RequestProgress queues a progress notification (watch ID -1) at the
// hub's revision as soon as every watcher of the stream is synced: at once
// if they are, later if one is catching up. A stream without watchers gets
// none, as in etcd.
func (s *Stream) RequestProgress() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.state.closed || len(s.state.watchers) == 0 {
		return
	}
	if h.progressReadyLocked(s) {
		s.pushProgressLocked(h.mu.rev)
		return
	}
	h.mu.progressWaiting[s] = struct{}{}
}

// Close cancels every watcher of the stream and drops what is queued.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range s.state.watchers {
		h.removeLocked(w)
	}
	s.state.closed = true
	s.state.watchers = nil
	s.state.queue = nil
	delete(h.mu.streams, s)
	delete(h.mu.progressWaiting, s)
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

	// Guarded by hub.mu.
	//
	// minRev is the next revision the watcher needs: every matching
	// event below it has been queued, none at or above it.
	minRev int64
	// synced is set while the watcher is in the fan-out sets; otherwise,
	// unless gone, it is in the catch-up set.
	synced bool
	gone   bool
	// compacted is set when it was canceled for a compacted start.
	compacted bool
	// pending counts its events queued and not yet taken, pendingBytes
	// their eventBytes. Invariant: 0 <= pending, 0 <= pendingBytes, and
	// pendingBytes == 0 when pending == 0.
	pending      int
	pendingBytes int
	// hadEvents is set when events were queued since the last progress
	// tick.
	hadEvents bool
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
