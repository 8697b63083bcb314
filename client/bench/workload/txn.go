package workload

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
)

// txnWorkload is Kubernetes' optimistic update: each operation is one CAS txn
// on a random preloaded key. A lost race is not an error; it is counted as a
// conflict, and the Else branch's read refreshes the worker's cache.
type txnWorkload struct {
	o         *Options
	revs      []int64
	conflicts []uint64 // per worker; read after the load
}

func (w *txnWorkload) setup(ctx context.Context, clis []*clientv3.Client) error {
	w.o.logf("%s: preloading %d keys", w.o.Load.Name, w.o.KeyCount)
	sp := w.o.space()
	revs, err := Preload(ctx, clis, w.o.KeyCount, func(i int) string { return string(sp.Key(nil, i)) }, keys.Value(w.o.ValueSize))
	w.revs = revs
	w.conflicts = make([]uint64, w.o.Load.Clients)
	return err
}

func (w *txnWorkload) op(i int, cli *clientv3.Client) load.Op {
	sp := w.o.space()
	gen := keys.NewGenerator(sp, keys.Random, i, w.o.Load.Clients, w.o.Seed)
	cache := &casCache{initial: w.revs, learnt: map[int]int64{}}
	value := string(keys.Value(w.o.ValueSize))
	return func(ctx context.Context) error {
		k := gen.Next()
		ok, err := casUpdate(ctx, cli, cache, k, string(sp.Key(nil, k)), value)
		if err == nil && !ok {
			w.conflicts[i]++
		}
		return err
	}
}

func (w *txnWorkload) finish(_ context.Context, res *load.Result) {
	var n uint64
	for _, c := range w.conflicts {
		n += c
	}
	res.Counters = map[string]float64{"cas_conflicts": float64(n)}
}

func (w *txnWorkload) close() {}
