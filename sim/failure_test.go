package sim

import "testing"

// A panic outside the scheduler's events (in the end-of-run checks, or
// closing the members) fails the run as a panic instead of ending the
// process, like a panic inside an event.
func TestPanicOutsideAnEventFailsTheRun(t *testing.T) {
	w := newWorld(Options{Seed: 1, NoFaults: true})
	w.outsideEvents(func() { panic("planted") })
	if len(w.failures) != 1 || w.failures[0].Kind != FailPanic || w.failures[0].Message != "planted (outside an event)" {
		t.Fatalf("failures: %v", w.failures)
	}
	if got := w.failures.String(); got != "panic: planted (outside an event)" {
		t.Fatalf("String() = %q", got)
	}
}
