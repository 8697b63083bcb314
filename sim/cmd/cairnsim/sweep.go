package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/sim"
)

const (
	// killGraceAfterWallTime is how much longer than a run's WallTimeMax
	// the sweep lets a worker stay on one seed before killing it: the
	// linearizability search (guarded by one minute) and closing the
	// members come after the simulation's own wall-time check.
	killGraceAfterWallTime = 90 * time.Second
	// dumpWait is how long a worker sent SIGQUIT (which makes the Go
	// runtime print every goroutine's stack and exit) gets before SIGKILL.
	dumpWait = 5 * time.Second
	// workerLineBytesMax bounds one JSON line of a worker.
	workerLineBytesMax = 16 << 20
	// panicLinesMax bounds the lines of a worker's panic quoted in its
	// seed's failure; the whole stderr goes to the report directory.
	panicLinesMax = 8
)

func sweep(f flags) int {
	lo, hi, err := seedRange(f.seeds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairnsim:", err)
		return 2
	}
	start := time.Now()
	results, workerRSSBytes := runWorkers(self, f, lo, hi)
	return summarize(f, results, workerRSSBytes, time.Since(start))
}

// runWorkers runs seeds lo..hi on f.workers worker slots, each taking every
// f.workers-th seed. It returns one result per seed, whatever happens to
// the workers, and the largest peak resident memory of a worker.
func runWorkers(self string, f flags, lo, hi uint64) ([]workerLine, int64) {
	workers := max(f.workers, 1)
	var mu sync.Mutex
	var results []workerLine
	var peakRSSBytes int64
	var wg sync.WaitGroup
	for w := range workers {
		var seeds []uint64
		for s := lo + uint64(w); s <= hi; s += uint64(workers) {
			seeds = append(seeds, s)
		}
		wg.Go(func() {
			rs, rss := runSlot(self, f, seeds)
			mu.Lock()
			defer mu.Unlock()
			results = append(results, rs...)
			peakRSSBytes = max(peakRSSBytes, rss)
		})
	}
	wg.Wait()
	return results, peakRSSBytes
}

// runSlot runs seeds in worker processes, one after another: when a worker
// dies, the seed it was on fails and a new worker takes the seeds after it;
// when a worker retires after a seed (leavesWorkBehind), a new one takes
// the rest.
// It also returns the largest peak resident memory of its workers.
func runSlot(self string, f flags, seeds []uint64) ([]workerLine, int64) {
	var results []workerLine
	var peakRSSBytes int64
	for len(seeds) > 0 {
		done, died, rss := runWorkerProcess(self, f, seeds)
		peakRSSBytes = max(peakRSSBytes, rss)
		results = append(results, done...)
		seeds = seeds[len(done):]
		if died != nil {
			results = append(results, *died)
			seeds = seeds[1:]
		}
	}
	return results, peakRSSBytes
}

func workerArgs(f flags) []string {
	args := []string{"-worker", "-duration", f.duration.String()}
	if f.noFaults {
		args = append(args, "-no-faults")
	}
	if f.auth {
		args = append(args, "-auth")
	}
	if f.authToken != "" {
		args = append(args, "-auth-token", f.authToken)
	}
	if f.bug != "" {
		args = append(args, "-plant", f.bug)
	}
	if f.faults != "" {
		args = append(args, "-faults", f.faults)
	}
	return append(args, strings.Fields(limitFlags(f.limits))...)
}

func (f flags) killAfter() time.Duration {
	if f.workerKillAfter > 0 {
		return f.workerKillAfter
	}
	return f.limits.WithDefaults(f.duration.Microseconds()).WallTimeMax + killGraceAfterWallTime
}

// runWorkerProcess runs one worker on seeds. It returns the results of the
// seeds the worker finished, in order, and, if it stopped before the last,
// the failure of the seed it stopped on, and the worker's peak resident
// memory.
func runWorkerProcess(self string, f flags, seeds []uint64) ([]workerLine, *workerLine, int64) {
	var input strings.Builder
	for _, s := range seeds {
		fmt.Fprintln(&input, s)
	}
	cmd := exec.Command(self, workerArgs(f)...)
	cmd.Stdin = strings.NewReader(input.String())
	stderr := &headTail{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return nil, &workerLine{Seed: seeds[0], Failures: sim.Failures{{Kind: sim.FailWorkerCrash, Message: "start worker: " + err.Error()}}}, 0
	}
	lines := make(chan workerLine)
	go readWorkerLines(stdout, lines)
	results, running, killed := collect(cmd, lines, f.killAfter())
	waitErr := cmd.Wait()
	rss := peakRSSBytes(cmd.ProcessState)
	if len(results) == len(seeds) {
		if waitErr != nil {
			fmt.Fprintf(os.Stderr, "cairnsim: worker exited with %v after its last seed\n%s", waitErr, stderr.String())
		}
		return results, nil, rss
	}
	if running == nil && waitErr == nil && !killed && len(results) > 0 {
		return results, nil, rss // retired between seeds (leavesWorkBehind)
	}
	seed := seeds[len(results)]
	if running != nil {
		seed = *running
	}
	return results, diedOn(f, seed, killed, waitErr, stderr.String()), rss
}

// peakRSSBytes is an exited process's peak resident memory (Linux reports
// ru_maxrss in KiB), 0 where the system does not say.
func peakRSSBytes(state *os.ProcessState) int64 {
	if state == nil {
		return 0
	}
	if usage, ok := state.SysUsage().(*syscall.Rusage); ok {
		return usage.Maxrss << 10
	}
	return 0
}

// collect reads a worker's lines until its output ends. A worker on one
// seed for longer than killAfter is sent SIGQUIT, for a stack dump, then
// killed. It returns the finished seeds' results, the seed still running
// when the output ended (nil if none) and whether the worker was killed.
func collect(cmd *exec.Cmd, lines <-chan workerLine, killAfter time.Duration) ([]workerLine, *uint64, bool) {
	var results []workerLine
	var running *uint64
	killed := false
	deadline := time.NewTimer(killAfter)
	deadline.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				deadline.Stop()
				return results, running, killed
			}
			if l.Started {
				seed := l.Seed
				running = &seed
				deadline.Reset(killAfter)
				continue
			}
			deadline.Stop()
			running = nil
			results = append(results, l)
		case <-deadline.C:
			killed = true
			cmd.Process.Signal(syscall.SIGQUIT)
			time.AfterFunc(dumpWait, func() { cmd.Process.Kill() })
		}
	}
}

func readWorkerLines(stdout io.Reader, lines chan<- workerLine) {
	defer close(lines)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), workerLineBytesMax)
	for sc.Scan() {
		var l workerLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines <- l
		}
	}
}

// diedOn is the failure of the seed a worker stopped on: a wall-time limit
// if the sweep killed it, else a crash quoting the worker's panic. The
// worker's whole stderr is written to the seed's report directory.
func diedOn(f flags, seed uint64, killed bool, waitErr error, stderr string) *workerLine {
	var failure sim.Failure
	if killed {
		failure = sim.Failure{Kind: sim.FailLimit, Message: fmt.Sprintf(
			"wall time: worker killed, still on the seed after %v (-worker-kill-after)", f.killAfter())}
	} else {
		failure = sim.Failure{Kind: sim.FailWorkerCrash, Message: fmt.Sprintf("worker died (%v): %s", exitStatus(waitErr), panicText(stderr))}
	}
	dir := filepath.Join(f.outDir, fmt.Sprintf("seed-%d", seed))
	if err := os.MkdirAll(dir, 0o755); err == nil {
		path := filepath.Join(dir, "worker-stderr.txt")
		if os.WriteFile(path, []byte(stderr), 0o644) == nil {
			failure.Message += " (worker's stderr: " + path + ")"
		}
	}
	return &workerLine{Seed: seed, Failures: sim.Failures{failure}}
}

func exitStatus(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ProcessState.String()
	}
	if err == nil {
		return "exit status 0 before its last seed"
	}
	return err.Error()
}

// panicText quotes a Go runtime crash report: from its "panic:" or "fatal
// error:" line, up to panicLinesMax lines of it and of the crashing
// goroutine's stack.
func panicText(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			var quoted []string
			for _, l := range lines[i:min(len(lines), i+panicLinesMax)] {
				if l = strings.TrimSpace(l); l != "" {
					quoted = append(quoted, l)
				}
			}
			return strings.Join(quoted, " | ")
		}
	}
	if tail := strings.TrimSpace(stderr); tail != "" {
		return "no panic on stderr, which ends: " + tail[max(0, len(tail)-300):]
	}
	return "no output on stderr"
}

// headTail keeps the first and the last headTailBytes of what is written
// to it: a crash report starts at the panic and a stack dump can be long.
type headTail struct {
	mu         sync.Mutex
	head, tail []byte
	dropped    int
}

const headTailBytes = 256 << 10

func (b *headTail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := headTailBytes - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = append(b.head, p[:take]...)
		p = p[take:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - headTailBytes; over > 0 {
		b.dropped += over
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

func (b *headTail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return string(b.head) + string(b.tail)
	}
	return fmt.Sprintf("%s\n... %d bytes left out ...\n%s", b.head, b.dropped, b.tail)
}

// summarize prints every failed seed with its reproducing command, the
// peaks of what the runs used of their limits, and the summary line.
func summarize(f flags, results []workerLine, workerRSSBytes int64, wall time.Duration) int {
	var simulated int64
	var armed, fired [3]int
	failed := 0
	for _, r := range results {
		simulated += r.SimulatedMicros
		for i := range armed {
			armed[i] += r.CrashPointsArmed[i]
			fired[i] += r.CrashPointsFired[i]
		}
		if len(r.Failures) > 0 {
			failed++
			fmt.Printf("seed %d FAILED: %s\n  reproduce: %s\n", r.Seed, r.Failures, reproduce(f, r.Seed))
		}
	}
	fmt.Printf("%s, worker peak RSS %d MiB\n", peaks(results), workerRSSBytes>>20)
	fmt.Printf("snapshot crash points (armed/fired): create %d/%d, stage %d/%d, install %d/%d\n",
		armed[0], fired[0], armed[1], fired[1], armed[2], fired[2])
	fmt.Printf("%d seeds, %d failed, %.1f seeds/s on %d workers, simulated/wall time %.0fx\n",
		len(results), failed, float64(len(results))/wall.Seconds(), f.workers, float64(simulated)/float64(max(wall.Microseconds(), 1)))
	if failed > 0 {
		return 1
	}
	return 0
}

// peaks describes the largest use of each limited quantity over a sweep,
// with the seed that reached it: what the limits' margins are measured
// against.
func peaks(results []workerLine) string {
	var events, queued, inFlight, heap, wall, check, steps workerLine
	for _, r := range results {
		u := r.Usage
		if u.Events > events.Usage.Events {
			events = r
		}
		if u.QueuedEventsPeak > queued.Usage.QueuedEventsPeak {
			queued = r
		}
		if u.MessagesInFlightPeak > inFlight.Usage.MessagesInFlightPeak {
			inFlight = r
		}
		if u.HeapBytesPeak > heap.Usage.HeapBytesPeak {
			heap = r
		}
		if u.WallTime > wall.Usage.WallTime {
			wall = r
		}
		if u.LinearizabilityCheck > check.Usage.LinearizabilityCheck {
			check = r
		}
		if u.LinearizabilitySteps > steps.Usage.LinearizabilitySteps {
			steps = r
		}
	}
	return fmt.Sprintf("peaks: events %d (seed %d, %.0f virtual s), queued events %d (seed %d), messages in flight %d (seed %d), heap in use %d MiB (seed %d), wall time %v (seed %d), linearizability check %v (seed %d), %d model steps (seed %d)",
		events.Usage.Events, events.Seed, float64(events.SimulatedMicros)/1e6, queued.Usage.QueuedEventsPeak, queued.Seed,
		inFlight.Usage.MessagesInFlightPeak, inFlight.Seed, heap.Usage.HeapBytesPeak>>20, heap.Seed,
		wall.Usage.WallTime.Round(time.Millisecond), wall.Seed, check.Usage.LinearizabilityCheck.Round(time.Millisecond), check.Seed,
		steps.Usage.LinearizabilitySteps, steps.Seed)
}
