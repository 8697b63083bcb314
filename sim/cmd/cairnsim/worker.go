package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/sim"
)

// workerLine is one line a worker prints: a seed it starts (Started), or
// that seed's result.
type workerLine struct {
	Seed            uint64       `json:"seed"`
	Started         bool         `json:"started,omitempty"`
	Failures        sim.Failures `json:"failures,omitempty"`
	TraceHash       string       `json:"trace_hash,omitempty"`
	SimulatedMicros int64        `json:"simulated_us,omitempty"`
	Usage           sim.Usage    `json:"usage"`
	// CrashPointsArmed and CrashPointsFired count snapshot crash points by
	// phase (create, stage, install).
	CrashPointsArmed [3]int `json:"crash_points_armed"`
	CrashPointsFired [3]int `json:"crash_points_fired"`
}

// beforeSeed runs in a worker before each seed; tests plant crashes here.
var beforeSeed = func(seed uint64) {}

// worker runs seeds read from stdin, one per line, and prints, as JSON
// lines, each seed as it starts and its result when it ends: if the worker
// dies, the sweep knows which seed it died on. Each worker is its own
// process because a run replaces the process-wide crypto/rand.Reader.
func worker(f flags, knobs node.TestingKnobs) int {
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		seed, err := strconv.ParseUint(strings.TrimSpace(in.Text()), 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cairnsim worker:", err)
			return 2
		}
		if err := enc.Encode(workerLine{Seed: seed, Started: true}); err != nil {
			return 2
		}
		beforeSeed(seed)
		res := sim.Run(options(f, seed, knobs))
		line := workerLine{Seed: seed, Failures: res.Failures, TraceHash: res.TraceHash,
			SimulatedMicros: res.SimulatedMicros, Usage: res.Usage,
			CrashPointsArmed: res.CrashPointsArmed, CrashPointsFired: res.CrashPointsFired}
		if err := enc.Encode(line); err != nil {
			return 2
		}
		if leavesWorkBehind(res) {
			// The sweep starts a fresh worker for the seeds after this one.
			return 0
		}
	}
	return 0
}

// leavesWorkBehind reports whether a run that failed may have left work
// running in the process: a run over a limit may leave goroutines or
// memory behind, and an undecided search leaves a large heap for the
// collector. Such a worker retires after reporting, so that it cannot make
// the next seeds fail their limits.
func leavesWorkBehind(res *sim.Result) bool {
	return res.FailedWith(sim.FailLinearizabilityUndecided) || res.FailedWith(sim.FailLimit)
}
