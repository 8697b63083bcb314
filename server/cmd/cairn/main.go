// Command cairn runs one member of a cairn cluster. Its flags are etcd's,
// with etcd's defaults, so a command line written for etcd starts cairn.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cairn-db/cairn/server/member"
	"golang.org/x/crypto/bcrypt"
)

// version is cairn's own version; the etcd API it speaks is etcdapi.APIVersion.
const version = "0.1.0"

// shutdownGracePeriod bounds how long SIGTERM waits for in-flight requests.
const shutdownGracePeriod = 5 * time.Second

// failedGracePeriod bounds the wait for in-flight requests after a failure.
const failedGracePeriod = time.Second

func main() {
	tuneCAllocator()
	setGCPercent()
	os.Exit(run(os.Args[1:]))
}

// defaultGCPercent is the garbage collector's target unless GOGC says
// otherwise. Go's default, 100, spent 14-17% of a member's CPU under load
// on collecting a heap of a few tens of MB; at 200 the heap grows by about
// as much again (Pebble's cache and memtables, not the heap, dominate a
// member's memory) and reads and Kubernetes-like loads gain up to 15%.
const defaultGCPercent = 200

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// setMemoryLimit makes the Go runtime's share of the memory budget its
// soft limit unless GOMEMLIMIT says otherwise: a backstop, so that garbage
// (GOGC=200 lets the heap grow to three times what is live) does not take
// the member past its budget. The structures that hold user data are
// bounded by themselves.
func setMemoryLimit(budgetBytes int64, logger *slog.Logger) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	b, err := node.SplitMemoryBudget(budgetBytes)
	if err != nil {
		return // parseFlags refused it already
	}
	debug.SetMemoryLimit(b.GoRuntimeBytes)
	logger.Info("memory budget", "total-bytes", b.TotalBytes, "block-cache-bytes", b.BlockCacheBytes,
		"memtable-bytes", b.MemTableBytes, "watch-window-bytes", b.WatchWindowBytes,
		"raft-entry-cache-bytes", b.RaftEntryCacheBytes, "go-memory-limit-bytes", b.GoRuntimeBytes)
}

func run(args []string) int {
	cfg, logLevel, showVersion, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		return 2
	}
	if showVersion {
		fmt.Printf("cairn Version: %s\netcd API Version: %s\n", version, etcdapi.APIVersion)
		return 0
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = logger
	cfg.CairnVersion = version
	if err := plantFailpoints(&cfg, logger); err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		return 2
	}
	setMemoryLimit(cfg.MemoryBudgetBytes, logger)
	logger.Info("starting cairn", "version", version, "name", cfg.Name, "data-dir", cfg.DataDir)
	m, err := member.Start(cfg)
	if err != nil {
		logger.Error("cannot start member", "error", err.Error())
		return 1
	}
	return waitForStop(m, logger)
}

func waitForStop(m *member.Member, logger *slog.Logger) int {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-signals:
		logger.Info("received signal; shutting down", "signal", sig.String())
		if err := m.Stop(shutdownGracePeriod); err != nil {
			logger.Error("shutdown", "error", err.Error())
			return 1
		}
		logger.Info("stopped")
		return 0
	case <-m.Done():
		logger.Error("member failed; stopping", "error", fmt.Sprint(m.Err()))
		// A short grace lets answers already computed reach their clients
		// (the MemberRemove that removed this member, say).
		m.Stop(failedGracePeriod)
		return 1
	}
}

func parseFlags(args []string) (member.Config, slog.Level, bool, error) {
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	name := fs.String("name", "default", "Human-readable name for this member.")
	dataDir := fs.String("data-dir", "", "Path to the data directory (default \"${name}.cairn\").")
	listenClient := fs.String("listen-client-urls", "http://localhost:2379", "List of URLs to listen on for client traffic.")
	advertiseClient := fs.String("advertise-client-urls", "http://localhost:2379", "List of this member's client URLs to advertise to the public.")
	listenPeer := fs.String("listen-peer-urls", "http://localhost:2380", "List of URLs to listen on for peer traffic.")
	advertisePeer := fs.String("initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster.")
	initialCluster := fs.String("initial-cluster", "", "Initial cluster configuration for bootstrapping (default \"${name}=${initial-advertise-peer-urls}\").")
	token := fs.String("initial-cluster-token", "etcd-cluster", "Initial cluster token for the cluster during bootstrap.")
	state := fs.String("initial-cluster-state", "new", "Initial cluster state ('new' or 'existing').")
	heartbeatMs := fs.Uint("heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
	electionMs := fs.Uint("election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
	snapshotCount := fs.Uint64("snapshot-count", 10000, "Number of committed transactions to trigger a snapshot.")
	catchUp := fs.Uint64("snapshot-catchup-entries", 5000, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	maxRequestBytes := fs.Uint("max-request-bytes", uint(etcdapi.DefaultLimits.MaxRequestBytes), "Maximum client request size in bytes the server will accept.")
	quota := fs.Int64("quota-backend-bytes", etcdapi.DefaultLimits.QuotaBackendBytes, "Maximum size of the database on disk, in bytes; beyond it, writes that add keys fail with database space exceeded.")
	bcryptCost := fs.Int("bcrypt-cost", bcrypt.DefaultCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	maxTxnOps := fs.Uint("max-txn-ops", uint(etcdapi.DefaultLimits.MaxTxnOps), "Maximum number of operations permitted in a transaction.")
	metricsURLs := fs.String("listen-metrics-urls", "", "List of URLs to listen on for the HTTP endpoints /health, /livez, /readyz, /version, /metrics and, with --enable-pprof, /debug/pprof.")
	enablePprof := fs.Bool("enable-pprof", false, "Enable runtime profiling data via HTTP server (under /debug/pprof on --listen-metrics-urls).")
	logLevel := fs.String("log-level", "info", "Configures log level. Only supports debug, info, warn, error.")
	memoryBudget := fs.String("memory-budget", formatBytes(node.DefaultMemoryBudgetBytes), "Memory the member's caches of user data and the Go runtime share, in bytes or with a KiB, MiB or GiB suffix; resident memory stays within it under sustained writes (see docs/architecture.md, Memory budgets).")
	showVersion := fs.Bool("version", false, "Print the version and exit.")
	tlsFlags := addTLSFlags(fs) // tlsflags.go
	ops := addOpsFlags(fs)      // ops_flags.go
	if err := fs.Parse(args); err != nil {
		return member.Config{}, 0, false, err
	}
	if fs.NArg() > 0 {
		return member.Config{}, 0, false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return member.Config{}, 0, false, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", *logLevel)
	}
	if *state != "new" && *state != "existing" {
		return member.Config{}, 0, false, fmt.Errorf("--initial-cluster-state: %q is not 'new' or 'existing'", *state)
	}
	if *heartbeatMs == 0 || *electionMs < 5**heartbeatMs {
		return member.Config{}, 0, false, fmt.Errorf("--election-timeout[%vms] should be at least 5 times as --heartbeat-interval[%vms]", *electionMs, *heartbeatMs)
	}
	if *catchUp == 0 || *snapshotCount == 0 {
		return member.Config{}, 0, false, fmt.Errorf("--snapshot-count and --snapshot-catchup-entries must be positive")
	}
	budgetBytes, err := parseBytes(*memoryBudget)
	if err != nil {
		return member.Config{}, 0, false, fmt.Errorf("--memory-budget: %w", err)
	}
	if _, err := node.SplitMemoryBudget(budgetBytes); err != nil {
		return member.Config{}, 0, false, fmt.Errorf("--memory-budget: %w", err)
	}
	if *dataDir == "" {
		*dataDir = *name + ".cairn"
	}
	cfg := member.Config{
		Name:                     *name,
		DataDir:                  *dataDir,
		ListenClientURLs:         splitURLs(*listenClient),
		AdvertiseClientURLs:      splitURLs(*advertiseClient),
		ListenPeerURLs:           splitURLs(*listenPeer),
		InitialAdvertisePeerURLs: splitURLs(*advertisePeer),
		InitialCluster:           *initialCluster,
		InitialClusterToken:      *token,
		InitialClusterState:      *state,
		TickInterval:             time.Duration(*heartbeatMs) * time.Millisecond,
		ElectionTimeout:          time.Duration(*electionMs) * time.Millisecond,
		ListenMetricsURLs:        splitURLs(*metricsURLs),
		EnablePprof:              *enablePprof,
		SnapshotCount:            *snapshotCount,
		SnapshotCatchUpEntries:   *catchUp,
		Limits:                   etcdapi.Limits{MaxRequestBytes: int(*maxRequestBytes), MaxTxnOps: int(*maxTxnOps), QuotaBackendBytes: *quota},
		MemoryBudgetBytes:        budgetBytes,
		BcryptCost:               *bcryptCost,
	}
	if err := etcdapi.ValidateBcryptCost(*bcryptCost); err != nil {
		return member.Config{}, 0, false, err
	}
	if err := tlsFlags.apply(&cfg); err != nil {
		return member.Config{}, 0, false, err
	}
	if err := ops.apply(&cfg); err != nil {
		return member.Config{}, 0, false, err
	}
	return cfg, level, *showVersion, nil
}

// byteUnits are the suffixes parseBytes accepts, largest first.
var byteUnits = []struct {
	suffix string
	bytes  int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}}

// parseBytes reads a byte count: digits, optionally followed by KiB, MiB
// or GiB.
func parseBytes(s string) (int64, error) {
	for _, u := range byteUnits {
		digits, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/u.bytes {
			break
		}
		return n * u.bytes, nil
	}
	return 0, fmt.Errorf("%q is not a positive byte count such as 536870912, 512MiB or 2GiB", s)
}

// formatBytes writes n in the largest unit that divides it.
func formatBytes(n int64) string {
	for _, u := range byteUnits {
		if n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
