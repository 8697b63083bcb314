package main

import (
	"reflect"
	"testing"

	"github.com/cairn-db/cairn/server/metrics"
)

// TestOpsFlags: --metrics and --listen-client-http-urls, as etcd's.
func TestOpsFlags(t *testing.T) {
	cfg, _, _, err := parseFlags([]string{"--metrics", "extensive", "--listen-client-http-urls", "http://127.0.0.1:2381"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsLevel != metrics.Extensive || !reflect.DeepEqual(cfg.ListenClientHTTPURLs, []string{"http://127.0.0.1:2381"}) {
		t.Fatalf("parsed: level %q, client HTTP URLs %q", cfg.MetricsLevel, cfg.ListenClientHTTPURLs)
	}
	if cfg, _, _, err = parseFlags(nil); err != nil || cfg.MetricsLevel != metrics.Basic || cfg.ListenClientHTTPURLs != nil {
		t.Fatalf("defaults: %q %q %v", cfg.MetricsLevel, cfg.ListenClientHTTPURLs, err)
	}
	if _, _, _, err := parseFlags([]string{"--metrics", "all"}); err == nil {
		t.Fatal("--metrics all was accepted")
	}
}
