package compare

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/chart"
	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

// SoakConfig is the memory soak: sustained puts of one value size at a time
// into a fresh single member of each system, RSS sampled every second.
type SoakConfig struct {
	Etcd, Cairn System
	// ValueSizes are the value sizes in bytes, one soak each (default 1 KiB,
	// 20 KiB, 100 KiB, 1 MiB).
	ValueSizes []int
	// Duration is the load per size and system (default 3 min).
	Duration time.Duration
	// Clients and Conns as etcd's benchmark tool (default 16 and 16); Keys
	// is the key space (default 50, so every put has a previous value).
	Clients, Conns, Keys int
	// CompactEvery is how often the soak compacts the keyspace to the
	// revision of the previous compaction, as Kubernetes does, so that
	// neither system's disk grows without bound (default 10 s).
	CompactEvery time.Duration
	// LogBytesMax bounds the raft log either system keeps: --snapshot-count
	// is min(10000, LogBytesMax / value size), so etcd, which keeps the log
	// since its last snapshot in memory, does not take GBs of a shared
	// machine with 1 MiB values (default 512 MiB).
	LogBytesMax int
	// DropCaches drops the page cache before each soak (Config.DropCaches).
	DropCaches bool
	BasePort   int
	WorkDir    string
	Progress   io.Writer
}

func (c *SoakConfig) ensureDefaults() {
	if len(c.ValueSizes) == 0 {
		c.ValueSizes = []int{1 << 10, 20 << 10, 100 << 10, 1 << 20}
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Conns == 0 {
		c.Conns = 16
	}
	if c.Keys == 0 {
		c.Keys = 50
	}
	if c.CompactEvery == 0 {
		c.CompactEvery = 10 * time.Second
	}
	if c.LogBytesMax == 0 {
		c.LogBytesMax = 512 << 20
	}
}

// SoakRun is one system's soak at one value size.
type SoakRun struct {
	System     string  `json:"system"`
	ValueBytes int     `json:"value_bytes"`
	Puts       uint64  `json:"puts"`
	PutsPerS   float64 `json:"puts_per_second"`
	P99MS      float64 `json:"p99_ms"`
	// RSSBytes are VmRSS samples, one per second from the load's start.
	RSSBytes     []int64 `json:"rss_bytes"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"` // VmHWM at the end
	// SnapshotCount is the --snapshot-count both systems ran with.
	SnapshotCount int    `json:"snapshot_count"`
	Failure       string `json:"failure,omitempty"`
}

// FirstHalfMaxBytes and SecondHalfMaxBytes are the largest samples of each
// half of the run: a curve that flattens has the second close to the first.
func (r SoakRun) FirstHalfMaxBytes() int64  { return maxOf(r.RSSBytes[:len(r.RSSBytes)/2]) }
func (r SoakRun) SecondHalfMaxBytes() int64 { return maxOf(r.RSSBytes[len(r.RSSBytes)/2:]) }

// SoakReport is what `cairnbench soak` saves (docs/bench/soak.json).
type SoakReport struct {
	Date     string  `json:"date"`
	Command  string  `json:"command"`
	Machine  Machine `json:"machine"`
	Duration string  `json:"duration"`
	Clients  int     `json:"clients"`
	Keys     int     `json:"keys"`
	// MemoryBudgetMiB is cairn's --memory-budget.
	MemoryBudgetMiB int       `json:"memory_budget_mib"`
	Runs            []SoakRun `json:"runs"`
}

// Soak runs every value size against etcd, then cairn.
func Soak(ctx context.Context, cfg SoakConfig) []SoakRun {
	cfg.ensureDefaults()
	var out []SoakRun
	for _, size := range cfg.ValueSizes {
		for i, sys := range []System{cfg.Etcd, cfg.Cairn} {
			r := soakOne(ctx, cfg, sys, size, cfg.BasePort+10*i)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "soak %s %s: %.0f puts/s, peak RSS %.0f MB %s\n", sys.Name, sizeName(size), r.PutsPerS, mb(r.PeakRSSBytes), r.Failure)
			}
			out = append(out, r)
			if ctx.Err() != nil {
				return out
			}
		}
	}
	return out
}

// soakQuotaBytes is both systems' --quota-backend-bytes in a soak.
const soakQuotaBytes = 16 << 30

func soakOne(ctx context.Context, cfg SoakConfig, sys System, size, port int) SoakRun {
	snapshotCount := min(10000, max(100, cfg.LogBytesMax/size))
	r := SoakRun{System: sys.Name, ValueBytes: size, SnapshotCount: snapshotCount}
	sys.ExtraFlags = append(sys.ExtraFlags, "--snapshot-count", strconv.Itoa(snapshotCount),
		"--snapshot-catchup-entries", strconv.Itoa(snapshotCount/2))
	// The same quota for both: the soak measures memory, and the default
	// 2 GiB is near what 10-20 s of history takes at these rates (etcd's
	// database reached 1,984 MiB with 20 KiB values at 4,000 puts/s,
	// cairn's 2.3 GiB at its peaks), or below it with 1 MiB values.
	sys.ExtraFlags = append(sys.ExtraFlags, "--quota-backend-bytes", strconv.FormatInt(soakQuotaBytes, 10))
	if cfg.DropCaches {
		if err := DropPageCache(); err != nil {
			r.Failure = err.Error()
			return r
		}
	}
	cl, err := StartCluster(ctx, sys, 1, cfg.WorkDir, port)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer func() {
		cl.Stop()
		for _, d := range cl.dataDirs {
			os.RemoveAll(d) // the 1 MiB soak writes GBs
		}
	}()
	clis, err := workload.Dial(cl.Endpoints, cfg.Conns)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer workload.CloseAll(clis)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.RSSBytes = sampleRSS(runCtx, cl) }()
	go func() { defer wg.Done(); compactLoop(runCtx, clis[0], cfg.CompactEvery) }()
	res, err := load.Run(ctx, load.Config{Name: "soak-" + sizeName(size), Clients: cfg.Clients, Duration: cfg.Duration},
		func(worker int) load.Op { return soakPut(clis[worker%len(clis)], worker, cfg.Keys, size) })
	stop()
	wg.Wait()
	if err == nil {
		err = res.Valid()
	}
	if err != nil {
		r.Failure = err.Error()
	}
	r.Puts, r.PutsPerS, r.P99MS = res.Ops, res.Throughput, res.Latency.P99MS
	if peak, err := cl.PeakRSSBytes(); err == nil {
		r.PeakRSSBytes = peak[0]
	}
	if len(r.RSSBytes) < 2 && r.Failure == "" {
		r.Failure = "fewer than 2 RSS samples"
	}
	return r
}

// soakPut puts one value of size bytes to a random one of keyCount keys;
// every worker its own sequence of keys.
func soakPut(cli *clientv3.Client, worker, keyCount, size int) load.Op {
	value := string(keys.Value(size))
	next := uint64(worker)*0x9e3779b97f4a7c15 + 1
	return func(ctx context.Context) error {
		next = next*6364136223846793005 + 1442695040888963407
		_, err := cli.Put(ctx, "soak/"+strconv.Itoa(int(next>>33)%keyCount), value)
		return err
	}
}

// sampleRSS records the member's VmRSS every second until ctx ends.
func sampleRSS(ctx context.Context, cl *Cluster) []int64 {
	var samples []int64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return samples
		case <-t.C:
			if rss, err := cl.RSSBytes(); err == nil {
				samples = append(samples, rss[0])
			}
		}
	}
}

// compactLoop compacts, every period, to the revision the previous round
// saw, keeping one period of history.
func compactLoop(ctx context.Context, cli *clientv3.Client, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := cli.Get(ctx, "soak/", clientv3.WithCountOnly())
		if err != nil {
			continue
		}
		if last > 0 {
			cli.Compact(ctx, last) // a failure only means more history is kept
		}
		last = resp.Header.Revision
	}
}

func sizeName(b int) string {
	switch {
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d B", b)
}

// SoakTable is the soak's summary in markdown.
func SoakTable(runs []SoakRun) string {
	var b strings.Builder
	b.WriteString("| value | system | puts/s | p99 ms | peak RSS MB | max RSS 1st half MB | max RSS 2nd half MB | --snapshot-count |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range runs {
		if r.Failure != "" || len(r.RSSBytes) < 2 {
			fmt.Fprintf(&b, "| %s | %s | failed: %s | | | | | |\n", sizeName(r.ValueBytes), r.System, r.Failure)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.1f | %.0f | %.0f | %.0f | %d |\n", sizeName(r.ValueBytes), r.System, r.PutsPerS, r.P99MS,
			mb(r.PeakRSSBytes), mb(r.FirstHalfMaxBytes()), mb(r.SecondHalfMaxBytes()), r.SnapshotCount)
	}
	return b.String()
}

// SoakChart draws each value size's RSS curves, etcd's and cairn's, with
// cairn's memory budget as a dashed line.
func SoakChart(title string, runs []SoakRun, budgetMiB int) string {
	var panels []chart.LinePanel
	for _, r := range runs {
		if len(panels) == 0 || panels[len(panels)-1].Title != sizeName(r.ValueBytes)+" values" {
			panels = append(panels, chart.LinePanel{Title: sizeName(r.ValueBytes) + " values", XUnit: "s", YUnit: "RSS MiB"})
		}
		p := &panels[len(panels)-1]
		values := make([]float64, len(r.RSSBytes))
		for i, v := range r.RSSBytes {
			values[i] = mb(v)
		}
		color := "#888"
		if r.System == "cairn" {
			color = "#06c"
		}
		p.Lines = append(p.Lines, chart.Line{Label: fmt.Sprintf("%s (%.0f puts/s)", r.System, r.PutsPerS), Values: values, Color: color})
	}
	for i := range panels {
		n := 0
		for _, l := range panels[i].Lines {
			n = max(n, len(l.Values))
		}
		budget := make([]float64, n)
		for j := range budget {
			budget[j] = float64(budgetMiB)
		}
		panels[i].Lines = append(panels[i].Lines, chart.Line{Label: fmt.Sprintf("cairn budget %d MiB", budgetMiB), Values: budget, Color: "#c00", Dashed: true})
	}
	return chart.Lines(title, panels)
}
