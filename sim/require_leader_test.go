package sim

import (
	"strings"
	"testing"
)

// requireLeaderSeedsMax is how many seeds TestRequireLeaderWatchesEnd may
// try: about one seed in eight has both events (any change to what the
// members exchange moves which ones, so the test searches rather than
// pinning a seed).
const requireLeaderSeedsMax = 60

// TestRequireLeaderWatchesEnd: under partitions and pauses, a watcher that
// requires a leader is refused by a member that knows none and its stream
// ends once the member's node reports LeaderLost; it resumes elsewhere
// and the watch check still passes. Every run it tries must pass; the
// first whose trace shows both ends the search.
func TestRequireLeaderWatchesEnd(t *testing.T) {
	lines := []string{"lost its leader: the stream ends with etcdserver: no leader", "refuses the stream: no leader"}
	for seed := uint64(1); seed <= requireLeaderSeedsMax; seed++ {
		res := Run(Options{Seed: seed, DurationMicros: 60 * second, KeepTrace: true,
			Faults: []FaultKind{FaultPartition, FaultIsolateLeader, FaultPause}})
		if !res.Passed() {
			t.Fatalf("seed %d failed: %v", seed, res.Failures)
		}
		found := 0
		for _, line := range lines {
			if strings.Contains(res.Trace, line) {
				found++
			}
		}
		if found == len(lines) {
			t.Logf("seed %d: %d trace lines, %d acknowledged operations, both events", seed, res.TraceLines, res.OpsAcknowledged)
			return
		}
	}
	t.Fatalf("no seed of 1-%d has a watch both refused and ended for want of a leader", requireLeaderSeedsMax)
}
