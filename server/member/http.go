package member

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"

	"github.com/cairn-db/cairn/server/metrics"
)

// serveHTTP starts the HTTP endpoints on --listen-metrics-urls and
// --listen-client-http-urls: /health, /livez, /readyz and /version, which
// answer as etcd's do (health.go), /metrics (server/metrics), and the Go
// profiler under /debug/pprof when --enable-pprof is set. https URLs use
// the client port's TLS, as etcd's do.
func (m *Member) serveHTTP() error {
	m.metrics = metrics.New(m.node, m.cfg.Limits.QuotaBackendBytes, m.cfg.MetricsLevel)
	m.metrics.Register(m.transport.Collectors()...)
	g, err := newGateway(m.cfg.Logger)
	if err != nil {
		return err
	}
	m.gateway = g
	for _, urls := range []struct {
		flag string
		urls []string
		// client says the URLs serve clients: the JSON gateway too.
		client bool
	}{{"--listen-metrics-urls", m.cfg.ListenMetricsURLs, false}, {"--listen-client-http-urls", m.cfg.ListenClientHTTPURLs, true}} {
		for _, raw := range urls.urls {
			if u, err := url.Parse(raw); err == nil && u.Scheme == "https" && m.tls.client == nil {
				return errMetricsTLS
			}
		}
		ls, err := listenAll(urls.flag, urls.urls, m.tls.client)
		if err != nil {
			return err
		}
		for _, l := range ls {
			m.serveHTTPOn(l, urls.client)
		}
	}
	return nil
}

// errMetricsTLS is etcd's refusal of an https metrics URL without client
// certificates.
var errMetricsTLS = errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")

// httpMux is the handler of every HTTP listener; those of the client URLs
// serve the JSON gateway too (gateway.go), as etcd's do.
func (m *Member) httpMux(client bool) *http.ServeMux {
	mux := http.NewServeMux()
	m.healthMux(mux)
	if client && !m.cfg.DisableGRPCGateway {
		mux.Handle("/v3/", m.gateway)
		mux.Handle("/v3beta/", m.gateway)
	}
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

func (m *Member) newHTTPServer(client bool) *http.Server {
	errorLog := slog.NewLogLogger(m.cfg.Logger.With("component", "http").Handler(), slog.LevelWarn)
	srv := &http.Server{Handler: m.httpMux(client), ErrorLog: errorLog}
	m.httpServers = append(m.httpServers, srv)
	return srv
}

func (m *Member) serveHTTPOn(l net.Listener, client bool) {
	srv := m.newHTTPServer(client)
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
			grpcL, httpL = splitClientListener(l, m.cfg.Logger.With("component", "tls", "port", "client"), &m.serveWG)
			go m.newHTTPServer(true).Serve(httpL)
		}
		m.serveWG.Add(1)
		go func() {
			defer m.serveWG.Done()
			if err := m.grpc.Serve(grpcL); err != nil {
				m.cfg.Logger.Error("client listener stopped", "address", l.Addr().String(), "error", err)
			}
		}()
	}
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.grpc.Serve(m.gateway.listener); err != nil {
			m.cfg.Logger.Error("gateway listener stopped", "error", err)
		}
	}()
}
