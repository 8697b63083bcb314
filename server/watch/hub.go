package watch

import (
	"log/slog"
	"sync"
	"time"

	core "github.com/cairn-db/cairn/node/watch"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Names of the core hub, so that callers need one import.
type (
	// Config configures the core hub; see node/watch.Config.
	Config = core.Config
	// Store is the history catch-ups read; see node/watch.Store.
	Store = core.Store
	// Response is one response for a stream to send.
	Response = core.Response
)

// InvalidWatchID is the watch_id of responses that belong to no watcher.
const InvalidWatchID = core.InvalidWatchID

// NodeStore adapts a node's StoreView to the hub's Store.
var NodeStore = core.NodeStore

// Hub is a core hub with its lock and its catch-up and clock goroutine.
type Hub struct {
	logger *slog.Logger
	// tickInterval is how often the core's clock advances.
	tickInterval time.Duration
	// start is the origin of the clock the core is given.
	start time.Time

	mu struct {
		sync.Mutex
		hub *core.Hub
	}

	pokec chan struct{} // wakes the goroutine for a catch-up; capacity 1
	stopc chan struct{}
	donec chan struct{}
	once  sync.Once
}

// New returns a hub whose watchers start at store's current revision, and
// starts its goroutine. Feed it with Notify and Resync from the driver's
// loop; stop it with Close. A nil logger logs to slog's default.
func New(store Store, cfg Config, logger *slog.Logger) *Hub {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Hub{logger: logger, start: time.Now(), pokec: make(chan struct{}, 1), stopc: make(chan struct{}), donec: make(chan struct{})}
	h.mu.hub = core.New(store, cfg)
	cfg = h.mu.hub.Config()
	h.tickInterval = min(cfg.ResyncInterval, cfg.ProgressNotifyInterval)
	h.mu.hub.Tick(0)
	go h.run()
	return h
}

// Close stops the goroutine. Streams get no more catch-ups or progress.
func (h *Hub) Close() {
	h.once.Do(func() { close(h.stopc) })
	<-h.donec
}

// Rev is the revision the hub has fanned out.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.hub.Rev()
}

// RecentBytes is what the hub's window of recent events holds.
func (h *Hub) RecentBytes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.hub.RecentBytes()
}

// Notify hands the core the events one Process applied: the driver's
// OnEvents callback. It never blocks on a reader.
func (h *Hub) Notify(evs []*mvccpb.Event) {
	h.locked(func(c *core.Hub) { c.Notify(evs) })
}

// Resync tells the core the store jumped ahead without events (a snapshot
// install): the driver's OnSnapshotInstalled callback.
func (h *Hub) Resync() {
	h.locked(func(c *core.Hub) { c.Resync() })
}

// locked runs f on the core under the lock, then wakes the goroutine if f
// left a catch-up due.
func (h *Hub) locked(f func(*core.Hub)) {
	h.mu.Lock()
	f(h.mu.hub)
	due := h.mu.hub.WantsCatchUp()
	h.mu.Unlock()
	if due {
		h.poke()
	}
}

func (h *Hub) poke() {
	select {
	case h.pokec <- struct{}{}:
	default:
	}
}

// run is the hub's goroutine: catch-up steps when poked, the clock on a
// ticker.
func (h *Hub) run() {
	defer close(h.donec)
	ticker := time.NewTicker(h.tickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-h.pokec:
		case <-ticker.C:
			now := time.Since(h.start)
			h.locked(func(c *core.Hub) { c.Tick(now) })
			continue
		case <-h.stopc:
			return
		}
		for h.catchUpStep() {
			select {
			case <-h.stopc:
				return
			default:
			}
		}
	}
}

// catchUpStep runs one core catch-up step, reading history without the
// lock, and reports whether another one has work.
func (h *Hub) catchUpStep() bool {
	h.mu.Lock()
	round := h.mu.hub.StartCatchUp()
	h.mu.Unlock()
	if round == nil {
		return false
	}
	round.Read()
	h.mu.Lock()
	more, err := h.mu.hub.FinishCatchUp(round)
	more = more || h.mu.hub.WantsCatchUp()
	h.mu.Unlock()
	if err != nil {
		h.logger.Error("watch catch-up failed; retrying", "error", err)
	}
	return more
}

// Stream is one client's watch stream on the hub: a core stream and the
// channel that tells its sender responses are queued.
type Stream struct {
	hub   *Hub
	ready chan struct{} // signalled when the queue becomes non-empty; capacity 1
	// core is guarded by hub.mu.
	core *core.Stream
}

// NewStream opens a stream.
func (h *Hub) NewStream() *Stream {
	s := &Stream{hub: h, ready: make(chan struct{}, 1)}
	h.locked(func(c *core.Hub) {
		s.core = c.NewStream(func() {
			select {
			case s.ready <- struct{}{}:
			default:
			}
		})
	})
	return s
}

// Ready is signalled when responses are queued; then call Take.
func (s *Stream) Ready() <-chan struct{} { return s.ready }

// Take returns every queued response, oldest first, and empties the queue.
// Call it again only once every response it returned was sent, and Pause
// has passed: taking is the acknowledgement the core's slow-watcher policy
// counts on.
func (s *Stream) Take() []Response {
	var rs []Response
	s.hub.locked(func(*core.Hub) { rs = s.core.Take() })
	return rs
}

// Pause is how long to wait, once what the last Take returned is sent,
// before taking again (the core's Stream.Pause).
func (s *Stream) Pause() time.Duration {
	var d time.Duration
	s.hub.locked(func(*core.Hub) { d = s.core.Pause() })
	return d
}

// Create handles a WatchCreateRequest as etcd does and queues its answer.
func (s *Stream) Create(req *pb.WatchCreateRequest) {
	s.hub.locked(func(*core.Hub) { s.core.Create(req) })
}

// Refuse queues the answer to a create request the member refused.
func (s *Stream) Refuse(reason error) {
	s.hub.locked(func(*core.Hub) { s.core.Refuse(reason) })
}

// Cancel cancels a watcher and queues the canceled response.
func (s *Stream) Cancel(id int64) {
	s.hub.locked(func(*core.Hub) { s.core.Cancel(id) })
}

// RequestProgress queues a progress notification once every watcher of
// the stream is synced.
func (s *Stream) RequestProgress() {
	s.hub.locked(func(*core.Hub) { s.core.RequestProgress() })
}

// Close cancels every watcher of the stream and drops what is queued.
func (s *Stream) Close() {
	s.hub.locked(func(*core.Hub) { s.core.Close() })
}
