package workload

import (
	"context"
	"encoding/binary"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
)

// putWorkload puts KeyCount keys in Order.
type putWorkload struct{ o *Options }

func (w *putWorkload) setup(context.Context, []*clientv3.Client) error { return nil }

func (w *putWorkload) op(i int, cli *clientv3.Client) load.Op {
	gen := keys.NewGenerator(w.o.space(), w.o.Order, i, w.o.Load.Clients, w.o.Seed)
	value := string(keys.Value(w.o.ValueSize))
	buf := make([]byte, 0, w.o.KeySize)
	return func(ctx context.Context) error {
		buf = w.o.space().Key(buf[:0], gen.Next())
		_, err := cli.Put(ctx, string(buf), value)
		return err
	}
}

func (w *putWorkload) finish(context.Context, *load.Result) {}
func (w *putWorkload) close()                               {}

// rangeWorkload reads preloaded keys: one key, or a scan of Limit keys.
type rangeWorkload struct{ o *Options }

func (w *rangeWorkload) setup(ctx context.Context, clis []*clientv3.Client) error {
	w.o.logf("%s: preloading %d keys", w.o.Load.Name, w.o.KeyCount)
	sp := w.o.space()
	_, err := Preload(ctx, clis, w.o.KeyCount, func(i int) string { return string(sp.Key(nil, i)) }, keys.Value(w.o.ValueSize))
	return err
}

func (w *rangeWorkload) op(i int, cli *clientv3.Client) load.Op {
	sp := w.o.space()
	gen := keys.NewGenerator(sp, keys.Random, i, w.o.Load.Clients, w.o.Seed)
	end := clientv3.GetPrefixRangeEnd(w.o.Prefix)
	var opts []clientv3.OpOption
	if w.o.Scan {
		opts = readOpts(w.o, clientv3.WithRange(end), clientv3.WithLimit(int64(w.o.Limit)))
	} else {
		opts = readOpts(w.o)
	}
	buf := make([]byte, 0, w.o.KeySize)
	return func(ctx context.Context) error {
		buf = sp.Key(buf[:0], gen.Next())
		_, err := cli.Get(ctx, string(buf), opts...)
		return err
	}
}

func (w *rangeWorkload) finish(context.Context, *load.Result) {}
func (w *rangeWorkload) close()                               {}

// stampValue writes the monotonic nanoseconds since base into the first 8
// bytes of a copy of pad, so a watcher can measure put-to-event latency.
func stampValue(base time.Time, pad []byte) string {
	v := make([]byte, len(pad))
	copy(v, pad)
	binary.BigEndian.PutUint64(v, uint64(time.Since(base)))
	return string(v)
}

// stampAge is how long ago a value stamped by stampValue was made; ok is false
// for a value too short to hold a stamp.
func stampAge(base time.Time, v []byte) (time.Duration, bool) {
	if len(v) < 8 {
		return 0, false
	}
	return time.Since(base) - time.Duration(binary.BigEndian.Uint64(v)), true
}

// casCache is one worker's view of the mod_revision of each key, as a
// Kubernetes API server's watch cache would hold it: the preloaded revisions,
// overridden by what this worker learnt since.
type casCache struct {
	initial []int64 // shared, read-only
	learnt  map[int]int64
}

func (c *casCache) get(i int) int64 {
	if r, ok := c.learnt[i]; ok {
		return r
	}
	return c.initial[i]
}

// casUpdate runs one Kubernetes GuaranteedUpdate attempt on key i: put if the
// key's mod_revision is still the cached one, else read it to refresh the
// cache. It reports whether the put happened.
func casUpdate(ctx context.Context, cli *clientv3.Client, c *casCache, i int, key, value string) (bool, error) {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", c.get(i))).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		c.learnt[i] = resp.Header.Revision
		return true, nil
	}
	if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) == 1 {
		c.learnt[i] = rr.Kvs[0].ModRevision
	}
	return false, nil
}
