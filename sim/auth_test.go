package sim

import (
	"strings"
	"testing"
)

// authSweepSeeds is how many seeds the auth workload's short sweep runs.
const authSweepSeeds = 6

// TestAuthSweep runs the auth workload under every fault: it must pass,
// have enabled auth and checked revocations.
func TestAuthSweep(t *testing.T) {
	checked := 0
	for seed := uint64(1); seed <= authSweepSeeds; seed++ {
		res := Run(Options{Seed: seed, DurationMicros: shortRunMicros, Auth: true, KeepTrace: true})
		if !res.Passed() {
			t.Errorf("seed %d failed: %v\n  reproduce: go run ./sim/cmd/cairnsim -auth -seed %d -duration 20s -v", seed, res.Failures, seed)
			continue
		}
		if !strings.Contains(res.Trace, "auth enabled") {
			t.Errorf("seed %d never enabled auth", seed)
		}
		if strings.Contains(res.Trace, "auth revoked") {
			checked++
		}
	}
	if checked == 0 {
		t.Error("no seed revoked a permission: the auth check checked nothing")
	}
}

// TestAuthDeterminism: an auth run's trace is the same byte for byte
// (tokens, bcrypt salts and all come from the seed).
func TestAuthDeterminism(t *testing.T) {
	first := Run(Options{Seed: 5, DurationMicros: 10 * second, Auth: true, KeepTrace: true})
	second := Run(Options{Seed: 5, DurationMicros: 10 * second, Auth: true, KeepTrace: true})
	if first.TraceHash != second.TraceHash {
		t.Fatalf("trace hashes differ: %s vs %s\nfirst difference: %s", first.TraceHash, second.TraceHash, firstDifference(first.Trace, second.Trace))
	}
	if !strings.Contains(first.Trace, "authenticate") {
		t.Fatal("no client authenticated")
	}
}
