package metrics

import (
	"context"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const (
	checkMethod = "/grpc.health.v1.Health/Check"
	watchMethod = "/grpc.health.v1.Health/Watch"
)

// newInitializedGRPCMetrics returns metrics initialized with a server of
// gRPC's health service, and how many methods it serves.
func newInitializedGRPCMetrics(t *testing.T, histogram bool) (*grpcMetrics, int) {
	t.Helper()
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	g := newGRPCMetrics(histogram)
	g.initialize(s)
	return g, len(s.GetServiceInfo()["grpc.health.v1.Health"].Methods)
}

func count(t *testing.T, g *grpcMetrics, vec string, labels ...string) float64 {
	t.Helper()
	switch vec {
	case "started":
		return testutil.ToFloat64(g.started.WithLabelValues(labels...))
	case "received":
		return testutil.ToFloat64(g.received.WithLabelValues(labels...))
	case "sent":
		return testutil.ToFloat64(g.sent.WithLabelValues(labels...))
	case "handled":
		return testutil.ToFloat64(g.handled.WithLabelValues(labels...))
	}
	t.Fatalf("no vector %q", vec)
	return 0
}

// Every method the server serves appears with zero counts before its first
// call, with each code's handled count, as etcd's do.
func TestGRPCMetricsListEveryMethodBeforeItsFirstCall(t *testing.T) {
	g, methods := newInitializedGRPCMetrics(t, true)
	if methods < 2 {
		t.Fatalf("the health service has %d methods; the test needs Check and Watch", methods)
	}
	if n := testutil.CollectAndCount(g, "grpc_server_started_total"); n != methods {
		t.Errorf("grpc_server_started_total has %d series, want one per method (%d)", n, methods)
	}
	if n := testutil.CollectAndCount(g, "grpc_server_handled_total"); n != methods*17 {
		t.Errorf("grpc_server_handled_total has %d series, want %d methods × 17 codes", n, methods)
	}
	if n := testutil.CollectAndCount(g, "grpc_server_handling_seconds"); n != methods {
		t.Errorf("grpc_server_handling_seconds has %d series, want %d", n, methods)
	}
	if got := count(t, g, "started", serverStreamType, "grpc.health.v1.Health", "Watch"); got != 0 {
		t.Errorf("Watch started %v times before any call", got)
	}
}

// A unary call counts as started, one message received, one sent if it
// succeeded, and handled with the code the client gets.
func TestGRPCMetricsCountUnaryCalls(t *testing.T) {
	g, _ := newInitializedGRPCMetrics(t, false)
	info := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	labels := []string{unaryType, "grpc.health.v1.Health", "Check"}
	for _, err := range []error{nil, nil, status.Error(codes.NotFound, "no"), context.Canceled} {
		_, got := g.unaryInterceptor(context.Background(), nil, info, func(context.Context, any) (any, error) { return "ok", err })
		if got != err {
			t.Fatalf("the interceptor returned %v, want the handler's %v", got, err)
		}
	}
	for vec, want := range map[string]float64{"started": 4, "received": 4, "sent": 2} {
		if got := count(t, g, vec, labels...); got != want {
			t.Errorf("%s = %v, want %v", vec, got, want)
		}
	}
	for code, want := range map[string]float64{"OK": 2, "NotFound": 1, "Canceled": 1, "Internal": 0} {
		if got := count(t, g, "handled", append(labels, code)...); got != want {
			t.Errorf("handled %s = %v, want %v", code, got, want)
		}
	}
}

// fakeStream receives msgs messages, then io.EOF, and sends without error.
type fakeStream struct {
	grpc.ServerStream
	msgs int
}

func (s *fakeStream) RecvMsg(any) error {
	if s.msgs == 0 {
		return io.EOF
	}
	s.msgs--
	return nil
}

func (s *fakeStream) SendMsg(any) error { return nil }

// A stream counts each message received or sent without error, and its end
// with its code; a method the server did not list is counted too.
func TestGRPCMetricsCountStreamMessages(t *testing.T) {
	g, _ := newInitializedGRPCMetrics(t, false)
	for _, method := range []string{watchMethod, "/unlisted.Service/Stream"} {
		info := &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true}
		err := g.streamInterceptor(nil, &fakeStream{msgs: 3}, info, func(_ any, ss grpc.ServerStream) error {
			for ss.RecvMsg(nil) == nil {
				if err := ss.SendMsg(nil); err != nil {
					return err
				}
			}
			return status.Error(codes.Unavailable, "gone")
		})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("%s: the interceptor returned %v", method, err)
		}
	}
	for _, labels := range [][]string{
		{serverStreamType, "grpc.health.v1.Health", "Watch"},
		{serverStreamType, "unlisted.Service", "Stream"},
	} {
		for vec, want := range map[string]float64{"started": 1, "received": 3, "sent": 3} {
			if got := count(t, g, vec, labels...); got != want {
				t.Errorf("%v: %s = %v, want %v", labels, vec, got, want)
			}
		}
		if got := count(t, g, "handled", append(labels, "Unavailable")...); got != 1 {
			t.Errorf("%v: handled Unavailable = %v, want 1", labels, got)
		}
	}
}
