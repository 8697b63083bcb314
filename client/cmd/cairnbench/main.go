package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/client/bench/compare"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// common are the flags every subcommand takes.
type common struct {
	etcd, cairn, repo, results, doc, command, workDir string
	quick                                             bool
	port                                              int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.etcd, "etcd", ".ref/bin/etcd", "the reference etcd binary")
	fs.StringVar(&c.cairn, "cairn", "bin/cairn", "the cairn binary")
	fs.StringVar(&c.repo, "repo", ".", "the repository root (for git describe)")
	fs.StringVar(&c.results, "results", "docs/bench", "directory of the JSON results and the chart")
	fs.StringVar(&c.doc, "doc", "docs/benchmarks.md", "the markdown file to rewrite")
	fs.StringVar(&c.command, "command", "", "the command to print in the doc (default: this command line)")
	fs.StringVar(&c.workDir, "workdir", "", "data directories and server logs (default: a fresh temporary directory, removed after)")
	fs.BoolVar(&c.quick, "quick", false, "label the results as a QUICK (short, noisy) run")
	fs.IntVar(&c.port, "port", 24000, "first loopback port to use")
}

func (c *common) systems(etcdExtra ...string) (compare.System, compare.System) {
	return compare.System{Name: "etcd", Bin: c.etcd, ExtraFlags: etcdExtra}, compare.System{Name: "cairn", Bin: c.cairn}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: cairnbench compare|large|soak|defrag|etcdtool|render [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("cairnbench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	switch args[0] {
	case "compare":
		return runCompare(ctx, fs, &c, args[1:], stdout, stderr)
	case "large":
		return runLarge(ctx, fs, &c, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, fs, &c, args[1:], stdout, stderr)
	case "defrag":
		return runDefrag(ctx, fs, &c, args[1:], stdout, stderr)
	case "etcdtool":
		return runEtcdTool(fs, &c, args[1:], stdout, stderr)
	case "render":
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		return render(&c, stderr)
	}
	fmt.Fprintf(stderr, "cairnbench: unknown command %q\n", args[0])
	return 2
}

func (c *common) command0(args []string) string {
	if c.command != "" {
		return c.command
	}
	return "cairnbench " + strings.Join(args, " ")
}

// workdir returns the directory for server data and a cleanup.
func (c *common) workdir() (string, func(), error) {
	if c.workDir != "" {
		return c.workDir, func() {}, os.MkdirAll(c.workDir, 0o755)
	}
	d, err := os.MkdirTemp("", "cairnbench-")
	return d, func() { os.RemoveAll(d) }, err
}

func runCompare(ctx context.Context, fs *flag.FlagSet, c *common, args []string, stdout, stderr io.Writer) int {
	cfg := compare.Config{}
	sizes := fs.String("sizes", "1,3", "cluster sizes")
	cases := fs.String("cases", "", "comma-separated cases (default all)")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds per case and system")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "load per run")
	fs.IntVar(&cfg.Clients, "clients", 100, "concurrent clients")
	fs.IntVar(&cfg.Conns, "conns", 10, "connections")
	fs.BoolVar(&cfg.DropCaches, "drop-caches", false, "drop the kernel's page cache before each run (root only)")
	if fs.Parse(args) != nil {
		return 2
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "cairnbench: -sizes %q\n", *sizes)
			return 2
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if *cases != "" {
		cfg.Cases = strings.Split(*cases, ",")
	}
	dir, cleanup, err := c.workdir()
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	defer cleanup()
	cfg.Etcd, cfg.Cairn = c.systems()
	cfg.BasePort, cfg.WorkDir, cfg.Quick, cfg.Progress = c.port, dir, c.quick, stderr
	runs, err := compare.Compare(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench: stopped:", err)
		return 1
	}
	rows := compare.Summarize(runs)
	cfg.EnsureDefaults()
	rep := compare.Report{
		Date: compare.Now(), Command: c.command0(append([]string{"compare"}, args...)), Quick: c.quick,
		Machine: compare.DescribeMachine(c.etcd, c.repo), Rounds: cfg.Rounds, Duration: cfg.Duration.String(),
		Clients: cfg.Clients, Conns: cfg.Conns, Rows: rows, Runs: runs,
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, compare.Table(rows))
	if f := compare.Failures(rows); f != "" {
		fmt.Fprint(stdout, "\n¹ no figure, no ratio:\n"+f)
	}
	if err := compare.SaveJSON(filepath.Join(c.results, "results.json"), rep); err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	if code := render(c, stderr); code != 0 {
		return code
	}
	if compare.AnyInvalid(rows) {
		fmt.Fprintln(stderr, "cairnbench: some cases have no figure because a run failed; see the table")
		return 1
	}
	return 0
}

func runLarge(ctx context.Context, fs *flag.FlagSet, c *common, args []string, stdout, stderr io.Writer) int {
	cfg := compare.LargeConfig{}
	fs.IntVar(&cfg.N, "n", 1000000, "keys to load")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "each read measurement")
	fs.IntVar(&cfg.Clients, "clients", 50, "concurrent clients of the reads")
	if fs.Parse(args) != nil {
		return 2
	}
	dir, cleanup, err := c.workdir()
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	defer cleanup()
	// etcd's default 2 GiB backend quota would stop a 10-million-key load.
	cfg.Etcd, cfg.Cairn = c.systems("--quota-backend-bytes", strconv.FormatInt(16<<30, 10))
	cfg.BasePort, cfg.WorkDir, cfg.Quick, cfg.Progress = c.port, dir, c.quick, stderr
	runs := compare.Large(ctx, cfg)
	rep := compare.LargeReport{Date: compare.Now(), Command: c.command0(append([]string{"large"}, args...)), Quick: c.quick,
		Machine: compare.DescribeMachine(c.etcd, c.repo), Runs: runs}
	fmt.Fprint(stdout, compare.LargeTable(runs))
	var failed []string
	for _, r := range runs {
		if r.Failure != "" {
			failed = append(failed, fmt.Sprintf("%s failed: %s", r.System, r.Failure))
		}
	}
	return saveAndRender(c, stderr, "large.json", rep, failed)
}

func runSoak(ctx context.Context, fs *flag.FlagSet, c *common, args []string, stdout, stderr io.Writer) int {
	cfg := compare.SoakConfig{}
	sizes := fs.String("sizes", "1024,20480,102400,1048576", "value sizes in bytes, one soak each")
	budgetMiB := fs.Int("memory-budget-mib", 320, "cairn's --memory-budget, in MiB")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "puts per value size and system")
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent clients")
	fs.IntVar(&cfg.Keys, "keys", 50, "key space")
	fs.BoolVar(&cfg.DropCaches, "drop-caches", false, "drop the kernel's page cache before each soak (root only)")
	if fs.Parse(args) != nil {
		return 2
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "cairnbench: -sizes %q\n", *sizes)
			return 2
		}
		cfg.ValueSizes = append(cfg.ValueSizes, n)
	}
	dir, cleanup, err := c.workdir()
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	defer cleanup()
	cfg.Etcd, cfg.Cairn = c.systems()
	cfg.Cairn.ExtraFlags = append(cfg.Cairn.ExtraFlags, "--memory-budget", fmt.Sprintf("%dMiB", *budgetMiB))
	cfg.BasePort, cfg.WorkDir, cfg.Progress = c.port, dir, stderr
	runs := compare.Soak(ctx, cfg)
	rep := compare.SoakReport{Date: compare.Now(), Command: c.command0(append([]string{"soak"}, args...)),
		Machine: compare.DescribeMachine(c.etcd, c.repo), Duration: cfg.Duration.String(), Clients: cfg.Clients, Keys: cfg.Keys,
		MemoryBudgetMiB: *budgetMiB, Runs: runs}
	fmt.Fprint(stdout, compare.SoakTable(runs))
	var failed []string
	for _, r := range runs {
		if r.Failure != "" {
			failed = append(failed, fmt.Sprintf("%s %d-byte soak failed: %s", r.System, r.ValueBytes, r.Failure))
		}
	}
	return saveAndRender(c, stderr, "soak.json", rep, failed)
}

func runDefrag(ctx context.Context, fs *flag.FlagSet, c *common, args []string, stdout, stderr io.Writer) int {
	cfg := compare.DefragConfig{}
	fs.IntVar(&cfg.Keys, "keys", 1000000, "keys to load")
	fs.IntVar(&cfg.Readers, "readers", 8, "concurrent readers of the load")
	fs.IntVar(&cfg.Writers, "writers", 8, "concurrent writers of the load")
	fs.DurationVar(&cfg.Baseline, "baseline", 10*time.Second, "load before the defragment")
	fs.DurationVar(&cfg.DefragTimeout, "defrag-timeout", 10*time.Minute, "bound on the defragment (and each operation)")
	if fs.Parse(args) != nil {
		return 2
	}
	if cfg.Keys < 1 {
		fmt.Fprintf(stderr, "cairnbench: -keys %d: want at least 1\n", cfg.Keys)
		return 2
	}
	dir, cleanup, err := c.workdir()
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	defer cleanup()
	// As in the large-data scenario: etcd's default 2 GiB quota would stop a large load.
	cfg.Etcd, cfg.Cairn = c.systems("--quota-backend-bytes", strconv.FormatInt(16<<30, 10))
	cfg.BasePort, cfg.WorkDir, cfg.Progress = c.port, dir, stderr
	runs := compare.Defrag(ctx, cfg)
	rep := compare.DefragReport{Date: compare.Now(), Command: c.command0(append([]string{"defrag"}, args...)),
		Machine: compare.DescribeMachine(c.etcd, c.repo), Keys: cfg.Keys, Readers: cfg.Readers, Writers: cfg.Writers,
		Baseline: cfg.Baseline.String(), Runs: runs}
	fmt.Fprint(stdout, compare.DefragTable(runs))
	var failed []string
	for _, r := range runs {
		if r.Failure != "" {
			failed = append(failed, fmt.Sprintf("%s defragment run failed: %s", r.System, r.Failure))
		}
	}
	return saveAndRender(c, stderr, "defrag.json", rep, failed)
}

// runEtcdTool records a run of make bench-etcdtool: it reads the lines
// tools/bench/compare.sh appended to -record and rewrites the doc.
func runEtcdTool(fs *flag.FlagSet, c *common, args []string, stdout, stderr io.Writer) int {
	record := fs.String("record", "bin/bench/etcdtool.record", "the runs compare.sh recorded (its RECORD file)")
	if fs.Parse(args) != nil {
		return 2
	}
	f, err := os.Open(*record)
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	defer f.Close()
	workloads, err := compare.ParseEtcdToolRecord(f)
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	rep := compare.EtcdToolReport{Date: compare.Now(), Command: c.command0(append([]string{"etcdtool"}, args...)),
		Machine: compare.DescribeMachine(c.etcd, c.repo), Workloads: workloads}
	fmt.Fprint(stdout, compare.EtcdToolTable(workloads))
	return saveAndRender(c, stderr, "etcdtool.json", rep, nil)
}

// saveAndRender writes a scenario's report as name under -results,
// rewrites the doc and the chart, and fails if any run failed (failed
// says which and why).
func saveAndRender(c *common, stderr io.Writer, name string, rep any, failed []string) int {
	if err := compare.SaveJSON(filepath.Join(c.results, name), rep); err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	if code := render(c, stderr); code != 0 {
		return code
	}
	for _, f := range failed {
		fmt.Fprintln(stderr, "cairnbench:", f)
	}
	if len(failed) > 0 {
		return 1
	}
	return 0
}

// loadReports reads every scenario's saved report under dir; a scenario
// not run yet is nil.
func loadReports(dir string) (compare.Reports, error) {
	var r compare.Reports
	var errs [5]error
	r.Main, errs[0] = loadReport[compare.Report](dir, "results.json")
	r.Large, errs[1] = loadReport[compare.LargeReport](dir, "large.json")
	r.Soak, errs[2] = loadReport[compare.SoakReport](dir, "soak.json")
	r.Defrag, errs[3] = loadReport[compare.DefragReport](dir, "defrag.json")
	r.EtcdTool, errs[4] = loadReport[compare.EtcdToolReport](dir, "etcdtool.json")
	return r, errors.Join(errs[:]...)
}

// loadReport reads one saved report; nil when it was not saved yet.
func loadReport[T any](dir, name string) (*T, error) {
	var v T
	ok, err := compare.LoadJSON(filepath.Join(dir, name), &v)
	if err != nil || !ok {
		return nil, err
	}
	return &v, nil
}

// render rewrites the doc and the chart from the saved JSON.
func render(c *common, stderr io.Writer) int {
	r, err := loadReports(c.results)
	if err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	main, soak := r.Main, r.Soak
	chartRel, soakChartRel := "bench/chart.svg", "bench/soak.svg"
	if main != nil {
		title := fmt.Sprintf("cairn vs etcd, %s", main.Date)
		if main.Quick {
			title += " (QUICK run: noisy)"
		}
		if err := os.WriteFile(filepath.Join(c.results, "chart.svg"), []byte(compare.Chart(title, main.Rows)), 0o644); err != nil {
			fmt.Fprintln(stderr, "cairnbench:", err)
			return 1
		}
		if rel, err := filepath.Rel(filepath.Dir(c.doc), filepath.Join(c.results, "chart.svg")); err == nil {
			chartRel = rel
		}
	}
	if soak != nil {
		chart := compare.SoakChart(fmt.Sprintf("RSS under sustained puts, cairn vs etcd, %s", soak.Date), soak.Runs, soak.MemoryBudgetMiB)
		if err := os.WriteFile(filepath.Join(c.results, "soak.svg"), []byte(chart), 0o644); err != nil {
			fmt.Fprintln(stderr, "cairnbench:", err)
			return 1
		}
		if rel, err := filepath.Rel(filepath.Dir(c.doc), filepath.Join(c.results, "soak.svg")); err == nil {
			soakChartRel = rel
		}
	}
	if err := os.WriteFile(c.doc, []byte(compare.RenderDoc(r, chartRel, soakChartRel)), 0o644); err != nil {
		fmt.Fprintln(stderr, "cairnbench:", err)
		return 1
	}
	fmt.Fprintf(stderr, "cairnbench: wrote %s\n", c.doc)
	return 0
}
