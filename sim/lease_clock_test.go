package sim

import "testing"

// TestLeaseClockRunsApartFromTicks: a lease clock's rate and jumps change
// what it reads from then on, and nothing before.
func TestLeaseClockRunsApartFromTicks(t *testing.T) {
	w := &world{}
	c := newLeaseClock(w)
	w.sched.nowMicros = 1 * second
	if got := c.readMicros(); got != 1*second {
		t.Fatalf("at 1s: reads %dus", got)
	}
	c.setRate(300)
	w.sched.nowMicros = 2 * second
	if got := c.readMicros(); got != 4*second {
		t.Fatalf("1s at 300%% after 1s: reads %dus, want 4s", got)
	}
	c.jump(5 * second)
	if got := c.readMicros(); got != 9*second {
		t.Fatalf("after a 5s jump: reads %dus, want 9s", got)
	}
	c.setRate(100)
	w.sched.nowMicros = 3 * second
	if got, want := c.Now().Sub(leaseClockEpoch), 10*second*1000; got.Nanoseconds() != want {
		t.Fatalf("1s more at 100%%: reads %v, want 10s", got)
	}
}
