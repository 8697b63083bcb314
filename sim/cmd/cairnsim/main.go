// Command cairnsim runs cairn clusters in the deterministic simulator.
//
//	cairnsim -seed 42          run one seed; on failure write a report
//	cairnsim -seed 42 -v       the same, printing the readable trace
//	cairnsim -seeds 1000       sweep seeds 1..1000 on every core
//	cairnsim -seeds 500-999    sweep a range
//
// A failing seed prints the one command that reproduces it. A sweep runs
// seeds in worker processes; a worker that dies (a panic outside the
// simulation's events, a fatal runtime error, a kill by the sweep's
// watchdog) fails the seed it was running, a new worker takes the rest, and
// the summary line is always printed.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/sim"
)

func main() {
	os.Exit(run())
}

type flags struct {
	seed     uint64
	seeds    string
	verbose  bool
	outDir   string
	workers  int
	duration time.Duration
	noFaults bool
	auth     bool
	// authToken is -auth-token: the auth workload's token kind, drawn
	// from each seed when empty.
	authToken string
	bug       string
	worker    bool
	profile   string
	faults    string
	limits    sim.Limits
	// workerKillAfter is the wall time after which the sweep kills a
	// worker still running one seed: the backstop for a seed stuck inside
	// one event, where the run's own WallTimeMax cannot look.
	workerKillAfter time.Duration
}

func parseFlags() flags {
	var f flags
	flag.Uint64Var(&f.seed, "seed", 0, "run this one seed")
	flag.StringVar(&f.seeds, "seeds", "", "sweep seeds: a count K (1..K) or a range A-B")
	flag.BoolVar(&f.verbose, "v", false, "print the readable trace")
	flag.StringVar(&f.outDir, "out", "sim-out", "where failing runs write trace, history and visualisation")
	flag.IntVar(&f.workers, "workers", runtime.NumCPU(), "worker processes for a sweep")
	flag.DurationVar(&f.duration, "duration", 60*time.Second, "virtual time of client load and faults per run")
	flag.BoolVar(&f.noFaults, "no-faults", false, "turn the nemesis off")
	flag.BoolVar(&f.auth, "auth", false, "run the auth workload: users, roles and permissions changing under load")
	flag.StringVar(&f.authToken, "auth-token", "", "the auth workload's tokens: "+strings.Join(sim.AuthTokens, ", ")+" (default: drawn from each seed)")
	flag.StringVar(&f.bug, "plant", "", "plant a bug: "+sim.PlantedBugNames())
	flag.BoolVar(&f.worker, "worker", false, "internal: run the seeds given on stdin and print JSON results")
	flag.StringVar(&f.faults, "faults", "", "comma-separated fault kinds the nemesis may inject (default all): "+faultNames())
	flag.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of a single run to this file")
	flag.Int64Var(&f.limits.EventsMax, "events-max", 0, fmt.Sprintf("fail a run that executes more virtual events (0: %d per virtual second of the run and its checks)", sim.DefaultEventsPerVirtualSecondMax))
	flag.IntVar(&f.limits.QueuedEventsMax, "queued-events-max", 0, fmt.Sprintf("fail a run with more events queued at once (0: %d)", sim.DefaultQueuedEventsMax))
	flag.IntVar(&f.limits.MessagesInFlightMax, "messages-in-flight-max", 0, fmt.Sprintf("fail a run with more raft messages in flight at once (0: %d)", sim.DefaultMessagesInFlightMax))
	flag.Uint64Var(&f.limits.HeapBytesMax, "heap-bytes-max", 0, fmt.Sprintf("fail a run whose process has more heap in use (0: %d)", uint64(sim.DefaultHeapBytesMax)))
	flag.DurationVar(&f.limits.WallTimeMax, "wall-time-max", 0, fmt.Sprintf("fail a run that simulates for longer in wall time (0: %v per virtual second of the run and its checks)", sim.DefaultWallTimePerVirtualSecondMax))
	flag.DurationVar(&f.workerKillAfter, "worker-kill-after", 0, "kill a sweep's worker still on one seed after this wall time (0: the run's wall-time-max plus 90s)")
	flag.Parse()
	return f
}

func run() int {
	f := parseFlags()
	knobs, err := sim.PlantedBug(f.bug)
	if err == nil {
		err = sim.ValidateAuthToken(f.authToken)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim:", err)
		return 2
	}
	switch {
	case f.worker:
		return worker(f, knobs)
	case f.seeds != "":
		return sweep(f)
	default:
		return single(f, knobs)
	}
}

func faultNames() string {
	names := make([]string, len(sim.AllFaults))
	for i, k := range sim.AllFaults {
		names[i] = string(k)
	}
	return strings.Join(names, ",")
}

func options(f flags, seed uint64, knobs node.TestingKnobs) sim.Options {
	var kinds []sim.FaultKind
	if f.faults != "" {
		for _, k := range strings.Split(f.faults, ",") {
			kinds = append(kinds, sim.FaultKind(strings.TrimSpace(k)))
		}
	}
	return sim.Options{Seed: seed, DurationMicros: f.duration.Microseconds(), NoFaults: f.noFaults, Auth: f.auth, AuthToken: f.authToken, Faults: kinds, Knobs: knobs, Limits: f.limits}
}

func single(f flags, knobs node.TestingKnobs) int {
	opts := options(f, f.seed, knobs)
	if f.verbose {
		opts.Trace = os.Stdout
	}
	opts.KeepTrace = true
	if f.profile != "" {
		stop, err := startProfile(f.profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cairnsim:", err)
			return 2
		}
		defer stop()
	}
	res := sim.Run(opts)
	fmt.Printf("seed %d: %s  %s  trace %s (%d lines)  ops ok=%d unknown=%d failed=%d  simulated %.1fs in %v\n",
		f.seed, verdict(res), res.Options, res.TraceHash[:16], res.TraceLines,
		res.OpsAcknowledged, res.OpsUnknown, res.OpsFailed, float64(res.SimulatedMicros)/1e6, res.WallTime.Round(time.Millisecond))
	u := res.Usage
	fmt.Printf("  usage: events %d, peak queued events %d, peak messages in flight %d, heap in use up to %d MiB, wall time %v\n",
		u.Events, u.QueuedEventsPeak, u.MessagesInFlightPeak, u.HeapBytesPeak>>20, u.WallTime.Round(time.Millisecond))
	if res.Passed() {
		return 0
	}
	for _, failure := range res.Failures {
		fmt.Println("  FAIL:", failure)
	}
	dir := filepath.Join(f.outDir, fmt.Sprintf("seed-%d", f.seed))
	if err := writeReport(dir, res); err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim: write report:", err)
	} else {
		fmt.Printf("  report: %s (trace.txt, history.txt, porcupine HTML)\n", dir)
	}
	fmt.Printf("  reproduce: %s\n", reproduce(f, f.seed))
	return 1
}

func startProfile(path string) (func(), error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); out.Close() }, nil
}

func verdict(res *sim.Result) string {
	if res.Passed() {
		return "ok"
	}
	return "FAILED"
}

func reproduce(f flags, seed uint64) string {
	cmd := fmt.Sprintf("go run ./sim/cmd/cairnsim -seed %d", seed)
	if f.duration != 60*time.Second {
		cmd += " -duration " + f.duration.String()
	}
	if f.noFaults {
		cmd += " -no-faults"
	}
	if f.auth {
		cmd += " -auth"
	}
	if f.authToken != "" {
		cmd += " -auth-token " + f.authToken
	}
	if f.bug != "" {
		cmd += " -plant " + f.bug
	}
	if f.faults != "" {
		cmd += " -faults " + f.faults
	}
	return cmd + limitFlags(f.limits) + " -v"
}

// limitFlags renders the limits that differ from the defaults as flags.
func limitFlags(l sim.Limits) string {
	s := ""
	if l.EventsMax != 0 {
		s += fmt.Sprintf(" -events-max %d", l.EventsMax)
	}
	if l.QueuedEventsMax != 0 {
		s += fmt.Sprintf(" -queued-events-max %d", l.QueuedEventsMax)
	}
	if l.MessagesInFlightMax != 0 {
		s += fmt.Sprintf(" -messages-in-flight-max %d", l.MessagesInFlightMax)
	}
	if l.HeapBytesMax != 0 {
		s += fmt.Sprintf(" -heap-bytes-max %d", l.HeapBytesMax)
	}
	if l.WallTimeMax != 0 {
		s += " -wall-time-max " + l.WallTimeMax.String()
	}
	return s
}

func writeReport(dir string, res *sim.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "trace.txt"), []byte(res.Trace), 0o644); err != nil {
		return err
	}
	return res.Recorder.WriteReport(dir)
}

// seedRange parses -seeds: "K" is 1..K, "A-B" is A..B.
func seedRange(s string) (uint64, uint64, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.ParseUint(a, 10, 64)
		hi, err2 := strconv.ParseUint(b, 10, 64)
		if err1 != nil || err2 != nil || lo > hi {
			return 0, 0, fmt.Errorf("-seeds %q: want K or A-B", s)
		}
		return lo, hi, nil
	}
	k, err := strconv.ParseUint(s, 10, 64)
	if err != nil || k == 0 {
		return 0, 0, fmt.Errorf("-seeds %q: want K or A-B", s)
	}
	return 1, k, nil
}
