package lease

import (
	"slices"
	"testing"
	"time"
)

// TestCheckpointSchedule: as etcd 3.7.3, a lease is reported an interval
// after its grant if it has more than the interval left, with its
// remaining TTL rounded up; a lease with its whole TTL left (just renewed)
// is skipped; an applied checkpoint schedules the next one.
func TestCheckpointSchedule(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1, CheckpointInterval: 10 * time.Second})
	le.Promote(t0, 0)
	mustGrant(t, le, 1, 100) // scheduled at +10 s
	mustGrant(t, le, 2, 10)  // not: 10 s left is not more than the interval
	mustGrant(t, le, 3, 30)
	if got := le.DueCheckpoints(at(9*time.Second), 10); len(got) != 0 {
		t.Fatalf("due before the interval: %v", got)
	}
	if _, err := le.Renew(3, at(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := le.DueCheckpoints(at(10*time.Second+500*time.Millisecond), 10)
	if want := []Checkpoint{{ID: 1, RemainingSeconds: 90}}; !slices.Equal(got, want) {
		t.Fatalf("due at 10.5 s: %v, want %v (lease 3 was just renewed)", got, want)
	}
	if !le.Checkpoint(1, 90, at(11*time.Second)) || le.RemainingSeconds(1) != 90 {
		t.Fatal("checkpoint of lease 1 not recorded")
	}
	if got := le.DueCheckpoints(at(20*time.Second), 10); len(got) != 0 {
		t.Fatalf("due before the next interval: %v", got)
	}
	if got := le.DueCheckpoints(at(21*time.Second), 10); !slices.Equal(got, []Checkpoint{{ID: 1, RemainingSeconds: 79}}) {
		t.Fatalf("due at 21 s: %v", got)
	}
	if le.Checkpoint(9, 5, t0) {
		t.Fatal("checkpoint of an unknown lease recorded")
	}
}

// TestPromoteFromCheckpoint: a promoted lessor starts a checkpointed lease
// from its checkpoint, others from their full TTL; a cleared checkpoint
// (0) counts as none.
func TestPromoteFromCheckpoint(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1, CheckpointInterval: time.Second})
	mustGrant(t, le, 1, 100)
	mustGrant(t, le, 2, 100)
	mustGrant(t, le, 3, 100)
	le.Checkpoint(1, 7, t0)
	le.Checkpoint(3, 7, t0)
	le.Checkpoint(3, 0, t0)
	le.Promote(t0, 2*time.Second)
	for id, want := range map[int64]int64{1: 9, 2: 102, 3: 102} {
		if _, left, err := le.TimeToLive(id, t0); err != nil || left != want {
			t.Errorf("lease %d: %d s left (%v), want %d", id, left, err, want)
		}
	}
	ignoring := New(Config{MinTTLSeconds: 1, CheckpointInterval: time.Second, CheckpointIgnoredAtPromotion: true})
	mustGrant(t, ignoring, 1, 100)
	ignoring.Checkpoint(1, 7, t0)
	ignoring.Promote(t0, 0)
	if _, left, _ := ignoring.TimeToLive(1, t0); left != 100 {
		t.Fatalf("planted bug: %d s left, want the full 100: not planted", left)
	}
}

func mustGrant(t *testing.T, le *Lessor, id, ttl int64) {
	t.Helper()
	if _, err := le.Grant(id, ttl, t0); err != nil {
		t.Fatal(err)
	}
}
