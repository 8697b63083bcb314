// Command cairnsim runs cairn clusters in the deterministic simulator.
//
//	cairnsim -seed 42          run one seed; on failure write a report
//	cairnsim -seed 42 -v       the same, printing the readable trace
//	cairnsim -seeds 1000       sweep seeds 1..1000 on every core
//	cairnsim -seeds 500-999    sweep a range
//
// A failing seed prints the one command that reproduces it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
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
	bug      string
	worker   bool
	profile  string
	faults   string
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
	flag.StringVar(&f.bug, "plant", "", "plant a bug: ack-before-durable, read-without-readindex, read-index-without-heartbeat or skip-applied-index")
	flag.BoolVar(&f.worker, "worker", false, "internal: run the seeds given on stdin and print JSON results")
	flag.StringVar(&f.faults, "faults", "", "comma-separated fault kinds the nemesis may inject (default all): "+faultNames())
	flag.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of a single run to this file")
	flag.Parse()
	return f
}

func run() int {
	f := parseFlags()
	knobs, err := plantedBug(f.bug)
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

func plantedBug(name string) (node.TestingKnobs, error) {
	switch name {
	case "":
		return node.TestingKnobs{}, nil
	case "ack-before-durable":
		return node.TestingKnobs{AckBeforeDurable: true}, nil
	case "read-without-readindex":
		return node.TestingKnobs{ReadWithoutReadIndex: true}, nil
	case "skip-applied-index":
		return node.TestingKnobs{SkipAppliedIndex: true}, nil
	case "read-index-without-heartbeat":
		return node.TestingKnobs{ReadIndexWithoutHeartbeat: true}, nil
	}
	return node.TestingKnobs{}, fmt.Errorf("unknown planted bug %q", name)
}

func options(f flags, seed uint64, knobs node.TestingKnobs) sim.Options {
	var kinds []sim.FaultKind
	if f.faults != "" {
		for _, k := range strings.Split(f.faults, ",") {
			kinds = append(kinds, sim.FaultKind(strings.TrimSpace(k)))
		}
	}
	return sim.Options{Seed: seed, DurationMicros: f.duration.Microseconds(), NoFaults: f.noFaults, Faults: kinds, Knobs: knobs}
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
	if res.Passed() {
		return 0
	}
	for _, msg := range res.Failures {
		fmt.Println("  FAIL:", msg)
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
	if f.bug != "" {
		cmd += " -plant " + f.bug
	}
	if f.faults != "" {
		cmd += " -faults " + f.faults
	}
	return cmd + " -v"
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

// workerResult is one seed's outcome, as a worker prints it.
type workerResult struct {
	Seed            uint64   `json:"seed"`
	Failures        []string `json:"failures,omitempty"`
	TraceHash       string   `json:"trace_hash"`
	SimulatedMicros int64    `json:"simulated_us"`
	WallMicros      int64    `json:"wall_us"`
}

// worker runs seeds read from stdin, one per line, and prints one JSON
// result per seed. Each worker is its own process because a run replaces
// the process-wide crypto/rand.Reader.
func worker(f flags, knobs node.TestingKnobs) int {
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		seed, err := strconv.ParseUint(strings.TrimSpace(in.Text()), 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cairnsim worker:", err)
			return 2
		}
		res := sim.Run(options(f, seed, knobs))
		enc.Encode(workerResult{Seed: seed, Failures: res.Failures, TraceHash: res.TraceHash,
			SimulatedMicros: res.SimulatedMicros, WallMicros: res.WallTime.Microseconds()})
	}
	return 0
}

func sweep(f flags) int {
	lo, hi, err := seedRange(f.seeds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim:", err)
		return 2
	}
	start := time.Now()
	results, err := runWorkers(f, lo, hi)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim:", err)
		return 1
	}
	return summarize(f, results, time.Since(start))
}

func runWorkers(f flags, lo, hi uint64) ([]workerResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var results []workerResult
	var firstErr error
	var wg sync.WaitGroup
	for w := range max(f.workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := runWorker(self, f, lo+uint64(w), hi, uint64(max(f.workers, 1)))
			mu.Lock()
			defer mu.Unlock()
			results = append(results, rs...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return results, firstErr
}

func runWorker(self string, f flags, first, hi, stride uint64) ([]workerResult, error) {
	args := []string{"-worker", "-duration", f.duration.String()}
	if f.noFaults {
		args = append(args, "-no-faults")
	}
	if f.bug != "" {
		args = append(args, "-plant", f.bug)
	}
	if f.faults != "" {
		args = append(args, "-faults", f.faults)
	}
	cmd := exec.Command(self, args...)
	var seeds strings.Builder
	for s := first; s <= hi; s += stride {
		fmt.Fprintln(&seeds, s)
	}
	cmd.Stdin = strings.NewReader(seeds.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var results []workerResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r workerResult
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			results = append(results, r)
		}
	}
	if err != nil {
		return results, fmt.Errorf("worker: %w", err)
	}
	return results, nil
}

func summarize(f flags, results []workerResult, wall time.Duration) int {
	var simulated int64
	failed := 0
	for _, r := range results {
		simulated += r.SimulatedMicros
		if len(r.Failures) > 0 {
			failed++
			fmt.Printf("seed %d FAILED: %s\n  reproduce: %s\n", r.Seed, strings.Join(r.Failures, "; "), reproduce(f, r.Seed))
		}
	}
	fmt.Printf("%d seeds, %d failed, %.1f seeds/s on %d workers, simulated/wall time %.0fx\n",
		len(results), failed, float64(len(results))/wall.Seconds(), f.workers, float64(simulated)/float64(wall.Microseconds()))
	_ = lin.ResultOK
	if failed > 0 {
		return 1
	}
	return 0
}
