package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/hist"
	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
)

// watchers is a set of watch goroutines that count the events they get and
// record each event's age, read from the stamp the put wrote in the value.
type watchers struct {
	base    time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	members []*watcher
}

// watcher is one watch. events is read while it runs; hist and last only
// after wg.Wait.
type watcher struct {
	events   atomic.Uint64
	hist     hist.Histogram
	last     time.Time
	canceled string
}

// startWatchers opens n watches of key (a prefix when prefix is true) spread
// over clis, and returns once the server has confirmed every one of them.
func startWatchers(ctx context.Context, clis []*clientv3.Client, n int, key string, prefix bool, base time.Time) (*watchers, error) {
	wctx, cancel := context.WithCancel(ctx)
	ws := &watchers{base: base, cancel: cancel}
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	for i := 0; i < n; i++ {
		ch := clis[i%len(clis)].Watch(wctx, key, opts...)
		select {
		case resp, ok := <-ch:
			if !ok || !resp.Created {
				ws.stop()
				return nil, fmt.Errorf("watch %d of %q not created: %v", i, key, resp.Err())
			}
		case <-time.After(10 * time.Second):
			ws.stop()
			return nil, fmt.Errorf("watch %d of %q: no created response in 10 s", i, key)
		}
		w := &watcher{}
		ws.members = append(ws.members, w)
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			w.run(ch, base)
		}()
	}
	return ws, nil
}

func (w *watcher) run(ch clientv3.WatchChan, base time.Time) {
	for resp := range ch {
		if resp.Canceled {
			w.canceled = fmt.Sprint(resp.Err())
			return
		}
		for _, ev := range resp.Events {
			if age, ok := stampAge(base, ev.Kv.Value); ok {
				w.hist.Record(age)
			}
			w.events.Add(1)
		}
		if len(resp.Events) > 0 {
			w.last = time.Now()
		}
	}
}

// drain waits until every watcher has seen want events or timeout passes,
// then stops them; it adds the events' figures to res and counts what is
// missing as errors. start is when the puts began.
func (ws *watchers) drain(res *load.Result, want uint64, start time.Time, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !ws.allSeen(want) {
		time.Sleep(10 * time.Millisecond)
	}
	ws.stop()
	var h hist.Histogram
	var total uint64
	last := start
	for i, w := range ws.members {
		h.Merge(&w.hist)
		got := w.events.Load()
		total += got
		if got < want {
			res.AddError(fmt.Sprintf("watch: watcher got %d of %d events", got, want), 1)
		}
		if w.canceled != "" {
			res.AddError(fmt.Sprintf("watch %d canceled by the server: %s", i, w.canceled), 1)
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	rate := 0.0
	if d := last.Sub(start).Seconds(); d > 0 {
		rate = float64(total) / d
	}
	res.Subs = append(res.Subs, load.Sub{Name: "watch-events", Rate: rate, Latency: load.LatencyOf(&h)})
	if res.Counters == nil {
		res.Counters = map[string]float64{}
	}
	res.Counters["watchers"] = float64(len(ws.members))
	res.Counters["events"] = float64(total)
	res.HeadlineUnit, res.HeadlineRate, res.HeadlineLatency = "events", rate, load.LatencyOf(&h)
}

func (ws *watchers) allSeen(want uint64) bool {
	for _, w := range ws.members {
		if w.events.Load() < want {
			return false
		}
	}
	return true
}

func (ws *watchers) stop() {
	ws.cancel()
	ws.wg.Wait()
}

// watchWorkload: Watchers watch one key; Clients put to it.
type watchWorkload struct {
	o     *Options
	ws    *watchers
	start time.Time
}

func (w *watchWorkload) key() string { return w.o.Prefix + "watched" }

func (w *watchWorkload) setup(ctx context.Context, clis []*clientv3.Client) error {
	w.o.logf("%s: opening %d watchers", w.o.Load.Name, w.o.Watchers)
	ws, err := startWatchers(ctx, clis, w.o.Watchers, w.key(), false, time.Now())
	w.ws = ws
	w.start = time.Now()
	return err
}

func (w *watchWorkload) op(_ int, cli *clientv3.Client) load.Op {
	pad := keys.Value(w.o.ValueSize)
	key := w.key()
	return func(ctx context.Context) error {
		_, err := cli.Put(ctx, key, stampValue(w.ws.base, pad))
		return err
	}
}

func (w *watchWorkload) finish(_ context.Context, res *load.Result) {
	// Every put that succeeded is one event for every watcher. A put that
	// failed may still have been applied; then the run is invalid anyway.
	w.ws.drain(res, res.Ops, w.start, w.o.DrainTimeout)
}

func (w *watchWorkload) close() {
	if w.ws != nil {
		w.ws.stop()
	}
}
