//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestRangeStreamMemory measures what a whole-keyspace read costs the
// server: it loads E2E_RSS_KEYS keys (default 1,000,000, 100-byte values),
// restarts the member (so its high-water mark starts afresh), reads every
// key once with RangeStream and once with a plain Range, each on a freshly
// restarted member, and logs the member's peak RSS (VmHWM) after each.
// RangeStream must stay far below Range, which holds the whole response.
// It takes a few minutes, so it runs only with E2E_RSS=1 (docs/benchmarks.md
// has the numbers).
func TestRangeStreamMemory(t *testing.T) {
	if os.Getenv("E2E_RSS") != "1" {
		t.Skip("set E2E_RSS=1 to measure (a few minutes)")
	}
	keys := int(envInt(t, "E2E_RSS_KEYS", 1_000_000))
	m := StartMember(t, subjectKind(t))
	loadKeys(t, m, keys)
	measure := func(what string, read func(pb.KVClient) (int, error)) int64 {
		m.Kill()
		m.Start()
		before := vmHWMKiB(t, m)
		conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		n, err := read(pb.NewKVClient(conn))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != keys {
			t.Fatalf("%s read %d keys, want %d", what, n, keys)
		}
		peak := vmHWMKiB(t, m)
		t.Logf("%s of %d keys: %v; member peak RSS %d MiB (after restart: %d MiB)", what, n, time.Since(start).Round(time.Millisecond), peak/1024, before/1024)
		return peak - before
	}
	all := &pb.RangeRequest{Key: []byte("m/"), RangeEnd: []byte("m0")}
	stream := measure("RangeStream", func(kv pb.KVClient) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		s, err := kv.RangeStream(ctx, all)
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			resp, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n += len(resp.GetRangeResponse().GetKvs())
		}
	})
	plain := measure("Range", func(kv pb.KVClient) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		resp, err := kv.Range(ctx, all)
		return len(resp.GetKvs()), err
	})
	if stream*2 > plain {
		t.Errorf("RangeStream's peak RSS grew by %d MiB, not well below Range's %d MiB", stream/1024, plain/1024)
	}
}

// loadKeys writes n keys "m/%08d" with 100-byte values, in txns of 100
// puts from 8 writers.
func loadKeys(t *testing.T, m *Member, n int) {
	const perTxn, writers = 100, 8
	kv := m.KV()
	value := bytes.Repeat([]byte("v"), 100)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := w * perTxn; first < n; first += writers * perTxn {
				txn := &pb.TxnRequest{}
				for i := first; i < min(first+perTxn, n); i++ {
					txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{
						RequestPut: &pb.PutRequest{Key: fmt.Appendf(nil, "m/%08d", i), Value: value}}})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := kv.Txn(ctx, txn)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("loaded %d keys in %v", n, time.Since(start).Round(time.Second))
}

// vmHWMKiB is the member process's peak resident set size.
func vmHWMKiB(t *testing.T, m *Member) int64 {
	if m.proc == nil {
		t.Fatalf("%s is not running", m.Kind)
	}
	peak, err := m.proc.PeakRSSBytes()
	if err != nil {
		t.Fatal(err)
	}
	return peak >> 10
}
