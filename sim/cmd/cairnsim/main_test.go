package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as cairnsim: with CAIRNSIM_TEST_MAIN=1 it runs
// main's run(), and a sweep re-executes it as its workers (os.Executable),
// which inherit the environment. CAIRNSIM_TEST_PANIC_SEED and
// CAIRNSIM_TEST_HANG_SEED plant a worker that panics, or hangs, on that
// seed, outside the simulation.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRNSIM_TEST_MAIN") == "1" {
		plantWorkerFault()
		os.Exit(run())
	}
	os.Exit(m.Run())
}

func plantWorkerFault() {
	panicSeed, _ := strconv.ParseUint(os.Getenv("CAIRNSIM_TEST_PANIC_SEED"), 10, 64)
	hangSeed, _ := strconv.ParseUint(os.Getenv("CAIRNSIM_TEST_HANG_SEED"), 10, 64)
	beforeSeed = func(seed uint64) {
		switch seed {
		case panicSeed:
			panic("planted worker crash")
		case hangSeed:
			time.Sleep(time.Hour)
		}
	}
}

// cairnsim runs the test binary as cairnsim with args and the extra
// environment, and returns its exit code and output.
func cairnsim(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "CAIRNSIM_TEST_MAIN=1"), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run cairnsim: %v", err)
	}
	return code, string(out)
}

func requireLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", out)
	}
}

// A worker that panics outside a run fails the seed it was on, quoting the
// panic, with the command that reproduces it; the other seeds still run and
// the summary is printed.
func TestSweepSurvivesAWorkerPanic(t *testing.T) {
	dir := t.TempDir()
	code, out := cairnsim(t, []string{"CAIRNSIM_TEST_PANIC_SEED=2"},
		"-seeds", "1-4", "-duration", "2s", "-workers", "1", "-out", dir)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, out)
	}
	requireLines(t, out,
		"seed 2 FAILED: worker-crash: worker died (exit status 2): panic: planted worker crash",
		"reproduce: go run ./sim/cmd/cairnsim -seed 2 -duration 2s -v",
		"4 seeds, 1 failed")
	stderr, err := os.ReadFile(filepath.Join(dir, "seed-2", "worker-stderr.txt"))
	if err != nil || !strings.Contains(string(stderr), "goroutine") {
		t.Fatalf("worker's stderr not kept (%v): %q", err, stderr)
	}
}

// A seed over one of its limits fails naming the limit, and its reproducing
// command carries the limit.
func TestSweepFailsASeedOverItsLimit(t *testing.T) {
	code, out := cairnsim(t, nil, "-seeds", "1-2", "-duration", "2s", "-workers", "1", "-events-max", "300", "-out", t.TempDir())
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, out)
	}
	requireLines(t, out,
		"seed 1 FAILED: limit: events executed: more than 300",
		"reproduce: go run ./sim/cmd/cairnsim -seed 1 -duration 2s -events-max 300 -v",
		"2 seeds, 2 failed")
}

// A worker stuck on one seed is killed after -worker-kill-after, with a
// stack dump, and the seed fails on its wall-time limit.
func TestSweepKillsAStuckWorker(t *testing.T) {
	dir := t.TempDir()
	code, out := cairnsim(t, []string{"CAIRNSIM_TEST_HANG_SEED=1"},
		"-seeds", "1-2", "-duration", "2s", "-workers", "1", "-worker-kill-after", "2s", "-out", dir)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, out)
	}
	requireLines(t, out,
		"seed 1 FAILED: limit: wall time: worker killed, still on the seed after 2s",
		"2 seeds, 1 failed")
	stderr, err := os.ReadFile(filepath.Join(dir, "seed-1", "worker-stderr.txt"))
	if err != nil || !strings.Contains(string(stderr), "SIGQUIT") {
		t.Fatalf("no stack dump kept (%v): %q", err, stderr)
	}
}
