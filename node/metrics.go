package node

import (
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The core's counters. The loop (and, for ranges, the goroutines serving
// reads) update them; any goroutine reads a copy with Metrics. The server
// exports them under etcd's metric names; the simulator may read them too.

// Metrics is a copy of the core's counters.
type Metrics struct {
	// LeaderChanges counts the times this member saw a new leader.
	LeaderChanges uint64
	// ProposalsFailed counts writes that failed after they were admitted:
	// dropped by raft beyond the parked bound, timed out waiting for a
	// leader, or refused when they applied (an active alarm).
	ProposalsFailed uint64
	// ProposalsPending is the writes this member proposed that have not
	// applied yet: parked ones and this leader's own in flight.
	ProposalsPending int
	// Puts, Deletes and Txns count the write requests applied (a txn also
	// counts once, whatever it holds); Ranges the range requests served,
	// linearizable or not (ranges inside txns are not counted).
	Puts, Deletes, Txns, Ranges uint64
	// WALSyncSeconds times the synced commits of raft entries and
	// HardState (cairn's write-ahead log is Pebble's); BackendCommitSeconds
	// times the commits of applied state. Both by the node's Clock.
	WALSyncSeconds, BackendCommitSeconds HistogramSnapshot
}

// DurationBucketsSeconds are the upper bounds of the duration histograms:
// etcd's, 1 ms to 8 s doubling.
var DurationBucketsSeconds = func() []float64 {
	b := make([]float64, durationBuckets)
	for i := range b {
		b[i] = 0.001 * float64(uint64(1)<<i)
	}
	return b
}()

// durationBuckets is the number of finite buckets of a duration histogram.
const durationBuckets = 14

// HistogramSnapshot is a histogram's state: per bucket of
// DurationBucketsSeconds, how many observations were at most its bound
// (cumulative, as Prometheus counts), and the count and sum of all.
type HistogramSnapshot struct {
	Cumulative []uint64
	Count      uint64
	SumSeconds float64
}

// durationHistogram counts durations into DurationBucketsSeconds. Written
// by the loop, read by anyone.
type durationHistogram struct {
	buckets  [durationBuckets + 1]atomic.Uint64 // the last one: above every bound
	sumNanos atomic.Int64
}

func (h *durationHistogram) observe(d time.Duration) {
	i := 0
	for i < durationBuckets && d.Seconds() > DurationBucketsSeconds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNanos.Add(int64(d))
}

func (h *durationHistogram) snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Cumulative: make([]uint64, durationBuckets)}
	for i := range h.buckets {
		s.Count += h.buckets[i].Load()
		if i < durationBuckets {
			s.Cumulative[i] = s.Count
		}
	}
	s.SumSeconds = time.Duration(h.sumNanos.Load()).Seconds()
	return s
}

// nodeMetrics are the live counters.
type nodeMetrics struct {
	leaderChanges, proposalsFailed atomic.Uint64
	proposalsPending               atomic.Int64
	puts, deletes, txns, ranges    atomic.Uint64
	walSync, backendCommit         durationHistogram
	// lead is the leader last seen (loop only).
	lead uint64
}

// Metrics returns a copy of the core's counters; safe for concurrent use.
func (n *Node) Metrics() Metrics {
	m := &n.metrics
	return Metrics{
		LeaderChanges:        m.leaderChanges.Load(),
		ProposalsFailed:      m.proposalsFailed.Load(),
		ProposalsPending:     int(m.proposalsPending.Load()),
		Puts:                 m.puts.Load(),
		Deletes:              m.deletes.Load(),
		Txns:                 m.txns.Load(),
		Ranges:               m.ranges.Load(),
		WALSyncSeconds:       m.walSync.snapshot(),
		BackendCommitSeconds: m.backendCommit.snapshot(),
	}
}

// noteLeader counts a change to a new, known leader.
func (m *nodeMetrics) noteLeader(lead uint64) {
	if lead != 0 && lead != m.lead {
		m.leaderChanges.Add(1)
	}
	if lead != 0 {
		m.lead = lead
	}
}

// noteApplied counts an applied write request by kind.
func (m *nodeMetrics) noteApplied(req *pb.InternalRaftRequest) {
	switch {
	case req.Put != nil:
		m.puts.Add(1)
	case req.DeleteRange != nil:
		m.deletes.Add(1)
	case req.Txn != nil:
		m.txns.Add(1)
	}
}

// timed runs commit and records its duration, by the node's clock, in h.
func (n *Node) timed(h *durationHistogram, commit func() error) error {
	start := n.now()
	err := commit()
	h.observe(n.now().Sub(start))
	return err
}
