package sim

import (
	"strings"
	"testing"
)

// The watch, lease and lock checks must each be able to fail: a planted
// bug in the simulator's own clients must be found within a few seeds.
func TestPlantedClientBugsAreFound(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		check string // a word of the failure the check reports
	}{
		{"watcher-drops-an-event", Options{plantDropWatchEvent: true}, "watch"},
		{"no-catch-up-after-snapshot", Options{plantNoSnapshotCatchUp: true, Faults: []FaultKind{FaultCrash, FaultCrashMinority, FaultMembership, FaultPartition}}, "watch"},
		{"follower-acks-keep-alive", Options{plantFollowerKeepAlive: true}, "lease"},
		{"unfenced-lock", Options{plantUnfencedLock: true}, "lock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				opts := tc.opts
				opts.Seed, opts.DurationMicros = seed, shortRunMicros
				res := Run(opts)
				if res.Passed() {
					continue
				}
				if !strings.Contains(strings.Join(res.Failures, "; "), tc.check) {
					t.Fatalf("seed %d failed, but not the %s check: %v", seed, tc.check, res.Failures)
				}
				t.Logf("found by seed %d: %v", seed, res.Failures)
				return
			}
			t.Fatalf("20 seeds did not find the planted bug %s", tc.name)
		})
	}
}
