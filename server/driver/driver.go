package driver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Config configures a Driver.
type Config struct {
	// TickInterval is the wall-clock length of one raft tick (etcd's
	// --heartbeat-interval). Default 100 ms.
	TickInterval time.Duration
	// RequestTimeout bounds how long a request waits for a leader and for
	// its entry to apply. Default 7 s (etcd: 5 s plus two election
	// timeouts).
	RequestTimeout time.Duration
	// MaxRequestsPerBatch bounds the requests taken from the queue before
	// one Process call. Default 4096.
	MaxRequestsPerBatch int
	// QueueLength bounds the requests waiting for the loop; callers block
	// beyond it. Default 16384.
	QueueLength int
	// Send delivers messages to peers. Nil drops them (a one-member cluster
	// sends none).
	Send func([]*raftpb.Message)
	// OnEvents receives the keyspace changes of each Process call, in
	// revision order, on the loop goroutine; it must not block. Nil drops
	// them.
	OnEvents func([]*mvccpb.Event)
	// OnMembershipChanged is called on the loop goroutine after the member
	// list changed (node.Members); it must not block. Nil ignores it.
	OnMembershipChanged func()
	// OnSnapshotInstalled is called on the loop goroutine after the
	// keyspace was replaced by a snapshot's; it must not block.
	OnSnapshotInstalled func()
	// OnLeaderLost is called on the loop goroutine after every tick at
	// which the node reports LeaderLost (no leader for three election
	// timeouts): the streams that require a leader must end. It must not
	// block. Nil ignores it.
	OnLeaderLost func()
	Logger       *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 7 * time.Second
	}
	if c.MaxRequestsPerBatch == 0 {
		c.MaxRequestsPerBatch = 4096
	}
	if c.QueueLength == 0 {
		c.QueueLength = 16384
	}
	if c.Send == nil {
		c.Send = func([]*raftpb.Message) {}
	}
	if c.OnEvents == nil {
		c.OnEvents = func([]*mvccpb.Event) {}
	}
	if c.OnMembershipChanged == nil {
		c.OnMembershipChanged = func() {}
	}
	if c.OnSnapshotInstalled == nil {
		c.OnSnapshotInstalled = func() {}
	}
	if c.OnLeaderLost == nil {
		c.OnLeaderLost = func() {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Driver owns a node and its loop goroutine.
type Driver struct {
	cfg      Config
	node     *node.Node
	requests chan *request
	inbox    chan *raftpb.Message
	// unreachable carries peers the transport could not reach.
	unreachable chan uint64
	// snapshots carries the outcome of snapshots sent to peers.
	snapshots chan snapshotReport
	// hashWanted carries the corruption checks' hash requests to the
	// hasher goroutine, hashed carries its answers back to the loop.
	hashWanted chan node.HashRequest
	hashed     chan hashAnswer
	stopc      chan struct{}
	donec      chan struct{}
	stopOnce   sync.Once

	mu sync.Mutex
	// err is the reason the loop stopped; guarded by mu.
	err error
}

// request is one request waiting for the loop: a client request for the
// core, a function to run on the loop, or (both nil) a bare linearizable
// barrier.
type request struct {
	core     node.Request
	deadline time.Time
	// applied is set once the core reports the request applied and still
	// working (node.Output.Applied): it is no longer timed out.
	applied bool
	done    chan node.Completion // buffered: the loop never blocks on it
}

// ErrStopped is returned to requests when the member is shutting down.
var ErrStopped = rpctypes.ErrGRPCStopped

// Start runs n on a new goroutine. Stop it with Stop.
func Start(n *node.Node, cfg Config) *Driver {
	cfg.ensureDefaults()
	d := &Driver{
		cfg:         cfg,
		node:        n,
		requests:    make(chan *request, cfg.QueueLength),
		inbox:       make(chan *raftpb.Message, cfg.QueueLength),
		unreachable: make(chan uint64, 64),
		snapshots:   make(chan snapshotReport, 64),
		hashWanted:  make(chan node.HashRequest, hashRequestsMax),
		hashed:      make(chan hashAnswer, hashRequestsMax),
		stopc:       make(chan struct{}),
		donec:       make(chan struct{}),
	}
	go d.run()
	go d.hashForChecks()
	return d
}

// hashRequestsMax bounds the corruption checks' hashes waiting to be
// computed; a request that finds the queue full is dropped (the check
// goes on without this member's report).
const hashRequestsMax = 4

// hashAnswer is a hash computed for a corruption check.
type hashAnswer struct {
	req  node.HashRequest
	resp *pb.HashKVResponse
	err  error
}

// hashForChecks computes the corruption checks' hashes one at a time, off
// the loop: a hash reads the whole keyspace.
func (d *Driver) hashForChecks() {
	for {
		select {
		case req := <-d.hashWanted:
			resp, err := d.node.HashKV(&pb.HashKVRequest{Revision: req.Revision})
			select {
			case d.hashed <- hashAnswer{req: req, resp: resp, err: err}:
			case <-d.donec:
				return
			}
		case <-d.donec:
			return
		}
	}
}

// Serve carries a client request through its life in the core and
// returns etcd's response or error: a request the core can serve on this
// goroutine (a serializable read) is served here, any other goes through
// the loop; a keyspace read is then served on this goroutine.
func (d *Driver) Serve(ctx context.Context, req node.Request) (proto.Message, error) {
	c, err := d.Complete(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.Result()
}

// Complete carries a client request through the core like Serve, and
// returns its Completion unread, for a request whose result the caller
// reads in parts (a RangeStream's chunks, Completion.Stream).
func (d *Driver) Complete(ctx context.Context, req node.Request) (node.Completion, error) {
	if c, ok := d.node.ServeLocal(req); ok {
		return c, c.Err
	}
	return d.submitRequest(ctx, &request{core: req})
}

// Step delivers a message from a peer.
func (d *Driver) Step(m *raftpb.Message) {
	select {
	case d.inbox <- m:
	case <-d.stopc:
	}
}

// ReportUnreachable tells the member a peer could not be reached. It never
// blocks: a report that finds the queue full is dropped, and the next
// failure reports again.
func (d *Driver) ReportUnreachable(id uint64) {
	select {
	case d.unreachable <- id:
	default:
	}
}

type snapshotReport struct {
	id        uint64
	delivered bool
}

// ReportSnapshot tells the member whether a snapshot sent to a peer
// arrived. Unlike unreachable reports it must not be lost (raft waits for
// it before sending the peer anything else), so it blocks until the loop
// takes it or stops.
func (d *Driver) ReportSnapshot(id uint64, delivered bool) {
	select {
	case d.snapshots <- snapshotReport{id, delivered}:
	case <-d.donec:
	}
}

func (d *Driver) submitRequest(ctx context.Context, r *request) (node.Completion, error) {
	r.deadline, r.done = time.Now().Add(d.cfg.RequestTimeout), make(chan node.Completion, 1)
	select {
	case d.requests <- r:
	case <-ctx.Done():
		return node.Completion{}, contextError(ctx)
	case <-d.donec:
		return node.Completion{}, ErrStopped
	}
	select {
	case c := <-r.done:
		return c, c.Err
	case <-ctx.Done():
		return node.Completion{}, contextError(ctx)
	case <-d.donec:
		return node.Completion{}, ErrStopped
	}
}

func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return rpctypes.ErrGRPCCanceled
}

// Node returns the driven node; only its concurrency-safe methods (Store,
// Status, ID) may be called.
func (d *Driver) Node() *node.Node { return d.node }

// Done is closed when the loop has stopped.
func (d *Driver) Done() <-chan struct{} { return d.donec }

// Err is why the loop stopped: nil after Stop, the storage failure after a
// fail-stop.
func (d *Driver) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Abort stops the loop with err as the reason (Err reports it), as a
// fail-stop does; it does not wait.
func (d *Driver) Abort(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
	d.stopOnce.Do(func() { close(d.stopc) })
}

// Stop ends the loop and waits for it.
func (d *Driver) Stop() {
	d.stopOnce.Do(func() { close(d.stopc) })
	<-d.donec
}

func (d *Driver) fail(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	d.cfg.Logger.Error("member stopped", "error", err)
}

func (d *Driver) run() {
	defer close(d.donec)
	l := newLoop(d)
	ticker := time.NewTicker(d.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			l.tick(time.Now())
		case r := <-d.requests:
			l.start(r)
		case m := <-d.inbox:
			l.step(m)
		case id := <-d.unreachable:
			l.n.ReportUnreachable(id)
		case r := <-d.snapshots:
			l.n.ReportSnapshot(r.id, r.delivered)
		case a := <-d.hashed:
			l.n.ReportHash(a.req, a.resp, a.err)
		case <-d.stopc:
			l.abandon(ErrStopped)
			return
		}
		l.drain()
		if err := l.process(); err != nil {
			d.fail(err)
			l.abandon(ErrStopped)
			return
		}
	}
}

// loop is the state owned by the loop goroutine.
type loop struct {
	d       *Driver
	n       *node.Node
	waiting map[uint64]*request
}

func newLoop(d *Driver) *loop {
	return &loop{d: d, n: d.node, waiting: map[uint64]*request{}}
}

func (l *loop) start(r *request) {
	l.waiting[l.n.Start(r.core)] = r
}

// drain takes every request and peer message already queued, up to the
// batch bound, so they share the next Process call and its one fsync. (A
// follower that processed each append message on its own would fsync once
// per message.)
func (l *loop) drain() {
	for range l.d.cfg.MaxRequestsPerBatch {
		select {
		case r := <-l.d.requests:
			l.start(r)
		case m := <-l.d.inbox:
			l.step(m)
		default:
			return
		}
	}
}

func (l *loop) step(m *raftpb.Message) {
	if err := l.n.Step(m); err != nil {
		l.d.cfg.Logger.Warn("dropped peer message", "type", m.GetType().String(), "from", m.GetFrom(), "error", err)
	}
}

func (l *loop) tick(now time.Time) {
	l.n.Tick()
	if l.n.LeaderLost() {
		l.d.cfg.OnLeaderLost()
	}
	l.expire(now)
}

// expire fails requests whose entry never applied (lost with a leader
// change) once their deadline has passed.
func (l *loop) expire(now time.Time) {
	for id, r := range l.waiting {
		if !r.applied && now.After(r.deadline) {
			r.done <- node.Completion{ID: id, Err: rpctypes.ErrGRPCTimeout}
			delete(l.waiting, id)
		}
	}
}

func (l *loop) process() error {
	for l.n.HasReady() {
		out, err := l.n.Process()
		if err != nil {
			return err
		}
		l.d.cfg.Send(out.Messages)
		if out.SnapshotInstalled {
			l.d.cfg.OnSnapshotInstalled()
		}
		if len(out.Events) > 0 {
			l.d.cfg.OnEvents(out.Events)
		}
		if out.MembershipChanged {
			l.d.cfg.OnMembershipChanged()
		}
		for _, id := range out.Applied {
			if r, ok := l.waiting[id]; ok {
				r.applied = true
			}
		}
		l.complete(out.Done)
		l.wantHashes(out.HashRequests)
	}
	return nil
}

func (l *loop) wantHashes(reqs []node.HashRequest) {
	for _, r := range reqs {
		select {
		case l.d.hashWanted <- r:
		default:
			l.d.cfg.Logger.Warn("corruption check: hash request dropped, the hasher is busy", "revision", r.Revision)
		}
	}
}

func (l *loop) complete(done []node.Completion) {
	for _, c := range done {
		if r, ok := l.waiting[c.ID]; ok {
			r.done <- c
			delete(l.waiting, c.ID)
		}
	}
}

func (l *loop) abandon(err error) {
	for id, r := range l.waiting {
		r.done <- node.Completion{ID: id, Err: err}
	}
	l.waiting = nil
}
