package sim

import (
	"strings"
	"testing"
)

// TestRequireLeaderWatchesEnd: under partitions and pauses, a watcher that
// requires a leader is refused by a member that knows none and its stream
// ends once the member's node reports LeaderLost; it resumes elsewhere
// and the watch check still passes. Seed 19 is one whose trace has both
// (seeds 27, 37, 38 and 39 too).
func TestRequireLeaderWatchesEnd(t *testing.T) {
	res := Run(Options{Seed: 19, DurationMicros: 60 * second, KeepTrace: true,
		Faults: []FaultKind{FaultPartition, FaultIsolateLeader, FaultPause}})
	t.Logf("%d trace lines, %d acknowledged operations", res.TraceLines, res.OpsAcknowledged)
	if !res.Passed() {
		t.Fatalf("run failed: %v", res.Failures)
	}
	for _, line := range []string{"lost its leader: the stream ends with etcdserver: no leader", "refuses the stream: no leader"} {
		if !strings.Contains(res.Trace, line) {
			t.Errorf("trace has no %q", line)
		}
	}
}
