package sim

import (
	"testing"
)

// Crashes that keep part of the unsynced data, Pebble's flushes of small
// memtables, compactions and pauses must not make a seed's run depend on
// goroutine timing.
func TestDiskFaultsAreDeterministic(t *testing.T) {
	faults := []FaultKind{FaultCrash, FaultCrashAll, FaultFlush, FaultCompact, FaultPause, FaultDiskError}
	for _, seed := range []uint64{3, 4} {
		opts := Options{Seed: seed, DurationMicros: 10 * second, MemTableBytes: smallMemTableMinBytes, Faults: faults, KeepTrace: true}
		first, second := Run(opts), Run(opts)
		if !first.Passed() {
			t.Fatalf("seed %d failed: %v", seed, first.Failures)
		}
		if first.TraceHash != second.TraceHash {
			t.Fatalf("seed %d: trace hashes differ\nfirst difference: %s", seed, firstDifference(first.Trace, second.Trace))
		}
	}
}
