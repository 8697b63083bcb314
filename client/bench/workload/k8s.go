package workload

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/hist"
	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
)

// k8sKind is one operation of the kubernetes-like mix.
type k8sKind int

const (
	k8sGet k8sKind = iota
	k8sUpdate
	k8sListNamespace
	k8sListAll
	k8sKinds
)

var k8sKindNames = [k8sKinds]string{"get", "update", "list-namespace", "list-all"}

// k8sMixPercent is the share of each kind, in percent, summing to 100: mostly
// reads and optimistic updates, as an API server with a warm watch cache sends.
var k8sMixPercent = [k8sKinds]int{k8sGet: 50, k8sUpdate: 35, k8sListNamespace: 14, k8sListAll: 1}

// pickKind maps a number in [0,100) to a kind by k8sMixPercent.
func pickKind(n int) k8sKind {
	for k := k8sKind(0); k < k8sKinds; k++ {
		if n < k8sMixPercent[k] {
			return k
		}
		n -= k8sMixPercent[k]
	}
	panic(fmt.Sprintf("workload: mix draw %d outside [0,100)", n))
}

// k8sWorkload is the mix over KeyCount pods in Namespaces namespaces under
// Prefix+"pods/", with Watchers watching the whole prefix.
type k8sWorkload struct {
	o       *Options
	revs    []int64
	ws      *watchers
	start   time.Time
	updates atomic.Uint64 // successful CAS puts: the events each watcher must see
	workers []*k8sWorker
}

type k8sWorker struct {
	hists     [k8sKinds]hist.Histogram
	conflicts uint64
}

func (w *k8sWorkload) root() string { return w.o.Prefix + "pods/" }

func (w *k8sWorkload) namespace(ns int) string { return fmt.Sprintf("%sns-%04d/", w.root(), ns) }

func (w *k8sWorkload) key(i int) string {
	return fmt.Sprintf("%spod-%08d", w.namespace(i%w.o.Namespaces), i)
}

func (w *k8sWorkload) setup(ctx context.Context, clis []*clientv3.Client) error {
	w.o.logf("%s: preloading %d objects, opening %d watchers", w.o.Load.Name, w.o.KeyCount, w.o.Watchers)
	revs, err := Preload(ctx, clis, w.o.KeyCount, w.key, keys.Value(w.o.ValueSize))
	if err != nil {
		return err
	}
	w.revs = revs
	w.workers = make([]*k8sWorker, w.o.Load.Clients)
	ws, err := startWatchers(ctx, clis, w.o.Watchers, w.root(), true, time.Now())
	w.ws = ws
	w.start = time.Now()
	return err
}

func (w *k8sWorkload) op(i int, cli *clientv3.Client) load.Op {
	gen := keys.NewGenerator(keys.Space{Size: 8, Count: w.o.KeyCount}, keys.Random, i, w.o.Load.Clients, w.o.Seed)
	cache := &casCache{initial: w.revs, learnt: map[int]int64{}}
	pad := keys.Value(w.o.ValueSize)
	st := &k8sWorker{}
	w.workers[i] = st
	return func(ctx context.Context) error {
		kind := pickKind(gen.Intn(100))
		begin := time.Now()
		err := w.do(ctx, cli, kind, gen, cache, pad, st)
		if err == nil {
			st.hists[kind].Record(time.Since(begin))
		}
		return err
	}
}

func (w *k8sWorkload) do(ctx context.Context, cli *clientv3.Client, kind k8sKind, gen *keys.Generator, cache *casCache, pad []byte, st *k8sWorker) error {
	switch kind {
	case k8sGet:
		_, err := cli.Get(ctx, w.key(gen.Next()), readOpts(w.o)...)
		return err
	case k8sUpdate:
		i := gen.Next()
		ok, err := casUpdate(ctx, cli, cache, i, w.key(i), stampValue(w.ws.base, pad))
		if err != nil {
			return err
		}
		if ok {
			w.updates.Add(1)
		} else {
			st.conflicts++
		}
		return nil
	case k8sListNamespace:
		return w.list(ctx, cli, w.namespace(gen.Intn(w.o.Namespaces)))
	default:
		return w.list(ctx, cli, w.root())
	}
}

// list reads every key under prefix in pages of Limit, as the API server's
// paginated list does: the first page fixes the revision, each next page
// continues after the last key at that revision.
func (w *k8sWorkload) list(ctx context.Context, cli *clientv3.Client, prefix string) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	var rev int64
	for page := 0; ; page++ {
		opts := readOpts(w.o, clientv3.WithRange(end), clientv3.WithLimit(int64(w.o.Limit)))
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("list %s page %d: %w", prefix, page, err)
		}
		rev = resp.Header.Revision
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (w *k8sWorkload) finish(_ context.Context, res *load.Result) {
	var conflicts uint64
	for k := k8sKind(0); k < k8sKinds; k++ {
		var h hist.Histogram
		for _, st := range w.workers {
			if st != nil {
				h.Merge(&st.hists[k])
			}
		}
		res.Subs = append(res.Subs, load.Sub{Name: k8sKindNames[k], Rate: float64(h.Count()) / res.ElapsedS, Latency: load.LatencyOf(&h)})
	}
	for _, st := range w.workers {
		if st != nil {
			conflicts += st.conflicts
		}
	}
	w.ws.drain(res, w.updates.Load(), w.start, w.o.DrainTimeout)
	// The mix's headline is its operations, not the watch events.
	res.HeadlineUnit, res.HeadlineRate, res.HeadlineLatency = "ops", res.Throughput, res.Latency
	res.Counters["cas_conflicts"] = float64(conflicts)
	res.Counters["updates"] = float64(w.updates.Load())
}

func (w *k8sWorkload) close() {
	if w.ws != nil {
		w.ws.stop()
	}
}
