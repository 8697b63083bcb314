package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// watchRestartsMax bounds how often one watcher resumes.
	watchRestartsMax = 10_000
	// watchRetryPause is the pause before a watcher resumes.
	watchRetryPause = 100 * time.Millisecond
	// watchEventsMax bounds the events one watcher keeps; beyond it the
	// watcher stops and says so.
	watchEventsMax = 4_000_000
)

// Watcher watches every workload key with prev_kv from a start revision
// through one endpoint, and resumes after every error or cancellation from
// the revision after the last one it received, as a careful client does.
// WithRequireLeader makes a member that loses its leader end the watch, so
// faults exercise resumption.
type Watcher struct {
	endpoint      string
	startRevision int64

	mu struct {
		sync.Mutex
		received []lin.Event
		// last is the revision of the last event received.
		last     int64
		restarts int
		stopped  string
	}
}

// NewWatcher returns a watcher of endpoint from startRevision.
func NewWatcher(endpoint string, startRevision int64) *Watcher {
	return &Watcher{endpoint: endpoint, startRevision: startRevision}
}

// Endpoint is the URL the watcher watches through.
func (w *Watcher) Endpoint() string { return w.endpoint }

// StartRevision is the watch's first revision.
func (w *Watcher) StartRevision() int64 { return w.startRevision }

// Run watches until ctx is done or a bound is reached.
func (w *Watcher) Run(ctx context.Context) error {
	cli, err := NewClient([]string{w.endpoint})
	if err != nil {
		return err
	}
	defer cli.Close()
	for restarts := 0; ctx.Err() == nil; restarts++ {
		if restarts >= watchRestartsMax {
			w.stop(fmt.Sprintf("resumed %d times", restarts))
			return nil
		}
		if !w.watchOnce(ctx, cli) {
			return nil
		}
		w.mu.Lock()
		w.mu.restarts++
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(watchRetryPause):
		}
	}
	return nil
}

// watchOnce runs one watch stream from the revision after the last one
// received, until it fails; it reports whether to resume.
func (w *Watcher) watchOnce(ctx context.Context, cli *clientv3.Client) bool {
	streamCtx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := w.LastRevision() + 1
	if from < w.startRevision {
		from = w.startRevision
	}
	for resp := range cli.Watch(streamCtx, KeyPrefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(from)) {
		if resp.Err() != nil || resp.Canceled {
			return true
		}
		if !w.add(resp.Events) {
			return false
		}
	}
	return true
}

func (w *Watcher) add(events []*clientv3.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.mu.received)+len(events) > watchEventsMax {
		w.mu.stopped = fmt.Sprintf("more than %d events", watchEventsMax)
		return false
	}
	for _, e := range events {
		w.mu.received = append(w.mu.received, event(e))
		w.mu.last = e.Kv.ModRevision
	}
	return true
}

func (w *Watcher) stop(why string) {
	w.mu.Lock()
	w.mu.stopped = why
	w.mu.Unlock()
}

// LastRevision is the revision of the last event received (0 if none).
func (w *Watcher) LastRevision() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.last
}

// Received returns the events received so far, in order.
func (w *Watcher) Received() []lin.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]lin.Event(nil), w.mu.received...)
}

// Restarts is how often the watcher resumed.
func (w *Watcher) Restarts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.restarts
}

// Stopped says why the watcher gave up early, or "".
func (w *Watcher) Stopped() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.stopped
}

// event converts a watch event.
func event(e *clientv3.Event) lin.Event {
	out := lin.Event{Revision: e.Kv.ModRevision, Key: string(e.Kv.Key)}
	if e.Type == mvccpb.DELETE {
		out.Type = lin.EventDelete
	} else {
		out.Type, out.Value = lin.EventPut, string(e.Kv.Value)
	}
	if e.PrevKv != nil {
		prev := kv(e.PrevKv)
		out.PrevKV = &prev
	}
	return out
}
