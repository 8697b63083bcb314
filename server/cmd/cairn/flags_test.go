package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/etcdapi"
)

// parse parses args with an empty environment.
func parse(args ...string) (invocation, error) { return parseFlags(args, nil) }

func TestParseFlagsDefaults(t *testing.T) {
	inv, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.Name != "default" || cfg.DataDir != "default.cairn" || inv.log.level != slog.LevelInfo || inv.showVersion {
		t.Fatalf("defaults: %+v", inv)
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
	if !reflect.DeepEqual(inv.log, logOptions{level: slog.LevelInfo, outputs: []string{"stderr"}}) || len(inv.notices) != 0 {
		t.Fatalf("default logging %+v, notices %q", inv.log, inv.notices)
	}
}

func TestParseFlagsMemoryBudget(t *testing.T) {
	for arg, want := range map[string]int64{"536870912": 512 << 20, "512MiB": 512 << 20, "2GiB": 2 << 30, "262144KiB": 256 << 20} {
		inv, err := parse("--memory-budget", arg)
		if err != nil || inv.cfg.MemoryBudgetBytes != want {
			t.Errorf("--memory-budget %s: %d bytes, %v; want %d", arg, inv.cfg.MemoryBudgetBytes, err, want)
		}
	}
	for _, arg := range []string{"", "512M", "-1GiB", "0", "1.5GiB", "GiB", "64MiB", "99999999999GiB"} {
		if _, err := parse("--memory-budget", arg); err == nil || !strings.Contains(err.Error(), "--memory-budget") {
			t.Errorf("--memory-budget %q: %v, want an error", arg, err)
		}
	}
	if got := formatBytes(node.DefaultMemoryBudgetBytes); got != "320MiB" {
		t.Errorf("default shown as %q", got)
	}
}

func TestParseFlagsEtcdCommandLine(t *testing.T) {
	inv, err := parse(
		"--name", "infra1", "--data-dir=/tmp/x",
		"--listen-client-urls", "http://127.0.0.1:2379, http://10.0.0.1:2379,",
		"--initial-cluster", "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380",
		"--initial-cluster-token", "tok", "--initial-cluster-state", "existing",
		"--heartbeat-interval", "50", "--election-timeout", "250",
		"--max-request-bytes", "4096", "--max-txn-ops", "7", "--quota-backend-bytes", "1048576", "--log-level", "debug",
	)
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.Name != "infra1" || cfg.DataDir != "/tmp/x" || cfg.InitialClusterToken != "tok" ||
		cfg.InitialCluster != "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:22380" {
		t.Fatalf("parsed: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.ListenClientURLs, []string{"http://127.0.0.1:2379", "http://10.0.0.1:2379"}) {
		t.Fatalf("client URLs %q", cfg.ListenClientURLs)
	}
	if cfg.TickInterval != 50*time.Millisecond || cfg.ElectionTimeout != 250*time.Millisecond ||
		cfg.Limits != (etcdapi.Limits{MaxRequestBytes: 4096, MaxTxnOps: 7, QuotaBackendBytes: 1 << 20}) || inv.log.level != slog.LevelDebug {
		t.Fatalf("parsed: %+v level %v", cfg, inv.log.level)
	}
	inv, err = parse("--name", "n2")
	if err != nil || inv.cfg.DataDir != "n2.cairn" {
		t.Fatalf("data dir defaults from the name: %q, %v", inv.cfg.DataDir, err)
	}
	if inv, err := parse("--version"); err != nil || !inv.showVersion {
		t.Fatalf("--version: %v %v", inv.showVersion, err)
	}
	// As etcd: --version does not look at the values of flags or at the
	// environment, only at the flags' names.
	if inv, err := parseFlags([]string{"--discovery-srv=x", "--version"}, []string{"ETCD_NAME=a", "ETCD_HEARTBEAT_INTERVAL=soon"}); err != nil || !inv.showVersion {
		t.Fatalf("--version with refused values: %v %v", inv.showVersion, err)
	}
	if _, err := parse("--bogus", "--version"); err == nil {
		t.Fatal("--version with an unknown flag accepted")
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, `"extra" is not a valid flag`},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--logger", "capnslog"}, "--logger"},
		{[]string{"--log-outputs", ","}, "--log-outputs"},
		{[]string{"--initial-cluster-state", "old"}, "--initial-cluster-state"},
		{[]string{"--heartbeat-interval", "0"}, "--election-timeout"},
		{[]string{"--heartbeat-interval", "100", "--election-timeout", "499"}, "at least 5 times"},
		{[]string{"--max-txn-ops", "-1"}, "max-txn-ops"},
		{[]string{"--max-wals", "many"}, "max-wals"},
		{[]string{"--feature-gates", "Bogus=true"}, "unrecognized feature gate: Bogus"},
		{[]string{"--feature-gates", "LeaseCheckpoint=maybe"}, "LeaseCheckpoint"},
		{[]string{"--feature-gates", "LeaseCheckpoint"}, "missing bool value"},
	} {
		_, err := parse(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := parse("--heartbeat-interval", "100", "--election-timeout", "500"); err != nil {
		t.Fatalf("election timeout of exactly 5 heartbeats refused: %v", err)
	}
}

func TestLogOptions(t *testing.T) {
	inv, err := parse("--log-outputs", "default,stdout,/tmp/a.log,stderr", "--log-format", "console", "--log-level", "fatal")
	if err != nil {
		t.Fatal(err)
	}
	want := logOptions{level: slog.LevelError + 4, console: true, outputs: []string{"stderr", "stdout", "/tmp/a.log"}}
	if !reflect.DeepEqual(inv.log, want) {
		t.Fatalf("log options %+v, want %+v", inv.log, want)
	}
	file := filepath.Join(t.TempDir(), "cairn.log")
	var stdout, stderr bytes.Buffer
	logger, err := openLogger(logOptions{level: slog.LevelWarn, outputs: []string{"stdout", file}}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("dropped")
	logger.Warn("kept", "k", "v")
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 || !strings.Contains(stdout.String(), `"msg":"kept","k":"v"`) || string(written) != stdout.String() ||
		strings.Contains(stdout.String(), "dropped") {
		t.Fatalf("stdout %q, file %q, stderr %q", stdout.String(), written, stderr.String())
	}
	stdout.Reset()
	logger, _ = openLogger(logOptions{level: slog.LevelInfo, console: true, outputs: []string{"stdout"}}, &stdout, &stderr)
	logger.Info("text")
	if !strings.Contains(stdout.String(), "level=INFO msg=text") {
		t.Fatalf("console format wrote %q", stdout.String())
	}
}

// etcdHelp is the reference etcd's `--help` output.
func etcdHelp(t *testing.T) string {
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "..", ".ref", "bin", "etcd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("the reference etcd is not built (%v): run `make ref`", err)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v", bin, err)
	}
	return string(out)
}

var (
	helpFlagLine = regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
	helpGateLine = regexp.MustCompile(`(?m)^    ([A-Za-z]+)=true\|false`)
)

// cairnOnlyFlags are cairn's flags that etcd's --help does not list in its
// flag groups (--config-file and --version are in its usage lines).
var cairnOnlyFlags = []string{"check-config", "config-file", "memory-budget", "version"}

// TestEveryEtcdFlagIsAccountedFor walks the reference etcd's --help: each
// flag is implemented (its default parses), ignored (a value of its kind
// parses, with a notice) or refused (exactly one line naming it, exit 2;
// its accepted value parses); and cairn has no flag etcd lacks beyond
// cairnOnlyFlags.
func TestEveryEtcdFlagIsAccountedFor(t *testing.T) {
	help := etcdHelp(t)
	var o options
	fs := newFlagSet(&o)
	etcdFlags := map[string]bool{}
	for _, m := range helpFlagLine.FindAllStringSubmatch(help, -1) {
		name := m[1]
		etcdFlags[name] = true
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("etcd flag --%s is not accounted for", name)
			continue
		}
		checkEtcdFlag(t, f)
	}
	if len(etcdFlags) < 100 {
		t.Fatalf("found %d flags in etcd --help; the pattern no longer matches its format", len(etcdFlags))
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !etcdFlags[f.Name] && !contains(cairnOnlyFlags, f.Name) {
			t.Errorf("cairn has --%s, which etcd --help does not list", f.Name)
		}
	})
	gates := helpGateLine.FindAllStringSubmatch(help, -1)
	if len(gates) < 5 {
		t.Fatalf("found %d feature gates in etcd --help", len(gates))
	}
	for _, m := range gates {
		checkEtcdGate(t, m[1])
	}
	if len(gates) != len(etcdFeatureGates) {
		t.Errorf("etcd has %d feature gates, cairn's table %d", len(gates), len(etcdFeatureGates))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkEtcdFlag checks the flag answers as its table entry says.
func checkEtcdFlag(t *testing.T, f *flag.Flag) {
	t.Helper()
	v, etcdOnly := f.Value.(*etcdOnlyValue)
	arg := "--" + f.Name
	if !etcdOnly {
		if _, err := parse(arg + "=" + f.DefValue); err != nil {
			t.Errorf("implemented %s=%q (its default): %v", arg, f.DefValue, err)
		}
		return
	}
	other := valueOtherThan(v.spec.kind, v.spec.acceptedValue)
	switch v.spec.status {
	case flagIgnored:
		inv, err := parse(arg + "=" + other)
		if err != nil || len(inv.notices) != 1 || !strings.Contains(inv.notices[0], arg) {
			t.Errorf("ignored %s=%s: %v, notices %q", arg, other, err, inv.notices)
		}
	case flagRefused:
		if _, err := parse(arg + "=" + v.spec.acceptedValue); err != nil {
			t.Errorf("refused %s with its accepted value %q: %v", arg, v.spec.acceptedValue, err)
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{arg + "=" + other}, nil, &stdout, &stderr)
		want := "cairn: " + arg + " is not supported (see docs/compatibility.md)\n"
		if code != 2 || stderr.String() != want || stdout.Len() != 0 {
			t.Errorf("refused %s=%s: exit %d, stderr %q, stdout %q; want exit 2 and %q", arg, other, code, stderr.String(), stdout.String(), want)
		}
	default:
		t.Errorf("%s has no status", arg)
	}
	if v.spec.reason == "" {
		t.Errorf("%s has no reason", arg)
	}
}

// valueOtherThan is a value of kind that differs from accepted.
func valueOtherThan(kind valueKind, accepted string) string {
	switch kind {
	case kindBool:
		if accepted == "true" {
			return "false"
		}
		return "true"
	case kindInt:
		return "7"
	case kindDuration:
		return "7s"
	}
	return "http://example.com:7"
}

func checkEtcdGate(t *testing.T, name string) {
	t.Helper()
	gate := findGate(name)
	if gate == nil {
		t.Errorf("etcd feature gate %s is not accounted for", name)
		return
	}
	for _, on := range []bool{false, true} {
		arg := "--feature-gates=" + name + "=" + map[bool]string{false: "false", true: "true"}[on]
		inv, err := parse(arg)
		if contains(acceptedText(gate), map[bool]string{false: "false", true: "true"}[on]) {
			wantNotices := 1 // an accepted gate without effect says so
			if gate.implemented {
				wantNotices = 0
			}
			if err != nil || len(inv.notices) != wantNotices {
				t.Errorf("%s: %v, notices %q; want accepted with %d notices", arg, err, inv.notices, wantNotices)
			}
			continue
		}
		var refused refusedError
		if !errors.As(err, &refused) || err.Error() != arg+" is not supported (see docs/compatibility.md)" {
			t.Errorf("%s: %v, want refused", arg, err)
		}
	}
}

func acceptedText(g *etcdFeatureGate) []string {
	var out []string
	for _, on := range g.accepted {
		out = append(out, map[bool]string{false: "false", true: "true"}[on])
	}
	return out
}

func TestRefusedFlagInEnvironmentAndGateList(t *testing.T) {
	_, err := parseFlags(nil, []string{"ETCD_DISCOVERY_SRV=example.com"})
	if err == nil || err.Error() != "--discovery-srv is not supported (see docs/compatibility.md)" {
		t.Fatalf("refused flag from the environment: %v", err)
	}
	if _, err := parse("--discovery-srv="); err != nil {
		t.Fatalf("refused flag with its accepted (empty) value: %v", err)
	}
	inv, err := parse("--feature-gates", "AllBeta=true, TxnModeWriteWithSharedBuffer=false", "--memory-mlock")
	if err == nil || err.Error() != "--memory-mlock is not supported (see docs/compatibility.md)" {
		t.Fatalf("standalone refused boolean flag: %+v %v", inv, err)
	}
	inv, err = parse("--feature-gates", "AllBeta=true, TxnModeWriteWithSharedBuffer=false")
	if err != nil || len(inv.notices) != 2 {
		t.Fatalf("accepted gates: %v, notices %q", err, inv.notices)
	}
}

func TestRunExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--bogus"}, nil, &stdout, &stderr); code != 2 || stderr.String() != "cairn: flag provided but not defined: -bogus\n" {
		t.Fatalf("bad flag: exit %d, stderr %q; want 2 and one line", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"--version"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "cairn Version: ") {
		t.Fatalf("--version: exit %d, stdout %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--initial-cluster-token 'etcd-cluster'") ||
		strings.Contains(stdout.String(), "--discovery-srv") {
		t.Fatalf("--help: exit %d, stdout %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"--check-config", "--max-wals=3"}, []string{"ETCD_NAME=x"}, &stdout, &stderr); code != 0 ||
		stdout.String() != "--max-wals=3 is accepted and ignored: "+reasonNoWAL+"\ncairn: the configuration is accepted\n" {
		t.Fatalf("--check-config: exit %d, stdout %q", code, stdout.String())
	}
	stderr.Reset()
	if code := run([]string{"--check-config", "--memory-mlock"}, nil, &stdout, &stderr); code != 2 || stderr.String() != "cairn: --memory-mlock is not supported (see docs/compatibility.md)\n" {
		t.Fatalf("--check-config with a refused flag: exit %d, stderr %q", code, stderr.String())
	}
	dir := t.TempDir()
	stderr.Reset()
	if code := run([]string{"--data-dir", dir, "--listen-client-urls", "https://127.0.0.1:0", "--log-level", "error"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("member that cannot start: exit %d, want 1", code)
	}
}

func TestParseFlagsGRPCAndWatch(t *testing.T) {
	inv, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.MaxConcurrentStreams != 1<<32-1 || cfg.GRPCKeepAliveMinTime != 5*time.Second || cfg.GRPCKeepAliveInterval != 2*time.Hour ||
		cfg.GRPCKeepAliveTimeout != 20*time.Second || cfg.WatchProgressNotifyInterval != 10*time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
	inv, err = parse("--max-concurrent-streams", "8", "--grpc-keepalive-min-time", "1s", "--grpc-keepalive-interval", "30s",
		"--grpc-keepalive-timeout", "3s", "--watch-progress-notify-interval", "5s")
	if err != nil {
		t.Fatal(err)
	}
	cfg = inv.cfg
	if cfg.MaxConcurrentStreams != 8 || cfg.GRPCKeepAliveMinTime != time.Second || cfg.GRPCKeepAliveInterval != 30*time.Second ||
		cfg.GRPCKeepAliveTimeout != 3*time.Second || cfg.WatchProgressNotifyInterval != 5*time.Second {
		t.Fatalf("set: %+v", cfg)
	}
	// etcd sets no server keepalive parameters unless both are positive.
	if inv, err = parse("--grpc-keepalive-interval", "0"); err != nil || inv.cfg.GRPCKeepAliveInterval != 0 || inv.cfg.GRPCKeepAliveTimeout != 0 {
		t.Fatalf("interval 0: %+v %v", inv.cfg, err)
	}
	// As etcd's watch server: an interval that is not positive keeps the
	// default, one below 100 ms is raised to 100 ms with a warning.
	for _, tc := range []struct {
		flag   string
		want   time.Duration
		notice bool
	}{{"0s", 10 * time.Minute, false}, {"-5s", 10 * time.Minute, false}, {"10ms", 100 * time.Millisecond, true}, {"100ms", 100 * time.Millisecond, false}} {
		inv, err := parse("--watch-progress-notify-interval", tc.flag)
		if err != nil || inv.cfg.WatchProgressNotifyInterval != tc.want {
			t.Fatalf("--watch-progress-notify-interval %s: %v %v, want %v", tc.flag, inv.cfg.WatchProgressNotifyInterval, err, tc.want)
		}
		noticed := slices.ContainsFunc(inv.notices, func(n string) bool { return strings.Contains(n, "watch progress notify interval") })
		if noticed != tc.notice {
			t.Fatalf("--watch-progress-notify-interval %s: notices %q", tc.flag, inv.notices)
		}
	}
	for _, args := range [][]string{{"--max-concurrent-streams", "0"}, {"--max-concurrent-streams", "4294967296"},
		{"--grpc-keepalive-timeout", "-1s"}} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestParseFlagsRaftAndMembership(t *testing.T) {
	inv, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	cfg := inv.cfg
	if cfg.DisablePreVote || !cfg.InitialElectionTickAdvance || cfg.DisableStrictReconfigCheck || cfg.MaxLearners != 1 || cfg.UnsafeNoFsync {
		t.Fatalf("defaults are not etcd's: %+v", cfg)
	}
	inv, err = parse("--pre-vote=false", "--initial-election-tick-advance=false", "--strict-reconfig-check=false", "--max-learners", "3", "--unsafe-no-fsync")
	if err != nil {
		t.Fatal(err)
	}
	cfg = inv.cfg
	if !cfg.DisablePreVote || cfg.InitialElectionTickAdvance || !cfg.DisableStrictReconfigCheck || cfg.MaxLearners != 3 || !cfg.UnsafeNoFsync {
		t.Fatalf("set: %+v", cfg)
	}
	if _, err := parse("--max-learners", "0"); err == nil {
		t.Fatal("--max-learners 0 accepted")
	}
}

func TestParseFlagsAutoCompaction(t *testing.T) {
	for _, tc := range []struct {
		args            []string
		mode            node.AutoCompactionMode
		retention       time.Duration
		retainRevisions int64
	}{
		{nil, node.AutoCompactionOff, 0, 0},
		{[]string{"--auto-compaction-retention", "0", "--auto-compaction-mode", "revision"}, node.AutoCompactionOff, 0, 0},
		{[]string{"--auto-compaction-retention", "1"}, node.AutoCompactionPeriodic, time.Hour, 0},
		{[]string{"--auto-compaction-retention", "30m"}, node.AutoCompactionPeriodic, 30 * time.Minute, 0},
		{[]string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"}, node.AutoCompactionRevision, 0, 1000},
	} {
		inv, err := parse(tc.args...)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		cfg := inv.cfg
		if cfg.AutoCompactionMode != tc.mode || cfg.AutoCompactionRetention != tc.retention || cfg.AutoCompactionRetainRevisions != tc.retainRevisions {
			t.Errorf("%q: mode %v retention %v revisions %d", tc.args, cfg.AutoCompactionMode, cfg.AutoCompactionRetention, cfg.AutoCompactionRetainRevisions)
		}
	}
	for _, args := range [][]string{
		{"--auto-compaction-retention", "soon"},
		{"--auto-compaction-retention", "-1h"},
		{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "5m"},
		{"--auto-compaction-mode", "daily", "--auto-compaction-retention", "1"},
	} {
		if _, err := parse(args...); err == nil || !strings.Contains(err.Error(), "--auto-compaction") {
			t.Errorf("%q: %v, want an error", args, err)
		}
	}
}

// TestCompatibilityDocListsEveryFlag keeps docs/compatibility.md's flag
// tables in step with the flag table: every flag and gate is named there.
func TestCompatibilityDocListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "compatibility.md"))
	if err != nil {
		t.Fatal(err)
	}
	var o options
	newFlagSet(&o).VisitAll(func(f *flag.Flag) {
		if !bytes.Contains(doc, []byte("`--"+f.Name+"`")) {
			t.Errorf("docs/compatibility.md does not name `--%s`", f.Name)
		}
	})
	for _, g := range etcdFeatureGates {
		if !bytes.Contains(doc, []byte("| `"+g.name+"` |")) {
			t.Errorf("docs/compatibility.md has no row for gate %s", g.name)
		}
	}
}

// The corruption checks' flags and gates reach the member's configuration;
// --compact-hash-check-time must be positive, as in etcd.
func TestCorruptionCheckFlags(t *testing.T) {
	inv, err := parse("--corrupt-check-time=2m", "--compact-hash-check-time=30s",
		"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true")
	if err != nil {
		t.Fatal(err)
	}
	if c := inv.cfg; c.CorruptCheckTime != 2*time.Minute || c.CompactHashCheckTime != 30*time.Second || !c.InitialCorruptCheck {
		t.Fatalf("config %v %v %v", c.CorruptCheckTime, c.CompactHashCheckTime, c.InitialCorruptCheck)
	}
	inv, err = parse("--compact-hash-check-time=30s")
	if err != nil || inv.cfg.CompactHashCheckTime != 0 || inv.cfg.CorruptCheckTime != 0 || inv.cfg.InitialCorruptCheck {
		t.Fatalf("without the gates: %v, %+v", err, inv.cfg)
	}
	if _, err := parse("--compact-hash-check-time=0s"); err == nil || err.Error() != "--compact-hash-check-time must be >0 (set to 0s)" {
		t.Fatalf("zero compact-hash-check-time: %v", err)
	}
	if inv, err := parse("--enable-grpc-gateway=false"); err != nil || !inv.cfg.DisableGRPCGateway {
		t.Fatalf("--enable-grpc-gateway=false: %v", err)
	}
}
