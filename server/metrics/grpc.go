package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcMetrics counts the client gRPC server's calls under the names,
// labels and rules etcd exports (grpc-ecosystem's go-grpc-prometheus):
// grpc_server_started_total, grpc_server_handled_total by code, and
// grpc_server_msg_received_total and grpc_server_msg_sent_total, which
// count messages received and sent without error; with --metrics
// extensive, grpc_server_handling_seconds too.
//
// A general interceptor resolves each counter from its label values on
// every call, four hash-and-map lookups per request (1.5-2 % of a
// member's CPU under small puts). Here each method's counters are resolved
// once, when the server's methods are known (initialize), and a call does
// one read of a map that no longer changes.
type grpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	// handling is nil unless --metrics extensive.
	handling *prometheus.HistogramVec
	// byMethod maps a full method name ("/etcdserverpb.KV/Put") to its
	// counters. Written only by initialize, before the server serves.
	byMethod map[string]*methodMetrics
}

// methodMetrics are one method's counters, resolved.
type methodMetrics struct {
	started, received, sent prometheus.Counter
	// handled is indexed by code; a code past it (none gRPC defines) is
	// resolved on the call.
	handled  [codes.Unauthenticated + 1]prometheus.Counter
	handling prometheus.Observer
	labels   [3]string // grpc_type, grpc_service, grpc_method
	vecs     *grpcMetrics
}

// The grpc_type label's values.
const (
	unaryType        = "unary"
	clientStreamType = "client_stream"
	serverStreamType = "server_stream"
	bidiStreamType   = "bidi_stream"
)

func newGRPCMetrics(handlingHistogram bool) *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	g := &grpcMetrics{
		started: counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled: counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.",
			append(labels[:3:3], "grpc_code")),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		byMethod: map[string]*methodMetrics{},
	}
	if handlingHistogram {
		g.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels)
	}
	return g
}

// Describe and Collect make grpcMetrics a prometheus.Collector.
func (g *grpcMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range g.collectors() {
		c.Describe(ch)
	}
}

func (g *grpcMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range g.collectors() {
		c.Collect(ch)
	}
}

func (g *grpcMetrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{g.started, g.handled, g.received, g.sent}
	if g.handling != nil {
		cs = append(cs, g.handling)
	}
	return cs
}

// initialize resolves the counters of every method s serves, which also
// makes each appear with zero counts, as etcd's do. It must be called
// before s serves.
func (g *grpcMetrics) initialize(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, m := range info.Methods {
			typ := methodType(m.IsClientStream, m.IsServerStream)
			g.byMethod["/"+service+"/"+m.Name] = g.resolve(typ, service, m.Name)
		}
	}
}

func methodType(clientStream, serverStream bool) string {
	switch {
	case clientStream && serverStream:
		return bidiStreamType
	case clientStream:
		return clientStreamType
	case serverStream:
		return serverStreamType
	}
	return unaryType
}

// resolve looks up one method's counters in the vectors.
func (g *grpcMetrics) resolve(typ, service, method string) *methodMetrics {
	m := &methodMetrics{labels: [3]string{typ, service, method}, vecs: g}
	m.started = g.started.WithLabelValues(typ, service, method)
	m.received = g.received.WithLabelValues(typ, service, method)
	m.sent = g.sent.WithLabelValues(typ, service, method)
	for c := range m.handled {
		m.handled[c] = g.handled.WithLabelValues(typ, service, method, codes.Code(c).String())
	}
	if g.handling != nil {
		m.handling = g.handling.WithLabelValues(typ, service, method)
	}
	return m
}

// method returns the counters of fullMethod: resolved by initialize, or
// on this call for a method the server did not list (none in practice).
func (g *grpcMetrics) method(fullMethod, typ string) *methodMetrics {
	if m, ok := g.byMethod[fullMethod]; ok {
		return m
	}
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return g.resolve(typ, service, method)
}

// done counts a call's end with err's code, and its duration.
func (m *methodMetrics) done(err error, start time.Time) {
	code := codeOf(err)
	if int(code) < len(m.handled) {
		m.handled[code].Inc()
	} else {
		m.vecs.handled.WithLabelValues(m.labels[0], m.labels[1], m.labels[2], code.String()).Inc()
	}
	if m.handling != nil {
		m.handling.Observe(time.Since(start).Seconds())
	}
}

// codeOf is the status code gRPC answers err with: context errors count
// as the server would send them.
func codeOf(err error) codes.Code {
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	return s.Code()
}

func (g *grpcMetrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m := g.method(info.FullMethod, unaryType)
	var start time.Time
	if m.handling != nil {
		start = time.Now()
	}
	m.started.Inc()
	m.received.Inc()
	resp, err := handler(ctx, req)
	if err == nil {
		m.sent.Inc()
	}
	m.done(err, start)
	return resp, err
}

func (g *grpcMetrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	m := g.method(info.FullMethod, methodType(info.IsClientStream, info.IsServerStream))
	var start time.Time
	if m.handling != nil {
		start = time.Now()
	}
	m.started.Inc()
	err := handler(srv, &countedStream{ServerStream: ss, m: m})
	m.done(err, start)
	return err
}

// countedStream counts the messages a stream receives and sends without
// error.
type countedStream struct {
	grpc.ServerStream
	m *methodMetrics
}

func (s *countedStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	if err == nil {
		s.m.sent.Inc()
	}
	return err
}

func (s *countedStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	if err == nil {
		s.m.received.Inc()
	}
	return err
}
