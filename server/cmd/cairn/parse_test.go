package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
)

func TestEnvironmentSetsFlags(t *testing.T) {
	inv, err := parseFlags([]string{"--name", "cmdline"}, []string{
		"PATH=/bin",
		"ETCD_INITIAL_CLUSTER=a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
		"ETCD_HEARTBEAT_INTERVAL=20",
		"ETCD_ELECTION_TIMEOUT=200",
		"ETCD_ENABLE_PPROF=true",
		"ETCD_MAX_WALS=9",
		"ETCD_UNSAFE_ARCH=arm",
		"ETCD_DATA_DIR=",
		"ETCD_VERSION=1",
		"ETCDCTL_API=3",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.Name != "cmdline" || cfg.InitialCluster != "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380" ||
		cfg.TickInterval != 20*time.Millisecond || cfg.ElectionTimeout != 200*time.Millisecond || !cfg.EnablePprof ||
		cfg.DataDir != "cmdline.cairn" || inv.showVersion {
		t.Fatalf("from the environment: %+v", inv)
	}
	want := []string{
		"unrecognized environment variable ETCD_DATA_DIR=",
		"unrecognized environment variable ETCD_UNSAFE_ARCH=arm",
		"cannot set special environment variable ETCD_VERSION=1",
		"--max-wals=9 is accepted and ignored: " + reasonNoWAL,
	}
	if !reflect.DeepEqual(inv.notices, want) {
		t.Fatalf("notices\n%q\nwant\n%q", inv.notices, want)
	}
}

// TestEnvironmentConflictsWithFlag: etcd 3.7.3 refuses to start when a
// flag is given both ways (checked with the reference binary: "conflicting
// environment variable is shadowed by corresponding command-line flag").
func TestEnvironmentConflictsWithFlag(t *testing.T) {
	_, err := parseFlags([]string{"--name=a"}, []string{"ETCD_NAME=b"})
	if err == nil || err.Error() != `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)` {
		t.Fatalf("flag and variable: %v", err)
	}
	_, err = parseFlags(nil, []string{"ETCD_SNAPSHOT_COUNT=lots"})
	if err == nil || !strings.Contains(err.Error(), `invalid value "lots" for ETCD_SNAPSHOT_COUNT`) {
		t.Fatalf("bad value: %v", err)
	}
}

func TestConfigFile(t *testing.T) {
	inv, err := parseFlags([]string{"--config-file", "testdata/etcd.conf.yml", "--name", "ignored"}, []string{"ETCD_NAME=ignored-too"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.Name != "infra1" || cfg.DataDir != "/tmp/cairn-config-test/infra1" || cfg.SnapshotCount != 20000 ||
		cfg.TickInterval != 50*time.Millisecond || cfg.ElectionTimeout != 500*time.Millisecond ||
		cfg.InitialClusterToken != "config-test-cluster" || cfg.InitialCluster != "infra1=http://127.0.0.1:23805" ||
		!cfg.EnablePprof || cfg.MemoryBudgetBytes != 512<<20 {
		t.Fatalf("from the file: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.ListenClientURLs, []string{"http://127.0.0.1:23795", "http://127.0.0.1:23796"}) ||
		!reflect.DeepEqual(cfg.ListenMetricsURLs, []string{"http://127.0.0.1:23815"}) {
		t.Fatalf("URLs from the file: %+v", cfg)
	}
	if cfg.Limits != (etcdapi.Limits{MaxRequestBytes: 2 << 20, MaxTxnOps: 256, QuotaBackendBytes: 4 << 30}) {
		t.Fatalf("limits from the file: %+v", cfg.Limits)
	}
	if !inv.log.console || !reflect.DeepEqual(inv.log.outputs, []string{"stderr"}) || inv.log.level.String() != "DEBUG" {
		t.Fatalf("logging from the file: %+v", inv.log)
	}
	joined := strings.Join(inv.notices, "\n")
	for _, want := range []string{"loaded configuration file testdata/etcd.conf.yml", "--max-snapshots=5 is accepted and ignored",
		"--feature-gates=TxnModeWriteWithSharedBuffer=true is accepted"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notices lack %q:\n%s", want, joined)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "etcd.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFileTransportSecurity: the transport-security sections set the
// TLS flags.
func TestConfigFileTransportSecurity(t *testing.T) {
	inv, err := parseFlags([]string{"--config-file", writeConfig(t, "client-transport-security:\n  cert-file: /etc/cert.pem\n  key-file: /etc/key.pem\npeer-transport-security:\n  cert-file: /etc/peer.pem\n  key-file: /etc/peer-key.pem\n  allowed-cn: a\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.cfg.ClientTLS.CertFile != "/etc/cert.pem" || inv.cfg.PeerTLS.KeyFile != "/etc/peer-key.pem" || len(inv.cfg.PeerTLS.AllowedCNs) != 1 || inv.cfg.PeerTLS.AllowedCNs[0] != "a" {
		t.Fatalf("client TLS %+v, peer TLS %+v", inv.cfg.ClientTLS, inv.cfg.PeerTLS)
	}
}

func TestConfigFileRefusesAndReports(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"discovery-srv: example.com\n", "--discovery-srv is not supported (see docs/compatibility.md)"},
		{"memory-mlock: true\n", "--memory-mlock is not supported (see docs/compatibility.md)"},
		{"discovery-config:\n  endpoints: [http://d:2379]\n", "--discovery-endpoints is not supported (see docs/compatibility.md)"},
		{"socket-options:\n  reuse-port: true\n", "--socket-reuse-port is not supported (see docs/compatibility.md)"},
		{"feature-gates: PriorityRequest=true\n", "--feature-gates=PriorityRequest=true is not supported (see docs/compatibility.md)"},
		{"heartbeat-interval: soon\n", "heartbeat-interval: invalid value"},
		{"backend-batch-interval: 1.5\n", "not a duration in integer nanoseconds"},
		{"socket-options: 3\n", "invalid socket-options"},
		{"- a\n- b\n", "not a YAML mapping"},
	} {
		_, err := parseFlags([]string{"--config-file", writeConfig(t, tc.text)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
	inv, err := parseFlags([]string{"--check-config"}, []string{"ETCD_CONFIG_FILE=" + writeConfig(t, "name: fromenv\nenable-v2: true\nversion: true\nbackend-batch-interval: 10000000\n")})
	if err != nil {
		t.Fatal(err)
	}
	if inv.cfg.Name != "fromenv" || inv.showVersion || !inv.checkConfig {
		t.Fatalf("ETCD_CONFIG_FILE: %+v", inv)
	}
	want := []string{
		`configuration key "enable-v2" is not one of etcd's; ignored`,
		`configuration key "version" is not one of etcd's; ignored`,
		"--backend-batch-interval=10ms is accepted and ignored: " + reasonBbolt + "; it commits once per raft batch",
	}
	if got := inv.notices; len(got) != 4 || !reflect.DeepEqual(got[:2], want[:2]) || got[3] != want[2] {
		t.Fatalf("notices %q", got)
	}
	if _, err := parseFlags([]string{"--config-file", writeConfig(t, "")}, nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := parseFlags([]string{"--config-file", "/nonexistent.yml"}, nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestAuthTokenFlag: --auth-token simple keeps simple tokens; jwt reads
// its key files and reaches the member's configuration, with etcd's
// warning about unknown options; a bad value is refused with etcd's error
// before anything starts.
func TestAuthTokenFlag(t *testing.T) {
	inv, err := parse("--auth-token", "simple")
	if err != nil || inv.cfg.AuthJWT != nil {
		t.Fatalf("simple: %v, jwt %v", err, inv.cfg.AuthJWT)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err = parse("--auth-token", "jwt,sign-method=HS512,priv-key="+secret+",ttl=90s,colour=blue")
	if err != nil {
		t.Fatal(err)
	}
	if j := inv.cfg.AuthJWT; j == nil || j.Method() != "HS512" || j.TTL() != 90*time.Second || !j.CanSign() {
		t.Fatalf("jwt: %+v", j)
	}
	if !slices.Contains(inv.notices, "unknown JWT options: colour") {
		t.Fatalf("notices %q", inv.notices)
	}
	for opts, want := range map[string]string{
		"jwt,sign-method=HS512":                          "--auth-token: auth: missing key data",
		"jwt,sign-method=HS512,priv-key=/nonexistent":    "--auth-token: auth: invalid auth options",
		"jwt,sign-method=HS512,priv-key=" + secret + ",": "--auth-token: auth: invalid auth options",
		"":     `--auth-token: auth: invalid auth options: unknown token type ""`,
		"oidc": `--auth-token: auth: invalid auth options: unknown token type "oidc"`,
	} {
		if _, err := parse("--auth-token", opts); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", opts, err, want)
		}
	}
}
