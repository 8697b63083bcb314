package sim

import (
	"strings"
	"testing"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
)

// A run that exceeds one of its limits stops and fails with that limit
// named; each limit is exceeded here on purpose.
func TestRunStopsAtItsLimits(t *testing.T) {
	cases := []struct {
		name   string
		limits Limits
		says   string
	}{
		{"events", Limits{EventsMax: 1000}, "events executed: more than 1000"},
		{"queued-events", Limits{QueuedEventsMax: 3}, "events queued"},
		{"messages-in-flight", Limits{MessagesInFlightMax: 1}, "messages in flight"},
		{"heap", Limits{HeapBytesMax: 1}, "heap in use"},
		{"wall-time", Limits{WallTimeMax: time.Nanosecond}, "wall time"},
	}
	healthy := Run(Options{Seed: 3, DurationMicros: 10 * second})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Run(Options{Seed: 3, DurationMicros: 10 * second, Limits: tc.limits})
			if !res.FailedWith(FailLimit) || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Message, tc.says) {
				t.Fatalf("want one %s failure saying %q, got %v", FailLimit, tc.says, res.Failures)
			}
			// The run stopped at the limit instead of finishing.
			if res.Usage.Events >= healthy.Usage.Events/2 {
				t.Fatalf("the run went on after failing: %d events, %d in the whole run", res.Usage.Events, healthy.Usage.Events)
			}
			t.Logf("%v after %d events", res.Failures, res.Usage.Events)
		})
	}
}

// A healthy run stays far below the default limits, and reports what it
// used.
func TestUsageIsReported(t *testing.T) {
	res := Run(Options{Seed: 3, DurationMicros: 10 * second})
	u := res.Usage
	if !res.Passed() || u.Events == 0 || u.QueuedEventsPeak == 0 || u.MessagesInFlightPeak == 0 || u.HeapBytesPeak == 0 || u.WallTime == 0 {
		t.Fatalf("failures %v, usage %+v", res.Failures, u)
	}
	limits := Limits{}.WithDefaults(10 * second)
	if u.Events > limits.EventsMax/10 || u.QueuedEventsPeak > limits.QueuedEventsMax/10 ||
		u.MessagesInFlightPeak > limits.MessagesInFlightMax/10 || u.HeapBytesPeak > limits.HeapBytesMax/10 {
		t.Fatalf("a 10 s run came within 10x of the default limits: %+v", u)
	}
}

// Porcupine's verdicts map to failures: an exhausted step budget is a failure of its own
// kind, never a pass.
func TestLinearizabilityVerdicts(t *testing.T) {
	if f := linearizabilityFailure(lin.ResultOK, 10, 100); f != nil {
		t.Fatalf("ok gave %v", f)
	}
	if f := linearizabilityFailure(lin.ResultIllegal, 10, 100); f == nil || f.Kind != FailLinearizability {
		t.Fatalf("illegal gave %v", f)
	}
	f := linearizabilityFailure(lin.ResultStepBudget, 1234, 1234000)
	if f == nil || f.Kind != FailLinearizabilityUndecided || f.Message != "linearizability check undecided after 1234000 model steps (history of 1234 ops)" {
		t.Fatalf("an exhausted step budget gave %v", f)
	}
}
