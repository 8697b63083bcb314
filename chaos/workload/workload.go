package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// KeyPrefix is the prefix of every key the workload touches.
const KeyPrefix = "chaos/"

const (
	// dialTimeout bounds a client's first connection.
	dialTimeout = 2 * time.Second
	// rangeLimit is the limit of the workload's prefix ranges.
	rangeLimit = 3
	// opsMax bounds the operations one run issues, whatever its length.
	opsMax = 2_000_000
	// idsPerClient spaces the client IDs of different workers, so a worker
	// can take a fresh ID after each unknown outcome without colliding.
	idsPerClient = 1 << 20
)

// Config describes the traffic.
type Config struct {
	// Endpoints are the proxied client URLs of every member.
	Endpoints []string
	// Clients is the number of concurrent clients; the first
	// len(Endpoints) of them are pinned to one member each when Pinned.
	Clients int
	Pinned  bool
	// OpsPerSecond is the rate of all clients together.
	OpsPerSecond int
	// Keys is the number of distinct keys.
	Keys int
	// RequestTimeout bounds every request.
	RequestTimeout time.Duration
	// Seed seeds each client's choice of operations.
	Seed uint64
}

// AckedWrite is a change an acknowledged operation says it made.
type AckedWrite struct {
	Revision int64
	Key      string
	// Value is the value put, or "" with Deleted for a delete.
	Value   string
	Deleted bool
}

// SerializableRead is one serializable get and its answer.
type SerializableRead struct {
	Request  lin.Request
	Response lin.Response
}

// Stats counts what the workload did.
type Stats struct {
	Ops, Acked, Unknown int64
}

// Workload is a running traffic generator.
type Workload struct {
	cfg      Config
	recorder *lin.Recorder
	ops      atomic.Int64
	acked    atomic.Int64
	unknown  atomic.Int64

	mu struct {
		sync.Mutex
		writes       []AckedWrite
		serializable []SerializableRead
	}
}

// New returns a workload recording into recorder.
func New(cfg Config, recorder *lin.Recorder) *Workload {
	return &Workload{cfg: cfg, recorder: recorder}
}

// Run issues operations until ctx is done and every client has finished its
// last request (at most RequestTimeout later).
func (w *Workload) Run(ctx context.Context) error {
	var clients []*clientv3.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range w.cfg.Clients {
		endpoints := w.cfg.Endpoints
		if w.cfg.Pinned && i < len(w.cfg.Endpoints) {
			endpoints = w.cfg.Endpoints[i : i+1]
		}
		c, err := NewClient(endpoints)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	interval := time.Duration(w.cfg.Clients) * time.Second / time.Duration(max(w.cfg.OpsPerSecond, 1))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := &worker{w: w, cli: c, base: (i + 1) * idsPerClient, rng: rand.New(rand.NewPCG(w.cfg.Seed, uint64(i)))}
			worker.clientID = worker.base
			worker.run(ctx, interval)
		}()
	}
	wg.Wait()
	return nil
}

// NewClient returns an official client of endpoints with short timeouts and
// no logging.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("client of %v: %w", endpoints, err)
	}
	return c, nil
}

// Stats returns the counts so far.
func (w *Workload) Stats() Stats {
	return Stats{Ops: w.ops.Load(), Acked: w.acked.Load(), Unknown: w.unknown.Load()}
}

// AckedWrites returns every acknowledged change, in no particular order.
func (w *Workload) AckedWrites() []AckedWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]AckedWrite(nil), w.mu.writes...)
}

// SerializableReads returns every answered serializable read.
func (w *Workload) SerializableReads() []SerializableRead {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]SerializableRead(nil), w.mu.serializable...)
}

// Key returns the name of workload key i.
func Key(i int) string { return fmt.Sprintf("%sk%d", KeyPrefix, i) }

// worker is one client's loop. clientID changes after every unknown outcome.
type worker struct {
	w        *Workload
	cli      *clientv3.Client
	base     int
	clientID int
	seq      int
	rng      *rand.Rand
}

func (k *worker) run(ctx context.Context, interval time.Duration) {
	next := time.Now()
	for ctx.Err() == nil && k.w.ops.Load() < opsMax {
		k.step(ctx)
		next = next.Add(interval)
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		} else {
			next = time.Now()
		}
	}
}

// step issues one operation chosen by the mix.
func (k *worker) step(ctx context.Context) {
	key := Key(k.rng.IntN(k.w.cfg.Keys))
	switch p := k.rng.IntN(100); {
	case p < 35:
		k.seq++
		k.do(ctx, lin.Put(key, fmt.Sprintf("v%d.%d", k.base/idsPerClient, k.seq)))
	case p < 60:
		k.do(ctx, lin.Get(key))
	case p < 65:
		k.do(ctx, lin.Prefix(KeyPrefix, rangeLimit))
	case p < 70:
		k.do(ctx, lin.Delete(key))
	case p < 90:
		k.compareAndSwap(ctx, key)
	default:
		k.serializableGet(ctx, key)
	}
}

// compareAndSwap reads key, then writes it only if nobody wrote it since,
// as Kubernetes' optimistic concurrency does.
func (k *worker) compareAndSwap(ctx context.Context, key string) {
	read, ok := k.do(ctx, lin.Get(key))
	if !ok {
		return
	}
	k.seq++
	value := fmt.Sprintf("v%d.%d", k.base/idsPerClient, k.seq)
	k.do(ctx, lin.Txn(
		[]lin.Compare{{Key: key, Target: lin.CompareModRevision, Result: lin.CompareEqual, ModRevision: read.KV.ModRevision}},
		[]lin.Request{lin.Put(key, value)},
		[]lin.Request{lin.Get(key)},
	))
}

// do sends req, records it, and returns the response and whether it was
// acknowledged.
func (k *worker) do(ctx context.Context, req lin.Request) (lin.Response, bool) {
	if ctx.Err() != nil {
		return lin.Response{}, false
	}
	k.w.ops.Add(1)
	id := k.w.recorder.Invoke(k.clientID, req)
	reqCtx, cancel := context.WithTimeout(ctx, k.w.cfg.RequestTimeout)
	resp, err := Send(reqCtx, k.cli, req)
	cancel()
	if err != nil {
		k.w.recorder.Unknown(id)
		k.w.unknown.Add(1)
		k.clientID++
		return lin.Response{}, false
	}
	k.w.recorder.Return(id, resp)
	k.w.acked.Add(1)
	k.w.noteWrites(req, resp)
	return resp, true
}

func (k *worker) serializableGet(ctx context.Context, key string) {
	reqCtx, cancel := context.WithTimeout(ctx, k.w.cfg.RequestTimeout)
	defer cancel()
	k.w.ops.Add(1)
	got, err := k.cli.Get(reqCtx, key, clientv3.WithSerializable())
	if err != nil {
		return
	}
	req := lin.Get(key)
	resp := getResponse(got)
	k.w.mu.Lock()
	k.w.mu.serializable = append(k.w.mu.serializable, SerializableRead{Request: req, Response: resp})
	k.w.mu.Unlock()
}

// noteWrites keeps the changes an acknowledged response claims.
func (w *Workload) noteWrites(req lin.Request, resp lin.Response) {
	var writes []AckedWrite
	switch req.Kind {
	case lin.OpPut:
		writes = append(writes, AckedWrite{Revision: resp.HeaderRevision, Key: req.Key, Value: req.Value})
	case lin.OpDelete:
		if resp.Deleted > 0 {
			writes = append(writes, AckedWrite{Revision: resp.HeaderRevision, Key: req.Key, Deleted: true})
		}
	case lin.OpTxn:
		if resp.Succeeded {
			for _, op := range req.Then {
				if op.Kind == lin.OpPut {
					writes = append(writes, AckedWrite{Revision: resp.HeaderRevision, Key: op.Key, Value: op.Value})
				}
			}
		}
	}
	if len(writes) == 0 {
		return
	}
	w.mu.Lock()
	w.mu.writes = append(w.mu.writes, writes...)
	w.mu.Unlock()
}

// Probe puts one value through cli as a recorded operation of client
// clientID (the harness's liveness probes must be recorded: the model wants
// the workload to be the store's only writer). It reports whether the put
// was acknowledged.
func (w *Workload) Probe(ctx context.Context, cli *clientv3.Client, clientID int, value string) bool {
	req := lin.Put(KeyPrefix+"probe", value)
	w.ops.Add(1)
	id := w.recorder.Invoke(clientID, req)
	resp, err := Send(ctx, cli, req)
	if err != nil {
		w.recorder.Unknown(id)
		w.unknown.Add(1)
		return false
	}
	w.recorder.Return(id, resp)
	w.acked.Add(1)
	w.noteWrites(req, resp)
	return true
}

// kv converts an etcd KeyValue.
func kv(in *mvccpb.KeyValue) lin.KeyValue {
	return lin.KeyValue{Key: string(in.Key), Value: string(in.Value), CreateRevision: in.CreateRevision,
		ModRevision: in.ModRevision, Version: in.Version}
}
