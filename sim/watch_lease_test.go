package sim

import "testing"

// The watch, lease and lock checks must each be able to fail: a planted
// bug in the simulator's own clients must be found, by the check it
// targets, within a few seeds.
func TestPlantedClientBugsAreFound(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		check FailureKind
	}{
		{"watcher-drops-an-event", Options{plantDropWatchEvent: true}, FailWatch},
		{"follower-acks-keep-alive", Options{plantFollowerKeepAlive: true}, FailLease},
		{"unfenced-lock", Options{plantUnfencedLock: true}, FailLock},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= plantedBugSeeds; seed++ {
				opts := tc.opts
				opts.Seed, opts.DurationMicros = seed, shortRunMicros
				res := Run(opts)
				if res.Passed() {
					continue
				}
				if !res.FailedWith(tc.check) {
					t.Fatalf("seed %d failed, but not the %s check: %v", seed, tc.check, res.Failures)
				}
				t.Logf("found by seed %d: %v", seed, res.Failures)
				return
			}
			t.Fatalf("%d seeds did not find the planted bug %s", plantedBugSeeds, tc.name)
		})
	}
}
