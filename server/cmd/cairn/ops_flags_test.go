package main

import (
	"reflect"
	"testing"

	"github.com/cairn-db/cairn/server/member"
	"github.com/cairn-db/cairn/server/metrics"
)

// parseConfig parses args with no environment into a member.Config.
func parseConfig(args []string) (member.Config, error) {
	inv, err := parseFlags(args, nil)
	return inv.cfg, err
}

// TestOpsFlags: --metrics and --listen-client-http-urls, as etcd's.
func TestOpsFlags(t *testing.T) {
	cfg, err := parseConfig([]string{"--metrics", "extensive", "--listen-client-http-urls", "http://127.0.0.1:2381"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsLevel != metrics.Extensive || !reflect.DeepEqual(cfg.ListenClientHTTPURLs, []string{"http://127.0.0.1:2381"}) {
		t.Fatalf("parsed: level %q, client HTTP URLs %q", cfg.MetricsLevel, cfg.ListenClientHTTPURLs)
	}
	if cfg, err = parseConfig(nil); err != nil || cfg.MetricsLevel != metrics.Basic || cfg.ListenClientHTTPURLs != nil {
		t.Fatalf("defaults: %q %q %v", cfg.MetricsLevel, cfg.ListenClientHTTPURLs, err)
	}
	if _, err := parseConfig([]string{"--metrics", "all"}); err == nil {
		t.Fatal("--metrics all was accepted")
	}
}
