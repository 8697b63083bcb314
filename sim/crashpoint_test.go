package sim

import "testing"

// Crash points are deterministic: a run whose members crash inside
// snapshots gives the same trace twice.
func TestCrashPointsAreDeterministic(t *testing.T) {
	fired := 0
	for _, seed := range []uint64{3, 4} {
		opts := Options{Seed: seed, DurationMicros: shortRunMicros, Faults: []FaultKind{FaultSnapshotCrash}, KeepTrace: true}
		first, second := Run(opts), Run(opts)
		if first.TraceHash != second.TraceHash {
			t.Fatalf("seed %d: trace hashes differ\nfirst difference: %s", seed, firstDifference(first.Trace, second.Trace))
		}
		if !first.Passed() {
			t.Fatalf("seed %d failed: %v", seed, first.Failures)
		}
		for _, n := range first.CrashPointsFired {
			fired += n
		}
	}
	if fired == 0 {
		t.Fatal("no crash point fired: the test shows nothing")
	}
}

// The planted snapshot-install bug is found by a short sweep of
// snapshot-crash faults, and by the crash recovery check: a crash inside
// the install restarts the member with its old applied state and a log
// already cut at the snapshot, which it cannot open.
func TestPlantedInstallBugsAreFoundByCrashPoints(t *testing.T) {
	const (
		seedsMax       = 60
		durationMicros = 10 * second
	)
	for _, name := range []string{"cut-log-before-switch"} {
		t.Run(name, func(t *testing.T) {
			knobs, err := PlantedBug(name)
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= seedsMax; seed++ {
				res := Run(Options{Seed: seed, DurationMicros: durationMicros, Knobs: knobs, Faults: []FaultKind{FaultSnapshotCrash}})
				if res.Passed() {
					continue
				}
				if res.Failures[0].Kind != FailCrashRecovery {
					t.Fatalf("seed %d failed, but not the crash recovery check first: %v", seed, res.Failures)
				}
				t.Logf("found by seed %d: %v (reproduce: go run ./sim/cmd/cairnsim -seed %d -duration 10s -faults snapshot-crash -plant %s)",
					seed, res.Failures[0], seed, name)
				return
			}
			t.Fatalf("%d seeds did not find the planted bug %s", seedsMax, name)
		})
	}
}
