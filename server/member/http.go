package member

import (
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/cairn-db/cairn/server/metrics"
)

// serveHTTP starts the HTTP endpoints on --listen-metrics-urls and
// --listen-client-http-urls: /health, /livez, /readyz and /version, which
// answer as etcd's do (health.go), /metrics (server/metrics), and the Go profiler under /debug/pprof
// when --enable-pprof is set.
func (m *Member) serveHTTP() error {
	m.metrics = metrics.New(m.node, m.cfg.Limits.QuotaBackendBytes, m.cfg.MetricsLevel)
	for _, urls := range []struct {
		flag string
		urls []string
	}{{"--listen-metrics-urls", m.cfg.ListenMetricsURLs}, {"--listen-client-http-urls", m.cfg.ListenClientHTTPURLs}} {
		ls, err := listenAll(urls.flag, urls.urls)
		if err != nil {
			return err
		}
		for _, l := range ls {
			m.serveHTTPOn(l)
		}
	}
	return nil
}

// httpMux is the handler of every HTTP listener.
func (m *Member) httpMux() *http.ServeMux {
	mux := http.NewServeMux()
	m.healthMux(mux)
	mux.Handle("/metrics", m.metrics.Handler())
	if m.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (m *Member) serveHTTPOn(l net.Listener) {
	srv := &http.Server{Handler: m.httpMux()}
	m.httpServers = append(m.httpServers, srv)
	m.httpListeners = append(m.httpListeners, l)
	go srv.Serve(l)
}

// serveClientListeners serves gRPC on every client listener and, unless
// --listen-client-http-urls moved it elsewhere, HTTP/1.1 beside it on the
// same port (clientmux.go).
func (m *Member) serveClientListeners() {
	for _, l := range m.listeners {
		grpcL := l
		if len(m.cfg.ListenClientHTTPURLs) == 0 {
			var httpL net.Listener
			grpcL, httpL = splitClientListener(l, &m.serveWG)
			srv := &http.Server{Handler: m.httpMux()}
			m.httpServers = append(m.httpServers, srv)
			go srv.Serve(httpL)
		}
		m.serveWG.Add(1)
		go func() {
			defer m.serveWG.Done()
			if err := m.grpc.Serve(grpcL); err != nil {
				m.cfg.Logger.Error("client listener stopped", "address", l.Addr().String(), "error", err)
			}
		}()
	}
}
