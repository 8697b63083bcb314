package sim

import (
	"strings"
	"testing"

	lin "github.com/cairn-db/cairn/linearizability"
)

// A disk error that first hits the sync a member makes when its raft log
// starts a new segment (syncing the old one first) stops the member like
// any failed sync (fail-stop). With segments of 32 KiB, a put of a 30 KiB
// value fills one, so the next write starts a new segment; each k puts
// that many before every member's log syncs start failing, so the failed
// sync falls at both kinds of moment.
func TestDiskErrorDuringSegmentRotationIsFailStop(t *testing.T) {
	value := strings.Repeat("x", 30<<10)
	inRotation := 0
	for k := 0; k <= 3; k++ {
		withSeededCryptoRand(5, func() {
			w := newWorld(Options{Seed: 5, Members: 3, NoFaults: true, DurationMicros: 20 * second, LogSegmentBytes: 32 << 10})
			w.startMembers()
			w.runUntil(2 * second)
			c := &client{w: w, id: 0, seenModRevision: map[string]int64{}}
			for range k {
				w.issueOnce(c, lin.Put("big", value))
			}
			for _, m := range w.members {
				m.diskFailing.On()
			}
			w.issueOnce(c, lin.Put("big", value))
			w.runUntil(w.sched.nowMicros + second)
			w.outsideEvents(w.close)
			if w.failed() {
				t.Fatalf("k=%d: %v", k, w.failures)
			}
			if len(downMembers(w)) == 0 {
				t.Fatalf("k=%d: no member stopped on its failing disk", k)
			}
			for _, e := range w.failStops {
				if strings.Contains(e, "before starting the next") {
					inRotation++
				}
			}
		})
	}
	if inRotation == 0 {
		t.Fatal("no member's failed sync was the one before a new segment: the test did not test")
	}
}

func downMembers(w *world) []string {
	var down []string
	for _, m := range w.members {
		if !m.up() {
			down = append(down, m.name())
		}
	}
	return down
}
