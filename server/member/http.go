package member

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
)

// serveHTTP starts the HTTP endpoints on --listen-metrics-urls: /health,
// which answers as etcd's does, and the Go profiler under /debug/pprof when
// --enable-pprof is set.
func (m *Member) serveHTTP() error {
	if len(m.cfg.ListenMetricsURLs) == 0 {
		return nil
	}
	for _, raw := range m.cfg.ListenMetricsURLs {
		if u, err := url.Parse(raw); err == nil && u.Scheme == "https" && m.tls.client == nil {
			return errMetricsTLS
		}
	}
	// https metrics URLs use the client port's TLS, as etcd's do.
	ls, err := listenAll("--listen-metrics-urls", m.cfg.ListenMetricsURLs, m.tls.client)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", m.health)
	if m.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	errorLog := slog.NewLogLogger(m.cfg.Logger.With("component", "metrics").Handler(), slog.LevelWarn)
	for _, l := range ls {
		srv := &http.Server{Handler: mux, ErrorLog: errorLog}
		m.httpServers = append(m.httpServers, srv)
		m.httpListeners = append(m.httpListeners, l)
		go srv.Serve(l)
	}
	return nil
}

// errMetricsTLS is etcd's refusal of an https metrics URL without client
// certificates.
var errMetricsTLS = errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")

// health reports whether the member knows a leader, in etcd's format.
func (m *Member) health(w http.ResponseWriter, _ *http.Request) {
	type health struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	h := health{Health: "true"}
	code := http.StatusOK
	if m.node.Status().Leader == 0 {
		h, code = health{Health: "false", Reason: "RAFT NO LEADER"}, http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}
