// Command cairnchaos runs one seeded chaos schedule against a cluster of
// real cairn processes, or of the reference etcd, and prints one summary
// line; `make chaos` is its front door. Exit status: 0 when every check
// passed, 1 when one failed, 2 when the run could not be performed.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cairn-db/cairn/chaos"
	"github.com/cairn-db/cairn/chaos/cluster"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("cairnchaos", flag.ContinueOnError)
	target := fs.String("target", "cairn", "program under test: cairn or etcd")
	cairnBin := fs.String("cairn", os.Getenv("CAIRN_BIN"), "path of the cairn binary (default $CAIRN_BIN)")
	etcdBin := fs.String("etcd", os.Getenv("ETCD_BIN"), "path of the reference etcd binary (default $ETCD_BIN)")
	members := fs.Int("members", 3, "cluster size (3 or 5)")
	duration := fs.Duration("duration", 5*time.Minute, "how long faults are injected")
	seed := fs.Uint64("seed", 0, "seed of the fault schedule and workload (0: pick one from the clock)")
	faults := fs.String("faults", "", "comma-separated faults to draw from (default all: "+strings.Join(chaos.AllFaults, ",")+")")
	reportRoot := fs.String("report", "chaos-out", "folder under which the run's report folder is written")
	opsPerSecond := fs.Int("ops-per-second", 0, "workload rate, all clients together (default 150)")
	checkTimeout := fs.Duration("check-timeout", 0, "bound of porcupine's search (default 3m, or a quarter of -duration if longer)")
	quiet := fs.Bool("quiet", false, "print only the summary line")
	failpoints := fs.String("failpoints", "", "planted bugs for a cairn built with -tags chaosfailpoints ($CAIRN_FAILPOINTS of its members): read-without-read-index, ack-before-durable")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	cfg := chaos.Config{
		Target: cluster.Kind(*target), Members: *members, Duration: *duration, Seed: *seed,
		ReportRoot: *reportRoot, OpsPerSecond: *opsPerSecond, CheckTimeout: *checkTimeout,
		Rerun: fmt.Sprintf("make chaos TARGET=%s MEMBERS=%d DURATION=%s SEED=%d", *target, *members, *duration, *seed),
	}
	switch cfg.Target {
	case cluster.KindCairn:
		cfg.Bin = *cairnBin
	case cluster.KindEtcd:
		cfg.Bin = *etcdBin
	default:
		fmt.Fprintf(os.Stderr, "cairnchaos: -target %q is not cairn or etcd\n", *target)
		return 2
	}
	if *failpoints != "" {
		cfg.Env = append(cfg.Env, "CAIRN_FAILPOINTS="+*failpoints)
	}
	if *faults != "" {
		cfg.Faults = strings.Split(*faults, ",")
	}
	if !*quiet {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	res, err := chaos.Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnchaos:", err)
		return 2
	}
	fmt.Println(res.Summary())
	fmt.Fprintf(os.Stderr, "report: %s\n", res.ReportDir)
	if !res.Passed() {
		fmt.Fprintf(os.Stderr, "FAILED; rerun this schedule (real processes: not exactly reproducible): %s\n", cfg.Rerun)
		return 1
	}
	return 0
}
