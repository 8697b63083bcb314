package member

import (
	"net/http"
	"net/http/pprof"
)

// serveHTTP starts the HTTP endpoints on --listen-metrics-urls: /health,
// /livez, /readyz and /version, which answer as etcd's do (health.go), and the Go profiler under /debug/pprof when
// --enable-pprof is set.
func (m *Member) serveHTTP() error {
	if len(m.cfg.ListenMetricsURLs) == 0 {
		return nil
	}
	ls, err := listenAll("--listen-metrics-urls", m.cfg.ListenMetricsURLs)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	m.healthMux(mux)
	if m.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for _, l := range ls {
		srv := &http.Server{Handler: mux}
		m.httpServers = append(m.httpServers, srv)
		m.httpListeners = append(m.httpListeners, l)
		go srv.Serve(l)
	}
	return nil
}
