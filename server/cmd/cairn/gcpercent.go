package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The garbage collector lets the heap grow past what its last cycle found
// live by GOGC percent before it collects again. Go's default, 100, spent
// 14-17% of a member's CPU under load collecting a heap of a few tens of
// MB; at 200 reads and Kubernetes-like loads gained up to 15%. But at 200 a
// heap that is briefly larger than usual takes three times its size: a
// burst of large txns (a benchmark's preload of 100-put txns, 9 MB live
// for a second) took three members' peak RSS to 75-81 MB against 61-64 at
// 100, and etcd's 59-60.
//
// So the percent follows the live heap after each cycle (gcTuner): the
// heap may grow past what is live by at most the larger of what is live
// and the headroom, a share of the Go runtime's memory budget. A small
// live heap, the common case (4 MB under puts and reads), runs at
// defaultGCPercent, collected as rarely as before; a larger one at 100, as
// Go's default and etcd run, because GC's cost per byte allocated falls as
// the headroom grows and its memory cost rises with it.
const (
	// defaultGCPercent is the most the tuner allows, and the percent
	// before the first cycle.
	defaultGCPercent = 200
	// minGCPercent is the least: a heap may always double.
	minGCPercent = 100
	// gcHeadroomShare is the headroom's share of the Go runtime's memory
	// budget: 8.75 MiB of the default budget's 140.
	gcHeadroomShare = 16
)

// gcPercentFor is the percent for a live heap of liveBytes: the heap goal
// is liveBytes plus max(liveBytes, headroomBytes), but never more than
// defaultGCPercent allows.
func gcPercentFor(liveBytes, headroomBytes uint64) int {
	if liveBytes == 0 || headroomBytes >= liveBytes*defaultGCPercent/100 {
		return defaultGCPercent
	}
	return max(minGCPercent, int(headroomBytes*100/liveBytes))
}

// setGCPercent starts the collector at defaultGCPercent unless GOGC says
// otherwise; tuneGCPercent then follows the live heap.
func setGCPercent() {
	if !gcPercentFromEnv() {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// gcPercentFromEnv reports whether GOGC is set: the environment's choice
// wins over cairn's.
func gcPercentFromEnv() bool {
	_, set := os.LookupEnv("GOGC")
	return set
}

// gcHeadroomBytes is the collector's headroom for a Go runtime budget.
func gcHeadroomBytes(goRuntimeBytes int64) uint64 {
	return uint64(max(goRuntimeBytes, 0) / gcHeadroomShare)
}

// tuneGCPercent sets the collector's percent after every cycle from the
// live heap (gcPercentFor), unless GOGC is set, and returns the tuner
// (nil when GOGC is set). The first call starts it for the life of the
// process; later ones return the same tuner. (Only tests call run, and
// so this, more than once.)
func tuneGCPercent(goRuntimeBytes int64) *gcTuner {
	if gcPercentFromEnv() {
		return nil
	}
	gcTunerOnce.Do(func() { processGCTuner = startGCTuner(gcHeadroomBytes(goRuntimeBytes), defaultGCPercent) })
	return processGCTuner
}

var (
	gcTunerOnce    sync.Once
	processGCTuner *gcTuner
)

// gcTuner re-sets the percent after each garbage collection. It learns of
// one from a cleanup: the sentinel it arms is unreachable at once, so the
// next cycle frees it and the runtime then runs the cleanup, which arms a
// new sentinel. A tuner has one sentinel armed at a time, so its cleanups
// never overlap (though the runtime may run different objects' cleanups in
// parallel) and its state needs no lock; it is atomic for its test to
// read.
type gcTuner struct {
	headroomBytes uint64
	live          []metrics.Sample
	percent       atomic.Int64 // as last set
	runs          atomic.Int64 // cycles seen
	stopped       atomic.Bool  // no more cycles: the test's tuners stop
}

// startGCTuner starts a tuner whose percent is percent now.
func startGCTuner(headroomBytes uint64, percent int) *gcTuner {
	t := &gcTuner{headroomBytes: headroomBytes, live: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.percent.Store(int64(percent))
	t.arm()
	return t
}

// gcSentinel is large enough not to share a tiny allocation block, whose
// objects are freed together, late or never.
type gcSentinel struct{ _ [32]byte }

func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), (*gcTuner).afterGC, t)
}

func (t *gcTuner) afterGC() {
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.live)
	if t.live[0].Value.Kind() == metrics.KindUint64 {
		if p := gcPercentFor(t.live[0].Value.Uint64(), t.headroomBytes); int64(p) != t.percent.Load() {
			t.percent.Store(int64(p))
			debug.SetGCPercent(p)
		}
	}
	t.runs.Add(1)
	t.arm()
}
