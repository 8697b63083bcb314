package compare

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

// Case is one line of the comparison: a workload and how it is configured.
type Case struct {
	Name     string // label in the table, e.g. "range-s"
	Workload string
	Describe string // one line for the doc
	Tune     func(o *workload.Options)
}

// Cases are the comparison's lines, in order.
var Cases = []Case{
	{"put", "put", "Put, random keys over 100,000, 16 B keys, 256 B values", func(o *workload.Options) { o.KeyCount = 100000 }},
	{"range-l", "range", "linearizable Get of one of 10,000 preloaded keys", func(o *workload.Options) {}},
	{"range-s", "range", "serializable Get of one of 10,000 preloaded keys", func(o *workload.Options) { o.Serializable = true }},
	{"scan-l", "range", "linearizable scan of 100 keys from a random one of 10,000", func(o *workload.Options) { o.Scan = true }},
	{"txn-cas", "txn", "Kubernetes CAS: If(mod_revision == cached) Then(Put) Else(Get), 10,000 keys", func(o *workload.Options) {}},
	{"watch", "watch", "100 watchers of one key, clients put to it; events/s and put-to-event latency", func(o *workload.Options) { o.Watchers = 100 }},
	{"watch-1000", "watch", "1,000 watchers of one key, clients put to it: fan-out throughput", func(o *workload.Options) { o.Watchers = 1000 }},
	{"lease", "lease", "Grant + KeepAliveOnce + Revoke per operation", func(o *workload.Options) {}},
	{"put-tls", "put", "put over https: both ports TLS with self-signed certificates (--auto-tls --peer-auto-tls)", func(o *workload.Options) { o.KeyCount = 100000; o.TLS = AutoTLSClient }},
	{"range-tls", "range", "range-l over https: both ports TLS with self-signed certificates (--auto-tls --peer-auto-tls)", func(o *workload.Options) { o.TLS = AutoTLSClient }},
	{"put-auth", "put", "put with auth enabled, as the root user: simple tokens (--auth-token simple)", func(o *workload.Options) { o.KeyCount = 100000; asRoot(o) }},
	{"range-auth", "range", "range-l with auth enabled, as the root user: simple tokens (--auth-token simple)", asRoot},
	{"put-jwt", "put", "put-auth with JSON Web Tokens (--auth-token jwt,sign-method=RS256, 2048-bit key)", func(o *workload.Options) { o.KeyCount = 100000; asRoot(o) }},
	{"range-jwt", "range", "range-auth with JSON Web Tokens (--auth-token jwt,sign-method=RS256, 2048-bit key)", asRoot},
	{"k8s", "k8s", "mix over 5,000 objects in 10 namespaces: 50% get, 35% CAS update, 14% namespace list, 1% full list (pages of 100), 10 prefix watchers", func(o *workload.Options) { o.KeyCount = 5000 }},
}

// Config is a comparison run.
type Config struct {
	Etcd, Cairn System
	Sizes       []int         // cluster sizes (default 1 and 3)
	Cases       []string      // case names to run (default all)
	Rounds      int           // rounds per case (default 3)
	Duration    time.Duration // load per run (default 10 s)
	Clients     int           // default 100
	Conns       int           // default 10
	BasePort    int           // first loopback port (default 24000)
	WorkDir     string        // data directories and logs
	Quick       bool          // recorded in the results: a short, noisy run
	// DropCaches writes back and drops the kernel's page cache before each
	// run (root only). Every run writes gigabytes; once the cache fills
	// the machine's memory, the next run's writes pay for reclaiming it,
	// charged to whichever system runs then: on a 2-core machine this
	// roughly doubled both systems' CPU per 100 KiB put.
	DropCaches bool
	Progress   io.Writer // per-run lines and load progress; nil for none
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if len(c.Sizes) == 0 {
		c.Sizes = []int{1, 3}
	}
	if len(c.Cases) == 0 {
		for _, k := range Cases {
			c.Cases = append(c.Cases, k.Name)
		}
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Clients == 0 {
		c.Clients = 100
	}
	if c.Conns == 0 {
		c.Conns = 10
	}
	if c.BasePort == 0 {
		c.BasePort = 24000
	}
}

// Run is one load against one fresh cluster.
type Run struct {
	System       string      `json:"system"`
	Size         int         `json:"size"`
	Case         string      `json:"case"`
	Round        int         `json:"round"`
	Result       load.Result `json:"result"`
	Failure      string      `json:"failure,omitempty"` // the run could not be made
	PeakRSSBytes []int64     `json:"peak_rss_bytes"`    // per member
	DiskBytes    []int64     `json:"disk_bytes"`        // per member
}

// Invalid says why a run's figures do not count ("" when they do).
func (r *Run) Invalid() string {
	if r.Failure != "" {
		return r.Failure
	}
	if err := r.Result.Valid(); err != nil {
		return err.Error()
	}
	return ""
}

func findCase(name string) (Case, error) {
	for _, k := range Cases {
		if k.Name == name {
			return k, nil
		}
	}
	return Case{}, fmt.Errorf("unknown case %q", name)
}

// Compare runs every case against both systems and returns every run.
func Compare(ctx context.Context, cfg Config) ([]Run, error) {
	cfg.EnsureDefaults()
	var cases []Case
	for _, n := range cfg.Cases {
		k, err := findCase(n)
		if err != nil {
			return nil, err
		}
		cases = append(cases, k)
	}
	var runs []Run
	port := cfg.BasePort
	for _, size := range cfg.Sizes {
		for round := 1; round <= cfg.Rounds; round++ {
			for ci, k := range cases {
				order := []System{cfg.Etcd, cfg.Cairn}
				if (round+ci)%2 == 0 {
					order[0], order[1] = order[1], order[0]
				}
				for _, sys := range order {
					if ctx.Err() != nil {
						return runs, ctx.Err()
					}
					// A new port range per run: no reuse of a socket in TIME_WAIT.
					port = nextPort(port, cfg.BasePort, size)
					r := runOne(ctx, cfg, sys, size, k, round, port)
					logRun(cfg.Progress, &r)
					runs = append(runs, r)
				}
			}
		}
	}
	return runs, nil
}

// DropPageCache writes back dirty pages and drops the kernel's clean page
// cache (Config.DropCaches). It needs root.
func DropPageCache() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		return fmt.Errorf("drop the page cache (root only): %w", err)
	}
	return nil
}

// portSpan is the number of ports Compare cycles through from BasePort.
const portSpan = 400

func nextPort(cur, base, size int) int {
	next := cur + 2*size
	if next+2*size > base+portSpan {
		return base
	}
	return next
}

func runOne(ctx context.Context, cfg Config, sys System, size int, k Case, round, port int) Run {
	r := Run{System: sys.Name, Size: size, Case: k.Name, Round: round}
	o := workload.Options{Conns: cfg.Conns}
	o.Load = load.Config{Clients: cfg.Clients, Duration: cfg.Duration, Progress: cfg.Progress}
	k.Tune(&o)
	// A case that dials with TLS runs against a cluster serving it.
	sys.TLS = o.TLS != nil
	tokens := authCaseTokens[k.Name]
	if tokens != "" {
		flags, err := authFlags(tokens, cfg.WorkDir)
		if err != nil {
			r.Failure = err.Error()
			return r
		}
		sys.ExtraFlags = append(append([]string(nil), sys.ExtraFlags...), flags...)
	}
	if cfg.DropCaches {
		if err := DropPageCache(); err != nil {
			r.Failure = err.Error()
			return r
		}
	}
	cl, err := StartCluster(ctx, sys, size, cfg.WorkDir, port)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer cl.Stop()
	if tokens != "" {
		if err := cl.enableAuth(ctx); err != nil {
			r.Failure = err.Error()
			return r
		}
	}
	o.Endpoints = cl.Endpoints
	res, err := workload.Run(ctx, k.Workload, o)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	res.Workload = k.Name
	r.Result = res
	if r.PeakRSSBytes, err = cl.PeakRSSBytes(); err != nil {
		r.Failure = err.Error()
	}
	if r.DiskBytes, err = cl.DiskBytes(); err != nil {
		r.Failure = err.Error()
	}
	return r
}

func logRun(w io.Writer, r *Run) {
	if w == nil {
		return
	}
	status := "ok"
	if bad := r.Invalid(); bad != "" {
		status = "NO FIGURE: " + bad
	}
	fmt.Fprintf(w, "%-5s %d member(s) %-8s round %d: %9.0f %s/s  p99 %7.2f ms  rss %4.0f MB  disk %5.0f MB  %s\n",
		r.System, r.Size, r.Case, r.Round, r.Result.HeadlineRate, r.Result.HeadlineUnit, r.Result.HeadlineLatency.P99MS,
		mb(maxOf(r.PeakRSSBytes)), mb(sum(r.DiskBytes)), status)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// Figure is one system's median over rounds for one case and size.
type Figure struct {
	Rate         float64 `json:"per_second"`
	Unit         string  `json:"unit"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"` // the largest member's, max over rounds
	DiskBytes    int64   `json:"disk_bytes"`     // all members, median over rounds
	Rounds       int     `json:"rounds"`
	// Invalid, when set, says why there is no figure.
	Invalid string `json:"invalid,omitempty"`
}

// Row is one line of the table.
type Row struct {
	Case  string `json:"case"`
	Size  int    `json:"size"`
	Etcd  Figure `json:"etcd"`
	Cairn Figure `json:"cairn"`
	// RateRatio and P99Ratio are cairn/etcd, 0 when either side is invalid.
	RateRatio float64 `json:"rate_ratio"`
	P99Ratio  float64 `json:"p99_ratio"`
}

// Summarize reduces runs to rows, in case order then size.
func Summarize(runs []Run) []Row {
	type key struct {
		kase string
		size int
	}
	group := map[key][]Run{}
	var keysInOrder []key
	for _, r := range runs {
		k := key{r.Case, r.Size}
		if _, ok := group[k]; !ok {
			keysInOrder = append(keysInOrder, k)
		}
		group[k] = append(group[k], r)
	}
	caseIndex := map[string]int{}
	for i, c := range Cases {
		caseIndex[c.Name] = i
	}
	sort.SliceStable(keysInOrder, func(i, j int) bool {
		a, b := keysInOrder[i], keysInOrder[j]
		if a.size != b.size {
			return a.size < b.size
		}
		return caseIndex[a.kase] < caseIndex[b.kase]
	})
	var rows []Row
	for _, k := range keysInOrder {
		row := Row{Case: k.kase, Size: k.size, Etcd: figure(group[k], "etcd"), Cairn: figure(group[k], "cairn")}
		if row.Etcd.Invalid == "" && row.Cairn.Invalid == "" && row.Etcd.Rate > 0 && row.Etcd.P99MS > 0 {
			row.RateRatio = row.Cairn.Rate / row.Etcd.Rate
			row.P99Ratio = row.Cairn.P99MS / row.Etcd.P99MS
		}
		rows = append(rows, row)
	}
	return rows
}

// figure is the median over a system's runs; one invalid run invalidates it.
func figure(runs []Run, system string) Figure {
	var f Figure
	var rates, p50s, p99s []float64
	var disks []int64
	for _, r := range runs {
		if r.System != system {
			continue
		}
		f.Rounds++
		if bad := r.Invalid(); bad != "" {
			if f.Invalid == "" {
				f.Invalid = fmt.Sprintf("round %d: %s", r.Round, bad)
			}
			continue
		}
		f.Unit = r.Result.HeadlineUnit
		rates = append(rates, r.Result.HeadlineRate)
		p50s = append(p50s, r.Result.HeadlineLatency.P50MS)
		p99s = append(p99s, r.Result.HeadlineLatency.P99MS)
		f.PeakRSSBytes = max(f.PeakRSSBytes, maxOf(r.PeakRSSBytes))
		disks = append(disks, sum(r.DiskBytes))
	}
	if f.Rounds == 0 {
		f.Invalid = "not run"
	}
	if f.Invalid != "" {
		return f
	}
	f.Rate, f.P50MS, f.P99MS = median(rates), median(p50s), median(p99s)
	sort.Slice(disks, func(i, j int) bool { return disks[i] < disks[j] })
	f.DiskBytes = disks[(len(disks)-1)/2]
	return f
}

// median of xs (the lower middle for an even count); 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}

// AnyInvalid reports whether some row lacks a figure for a reason other than
// an unsupported workload (which is a known gap, not a failed run).
func AnyInvalid(rows []Row) bool {
	for _, r := range rows {
		for _, f := range []Figure{r.Etcd, r.Cairn} {
			if f.Invalid != "" && !isNotSupported(f.Invalid) {
				return true
			}
		}
	}
	return false
}

func isNotSupported(s string) bool {
	return strings.Contains(s, "not supported")
}
