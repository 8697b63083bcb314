package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 9 * mib, defaultGCPercent},
		{4 * mib, 9 * mib, defaultGCPercent},     // headroom covers twice what is live
		{9 * mib / 2, 9 * mib, defaultGCPercent}, // exactly
		{6 * mib, 9 * mib, 150},
		{9 * mib, 9 * mib, minGCPercent},
		{100 * mib, 9 * mib, minGCPercent}, // never below doubling
		{6 * mib, 0, minGCPercent},
	} {
		if got := gcPercentFor(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercentFor(live %d, headroom %d) = %d, want %d", c.live, c.headroom, got, c.want)
		}
	}
}

// TestGCTunerFollowsTheLiveHeap runs a tuner through real collections: a
// live heap above its headroom lowers the percent to minGCPercent, and a
// headroom far above the live heap raises it to defaultGCPercent.
func TestGCTunerFollowsTheLiveHeap(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: cairn does not tune the collector")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(defaultGCPercent))

	live := make([]byte, 16<<20)
	low := startGCTuner(1<<20, defaultGCPercent)
	defer low.stopped.Store(true)
	collectUntil(t, low, 2)
	runtime.KeepAlive(live)
	if got := low.percent.Load(); got != minGCPercent {
		t.Fatalf("percent with 16 MiB live and a headroom of 1 MiB = %d, want %d", got, minGCPercent)
	}
	if got := debug.SetGCPercent(defaultGCPercent); got != minGCPercent {
		t.Fatalf("the runtime's percent = %d, want the tuner's %d", got, minGCPercent)
	}
	low.stopped.Store(true)

	high := startGCTuner(1<<30, minGCPercent)
	defer high.stopped.Store(true)
	collectUntil(t, high, 2)
	if got := high.percent.Load(); got != defaultGCPercent {
		t.Fatalf("percent with a headroom of 1 GiB = %d, want %d", got, defaultGCPercent)
	}
}

// collectUntil collects garbage until tuner has seen n more cycles.
func collectUntil(t *testing.T, tuner *gcTuner, n int64) {
	t.Helper()
	want := tuner.runs.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for tuner.runs.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the tuner saw %d cycles in 10 s, want %d", tuner.runs.Load(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestRuntimeMemoryStartsTheTuner checks what cairn's start-up does: the
// process's tuner runs with a sixteenth of the Go runtime's budget as its
// headroom and follows collections.
func TestRuntimeMemoryStartsTheTuner(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: cairn does not tune the collector")
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	b, err := node.SplitMemoryBudget(node.DefaultMemoryBudgetBytes)
	if err != nil {
		t.Fatal(err)
	}
	setRuntimeMemory(b.TotalBytes, slog.New(slog.DiscardHandler))
	tuner := processGCTuner
	if tuner == nil {
		t.Fatal("no tuner runs after setRuntimeMemory")
	}
	if want := uint64(b.GoRuntimeBytes / 16); tuner.headroomBytes != want {
		t.Fatalf("headroom = %d bytes, want %d (a sixteenth of %d)", tuner.headroomBytes, want, b.GoRuntimeBytes)
	}
	collectUntil(t, tuner, 2)
}
