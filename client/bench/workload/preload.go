package workload

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// preloadBatch is the number of puts per preload txn; below etcd's default
// --max-txn-ops of 128.
const preloadBatch = 100

// preloadConcurrency is the number of preload txns in flight.
const preloadConcurrency = 16

// Preload writes count keys, keyOf(i) = value(i), in txns of preloadBatch puts,
// and returns each key's mod_revision. It is how workloads that read get data,
// and how the large-data scenario loads millions of keys quickly.
func Preload(ctx context.Context, clis []*clientv3.Client, count int, keyOf func(i int) string, value []byte) ([]int64, error) {
	revs := make([]int64, count)
	batches := make(chan int)
	errs := make(chan error, preloadConcurrency)
	var wg sync.WaitGroup
	for g := 0; g < preloadConcurrency; g++ {
		cli := clis[g%len(clis)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range batches {
				last := min(first+preloadBatch, count)
				ops := make([]clientv3.Op, 0, last-first)
				for i := first; i < last; i++ {
					ops = append(ops, clientv3.OpPut(keyOf(i), string(value)))
				}
				resp, err := cli.Txn(ctx).Then(ops...).Commit()
				if err != nil {
					errs <- fmt.Errorf("preload keys %d..%d: %w", first, last-1, err)
					return
				}
				for i := first; i < last; i++ {
					revs[i] = resp.Header.Revision
				}
			}
		}()
	}
	var err error
feed:
	for first := 0; first < count; first += preloadBatch {
		select {
		case batches <- first:
		case err = <-errs:
			break feed
		}
	}
	close(batches)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	return revs, nil
}
