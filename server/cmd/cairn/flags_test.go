package main

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/etcdapi"
)

func TestParseFlagsDefaults(t *testing.T) {
	cfg, level, version, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "default" || cfg.DataDir != "default.cairn" || level != slog.LevelInfo || version {
		t.Fatalf("defaults: %+v level %v version %v", cfg, level, version)
	}
	if !reflect.DeepEqual(cfg.ListenClientURLs, []string{"http://localhost:2379"}) ||
		!reflect.DeepEqual(cfg.InitialAdvertisePeerURLs, []string{"http://localhost:2380"}) {
		t.Fatalf("default URLs: %+v", cfg)
	}
	if cfg.TickInterval != 100*time.Millisecond || cfg.ElectionTimeout != time.Second ||
		cfg.Limits != etcdapi.DefaultLimits || cfg.InitialClusterToken != "etcd-cluster" {
		t.Fatalf("default timing and limits: %+v", cfg)
	}
	if cfg.MemoryBudgetBytes != node.DefaultMemoryBudgetBytes {
		t.Fatalf("default memory budget %d, want %d", cfg.MemoryBudgetBytes, node.DefaultMemoryBudgetBytes)
	}
}

func TestParseFlagsMemoryBudget(t *testing.T) {
	for arg, want := range map[string]int64{"536870912": 512 << 20, "512MiB": 512 << 20, "2GiB": 2 << 30, "262144KiB": 256 << 20} {
		cfg, _, _, err := parseFlags([]string{"--memory-budget", arg})
		if err != nil || cfg.MemoryBudgetBytes != want {
			t.Errorf("--memory-budget %s: %d bytes, %v; want %d", arg, cfg.MemoryBudgetBytes, err, want)
		}
	}
	for _, arg := range []string{"", "512M", "-1GiB", "0", "1.5GiB", "GiB", "64MiB", "99999999999GiB"} {
		if _, _, _, err := parseFlags([]string{"--memory-budget", arg}); err == nil || !strings.Contains(err.Error(), "--memory-budget") {
			t.Errorf("--memory-budget %q: %v, want an error", arg, err)
		}
	}
	if got := formatBytes(node.DefaultMemoryBudgetBytes); got != "320MiB" {
		t.Errorf("default shown as %q", got)
	}
}

func TestParseFlagsEtcdCommandLine(t *testing.T) {
	cfg, level, _, err := parseFlags([]string{
		"--name", "infra1", "--data-dir=/tmp/x",
		"--listen-client-urls", "http://127.0.0.1:2379, http://10.0.0.1:2379,",
		"--initial-cluster", "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380",
		"--initial-cluster-token", "tok", "--initial-cluster-state", "existing",
		"--heartbeat-interval", "50", "--election-timeout", "250",
		"--max-request-bytes", "4096", "--max-txn-ops", "7", "--quota-backend-bytes", "1048576", "--log-level", "debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "infra1" || cfg.DataDir != "/tmp/x" || cfg.InitialClusterToken != "tok" ||
		cfg.InitialCluster != "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380" {
		t.Fatalf("parsed: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.ListenClientURLs, []string{"http://127.0.0.1:2379", "http://10.0.0.1:2379"}) {
		t.Fatalf("client URLs %q", cfg.ListenClientURLs)
	}
	if cfg.TickInterval != 50*time.Millisecond || cfg.ElectionTimeout != 250*time.Millisecond ||
		cfg.Limits != (etcdapi.Limits{MaxRequestBytes: 4096, MaxTxnOps: 7, QuotaBackendBytes: 1 << 20}) || level != slog.LevelDebug {
		t.Fatalf("parsed: %+v level %v", cfg, level)
	}
	cfg, _, _, err = parseFlags([]string{"--name", "n2"})
	if err != nil || cfg.DataDir != "n2.cairn" {
		t.Fatalf("data dir defaults from the name: %q, %v", cfg.DataDir, err)
	}
	if _, _, version, err := parseFlags([]string{"--version"}); err != nil || !version {
		t.Fatalf("--version: %v %v", version, err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--initial-cluster-state", "old"}, "--initial-cluster-state"},
		{[]string{"--heartbeat-interval", "0"}, "--election-timeout"},
		{[]string{"--heartbeat-interval", "100", "--election-timeout", "499"}, "at least 5 times"},
		{[]string{"--max-txn-ops", "-1"}, "max-txn-ops"},
	} {
		_, _, _, err := parseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, _, _, err := parseFlags([]string{"--heartbeat-interval", "100", "--election-timeout", "500"}); err != nil {
		t.Fatalf("election timeout of exactly 5 heartbeats refused: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	if code := run([]string{"--bogus"}); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
	if code := run([]string{"--version"}); code != 0 {
		t.Fatalf("--version: exit %d, want 0", code)
	}
	dir := t.TempDir()
	if code := run([]string{"--data-dir", dir, "--listen-client-urls", "https://127.0.0.1:0", "--log-level", "error"}); code != 1 {
		t.Fatalf("member that cannot start: exit %d, want 1", code)
	}
}
