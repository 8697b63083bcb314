package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The peer network metrics, under etcd's names and labels (its rafthttp
// package): bytes sent to and received from each peer, messages that could
// not be sent, and the round-trip time to each peer. In cairn the bytes are
// the encoded raft messages and snapshot chunks carried by the peer gRPC
// streams (etcd counts the bytes of its HTTP bodies); the round-trip time
// is that of a probe call on the stream's connection, one every
// Config.ProbeInterval (etcd probes every few seconds too, and samples its
// smoothed round-trip time every 30 s).

const (
	// defaultProbeInterval is how often a peer's round-trip time is
	// measured while its stream is up.
	defaultProbeInterval = 5 * time.Second
	// peerProbeTimeout bounds one probe; one that times out counts as a
	// send failure, not as a round trip.
	peerProbeTimeout = 5 * time.Second
	// probeMethod answers a probe with nothing, to members of this
	// cluster only.
	probeMethod = "/cairn.peer.v1.Raft/Probe"
)

// peerMetrics are one transport's peer network metrics.
type peerMetrics struct {
	sentBytes, receivedBytes, sentFailures *prometheus.CounterVec
	roundTrip                              *prometheus.HistogramVec
}

func newPeerMetrics() *peerMetrics {
	return &peerMetrics{
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "peer_sent_bytes_total", Help: "The total number of bytes sent to peers."}, []string{"To"}),
		receivedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "peer_received_bytes_total", Help: "The total number of bytes received from peers."}, []string{"From"}),
		sentFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
			Name: "peer_sent_failures_total", Help: "The total number of send failures from peers."}, []string{"To"}),
		// etcd's buckets: 0.1 ms doubling to 3.2768 s.
		roundTrip: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "etcd", Subsystem: "network",
			Name: "peer_round_trip_time_seconds", Help: "Round-Trip-Time histogram between peers",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"To"}),
	}
}

// Collectors are the transport's metrics, for the member's registry.
func (t *Transport) Collectors() []prometheus.Collector {
	m := t.metrics
	return []prometheus.Collector{m.sentBytes, m.receivedBytes, m.sentFailures, m.roundTrip}
}

// peerLabel is a member ID as etcd's labels write it: hexadecimal.
func peerLabel(id uint64) string { return fmt.Sprintf("%x", id) }

// addPeer makes a new peer's counters appear at zero, so dashboards and
// alerts see a peer before its first failure.
func (m *peerMetrics) addPeer(id uint64) {
	m.sentBytes.WithLabelValues(peerLabel(id))
	m.receivedBytes.WithLabelValues(peerLabel(id))
	m.sentFailures.WithLabelValues(peerLabel(id))
}

func (m *peerMetrics) sent(to uint64, bytes int) {
	m.sentBytes.WithLabelValues(peerLabel(to)).Add(float64(bytes))
}

func (m *peerMetrics) received(from uint64, bytes int) {
	m.receivedBytes.WithLabelValues(peerLabel(from)).Add(float64(bytes))
}

func (m *peerMetrics) failed(to uint64, messages int) {
	m.sentFailures.WithLabelValues(peerLabel(to)).Add(float64(messages))
}

func (t *Transport) probeHandler(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if err := dec(&emptypb.Empty{}); err != nil {
		return nil, err
	}
	if _, err := t.checkPeer(ctx); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// probe measures the round-trip time to the peer on conn every
// ProbeInterval until ctx ends.
func (p *peer) probe(ctx context.Context, conn *grpc.ClientConn) {
	ticker := time.NewTicker(p.t.cfg.ProbeInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, peerProbeTimeout)
		start := time.Now()
		err := conn.Invoke(callCtx, probeMethod, &emptypb.Empty{}, &emptypb.Empty{})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.t.metrics.failed(p.id, 1)
			}
			continue
		}
		p.t.metrics.roundTrip.WithLabelValues(peerLabel(p.id)).Observe(time.Since(start).Seconds())
	}
}
