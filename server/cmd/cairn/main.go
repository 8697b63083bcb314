// Command cairn runs one member of a cairn cluster. Its flags are etcd's,
// with etcd's defaults, so a command line written for etcd starts cairn.
package main

import (
	"errors"
	"fmt"
	"io"
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
)

// version is cairn's own version; the etcd API it speaks is etcdapi.APIVersion.
const version = "0.1.0"

// shutdownGracePeriod bounds how long SIGTERM waits for in-flight requests.
const shutdownGracePeriod = 5 * time.Second

// failedGracePeriod bounds the wait for in-flight requests after a failure.
const failedGracePeriod = time.Second

func main() {
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// setRuntimeMemory fits the Go runtime to its share of the memory budget.
// The share is its soft limit unless GOMEMLIMIT says otherwise: a
// backstop, so that garbage does not take the member past its budget (the
// structures that hold user data are bounded by themselves). A sixteenth
// of it is the collector's headroom (tuneGCPercent) unless GOGC is set.
func setRuntimeMemory(budgetBytes int64, logger *slog.Logger) {
	b, err := node.SplitMemoryBudget(budgetBytes)
	if err != nil {
		return // parseFlags refused it already
	}
	attrs := []any{"total-bytes", b.TotalBytes, "block-cache-bytes", b.BlockCacheBytes,
		"memtable-bytes", b.MemTableBytes, "watch-window-bytes", b.WatchWindowBytes,
		"raft-entry-cache-bytes", b.RaftEntryCacheBytes, "newest-version-cache-bytes", b.LatestVersionCacheBytes,
		"live-key-set-bytes", b.LiveKeySetBytes, "read-cache-bytes", b.ReadCacheBytes}
	if t := tuneGCPercent(b.GoRuntimeBytes); t != nil {
		attrs = append(attrs, "gc-headroom-bytes", t.headroomBytes)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(b.GoRuntimeBytes)
		attrs = append(attrs, "go-memory-limit-bytes", b.GoRuntimeBytes)
	}
	logger.Info("memory budget", attrs...)
}

// run is cairn's main: it returns the exit status. A configuration error
// is one line on stderr and status 2, as etcd's flag errors.
func run(args, env []string, stdout, stderr io.Writer) int {
	inv, err := parseFlags(args, env)
	if errors.Is(err, errHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "cairn:", err)
		return 2
	}
	if inv.showVersion {
		fmt.Fprintf(stdout, "cairn Version: %s\netcd API Version: %s\n", version, etcdapi.APIVersion)
		return 0
	}
	if inv.checkConfig {
		for _, notice := range inv.notices {
			fmt.Fprintln(stdout, notice)
		}
		fmt.Fprintln(stdout, "cairn: the configuration is accepted")
		return 0
	}
	logger, err := openLogger(inv.log, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "cairn:", err)
		return 2
	}
	for _, notice := range inv.notices {
		logger.Warn(notice)
	}
	if inv.cfg.UnsafeNoFsync {
		logger.Warn("UNSAFE: --unsafe-no-fsync is set: writes are acknowledged without fsync and a machine crash loses them; for tests only")
	}
	cfg := inv.cfg
	cfg.Logger = logger
	cfg.CairnVersion = version
	if err := plantFailpoints(&cfg, logger); err != nil {
		fmt.Fprintln(stderr, "cairn:", err)
		return 2
	}
	setRuntimeMemory(cfg.MemoryBudgetBytes, logger)
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
		// A short grace lets answers already computed reach their clients
		// (the MemberRemove that removed this member, say).
		if errors.Is(m.Err(), node.ErrRemoved) {
			// As etcd: being removed is an orderly end, status 0, so that a
			// supervisor does not restart a member the cluster dropped.
			logger.Warn("the member has been permanently removed from the cluster; stopping")
			m.Stop(failedGracePeriod)
			return 0
		}
		logger.Error("member failed; stopping", "error", fmt.Sprint(m.Err()))
		m.Stop(failedGracePeriod)
		return 1
	}
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
