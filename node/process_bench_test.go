package node

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The benchmark drives one single-member node the way the server's loop
// does, from the benchmark's goroutine: propose, then Process while there
// is work. It runs on Pebble's in-memory filesystem with the default cache
// and memtable sizes, so it measures the node core's CPU per request —
// raft, the synced persist of entries and HardState, reading the committed
// entries back, applying them to MVCC — not the disk. Pebble's background
// flushes and compactions run as they would under a member. Puts go to
// benchKeys keys of benchValueBytes-byte values, round robin, so every key
// gains versions (no compaction runs; the keyspace grows with b.N).
const (
	benchKeys       = 10_000
	benchValueBytes = 256
)

// benchNode is one elected single-member node and the requests it is
// given, made once: Propose marshals a request at once and only sets its
// header, so a request can be proposed again.
type benchNode struct {
	b    *testing.B
	n    *Node
	reqs []*pb.InternalRaftRequest
	next int // the next request to propose
}

func newBenchNode(b *testing.B) *benchNode {
	b.Helper()
	cfg := testConfig(1, []uint64{1}, vfs.NewMem())
	cfg.CacheBytes, cfg.MemTableBytes = 0, 0 // the defaults, as a member runs
	n, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	bn := &benchNode{b: b, n: n, reqs: benchPuts()}
	// A single voter campaigns in Open and wins in its first Process.
	if done := bn.process(); done != 0 || !n.Status().IsLeader {
		b.Fatalf("not leader after the first Process (%d completions): %+v", done, n.Status())
	}
	return bn
}

// benchPuts returns one put per key, with random values.
func benchPuts() []*pb.InternalRaftRequest {
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*pb.InternalRaftRequest, benchKeys)
	for i := range reqs {
		value := make([]byte, benchValueBytes)
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		reqs[i] = &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "key/%06d", i), Value: value}}
	}
	return reqs
}

// process calls Process while the node has work and returns how many
// requests completed; each must have succeeded.
func (bn *benchNode) process() int {
	completed := 0
	for range maxProcessRounds {
		if !bn.n.HasReady() {
			return completed
		}
		out, err := bn.n.Process()
		if err != nil {
			bn.b.Fatal(err)
		}
		for _, c := range out.Done {
			if c.Err != nil || c.Response == nil {
				bn.b.Fatalf("request %x: %v, %v", c.ID, c.Response, c.Err)
			}
		}
		completed += len(out.Done)
	}
	bn.b.Fatalf("node still busy after %d rounds", maxProcessRounds)
	return 0
}

// putBatch proposes k puts and processes until all k are applied.
func (bn *benchNode) putBatch(k int) {
	for range k {
		bn.n.Start(Request{Put: bn.reqs[bn.next].Put})
		bn.next = (bn.next + 1) % len(bn.reqs)
	}
	if done := bn.process(); done != k {
		bn.b.Fatalf("%d of %d puts completed", done, k)
	}
}

// BenchmarkProcessPut proposes batch puts per op, as the server's loop
// gathers the requests that arrived since its last Process, and processes
// until all are applied. Bytes are the values written.
func BenchmarkProcessPut(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			bn := newBenchNode(b)
			rev := bn.n.Store().Rev()
			b.SetBytes(int64(batch * benchValueBytes))
			b.ReportAllocs()
			for b.Loop() {
				bn.putBatch(batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/put")
			if got, want := bn.n.Store().Rev(), rev+int64(b.N*batch); got != want {
				b.Fatalf("revision %d after %d puts from %d, want %d", got, b.N*batch, rev, want)
			}
		})
	}
}
