package sim

import (
	"strings"
	"testing"

	lin "github.com/cairn-db/cairn/linearizability"
)

// A disk error that first hits the sync Pebble makes while rotating its
// write-ahead log must stop the member like any failed sync (fail-stop),
// not panic inside Pebble: there Pebble's locks are left in disorder, and
// the process died ("unlock of unlocked mutex") or closing hung. Each k
// fills the first memtable a little more before every member's log syncs
// start failing; for some k the next write rotates the log.
func TestDiskErrorDuringWALRotationIsFailStop(t *testing.T) {
	value := strings.Repeat("x", 30<<10)
	spared := int64(0)
	for k := 0; k <= 12 && spared == 0; k++ {
		withSeededCryptoRand(5, func() {
			w := newWorld(Options{Seed: 5, Members: 3, NoFaults: true, DurationMicros: 20 * second})
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
			spared = w.walRotationSyncsSpared.Load()
			if spared > 0 {
				t.Logf("k=%d: %d syncs spared during log rotation; members stopped: %v", k, spared, downMembers(w))
				if len(downMembers(w)) == 0 {
					t.Fatalf("k=%d: no member stopped on its failing disk", k)
				}
			}
		})
	}
	if spared == 0 {
		t.Fatal("no write rotated the log while syncs failed: the test did not test")
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
