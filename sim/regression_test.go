package sim

import "testing"

// Seeds that found real bugs, kept so the bugs stay fixed. Each runs as it
// did when it failed.
var regressionSeeds = []struct {
	seed           uint64
	durationMicros int64
	bug            string
}{
	{14, 20 * second, "convergence compared members at different revisions while writes were in flight"},
	{75, 30 * second, "acknowledged writes checked before every member applied them"},
	{79, 30 * second, "a cached snapshot made before a learner was added was sent to it; raft refused it forever"},
	{121, 30 * second, "same as 79"},
	{193, 30 * second, "same as 79"},
	{28, 30 * second, "a leader paused past a lease's TTL expired it on resuming, stepped down before its next Process, and raft forwarded the revocation to the new leader, which had renewed the lease"},
	{601, 60 * second, "a member restarting after a crash point while its log syncs failed synced the raft log it recovered in Open, and Pebble's fatal error panicked out of Open"},
}

func TestRegressionSeeds(t *testing.T) {
	for _, r := range regressionSeeds {
		res := Run(Options{Seed: r.seed, DurationMicros: r.durationMicros})
		if !res.Passed() {
			t.Errorf("seed %d (%s) fails again: %v", r.seed, r.bug, res.Failures)
		}
	}
}
