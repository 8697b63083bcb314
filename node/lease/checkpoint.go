package lease

import (
	"container/heap"
	"math"
	"time"
)

// Checkpoints (etcd's LeaseCheckpoint feature gate): without them, a new
// leader gives every lease its full TTL again, so a lease whose client is
// gone outlives its TTL by as much as it had used before each leader
// change. With them, the primary reports each lease's remaining TTL every
// CheckpointInterval (DueCheckpoints); its member replicates the report
// through raft, and every member applies it (Checkpoint), so whichever is
// promoted next starts the lease from there. A keep-alive clears the
// checkpoint through raft before it renews (the node's job), so a renewed
// lease is never cut back to an older checkpoint.
//
// As in etcd 3.7.3: a lease is scheduled at grant, at promotion and when a
// checkpoint of it applies, only if it has more than CheckpointInterval
// left; a report is skipped (and the lease not scheduled again until its
// next checkpoint or promotion) when the lease has expired or has its
// whole TTL left (it was just renewed); remaining TTLs are whole seconds,
// rounded up.

// Checkpoint is one lease's remaining TTL as the primary reported it.
type Checkpoint struct {
	ID               int64
	RemainingSeconds int64
}

// Checkpoint records a lease's remaining TTL, as an applied checkpoint
// does (0 clears it, as a keep-alive's does), and, on the primary,
// schedules the lease's next one from now. It reports whether the lease
// exists.
func (le *Lessor) Checkpoint(id, remainingSeconds int64, now time.Time) bool {
	l, ok := le.leases[id]
	if !ok {
		return false
	}
	l.remainingSeconds = remainingSeconds
	if le.primary {
		le.scheduleCheckpoint(l, now)
	}
	return true
}

// RemainingSeconds is the lease's checkpointed remaining TTL (0: none).
func (le *Lessor) RemainingSeconds(id int64) int64 {
	if l, ok := le.leases[id]; ok {
		return l.remainingSeconds
	}
	return 0
}

// DueCheckpoints returns, on the primary, up to limit checkpoints due at
// now, soonest first, for the member to replicate.
func (le *Lessor) DueCheckpoints(now time.Time, limit int) []Checkpoint {
	if !le.primary || le.cfg.CheckpointInterval <= 0 {
		return nil
	}
	var out []Checkpoint
	for len(le.checkpoints) > 0 && len(out) < limit {
		top := le.checkpoints[0]
		if now.Before(top.at) {
			break
		}
		heap.Pop(&le.checkpoints)
		l, ok := le.leases[top.id]
		if !ok || !l.checkpointDue.Equal(top.at) {
			continue // stale
		}
		l.checkpointDue = time.Time{}
		if !now.Before(l.expiry) {
			continue
		}
		remaining := int64(math.Ceil(l.expiry.Sub(now).Seconds()))
		if remaining >= l.TTLSeconds {
			continue
		}
		out = append(out, Checkpoint{ID: l.ID, RemainingSeconds: remaining})
	}
	return out
}

// scheduleCheckpoint plans the lease's next checkpoint CheckpointInterval
// after now, if it has more than that left.
// REQUIRES: le.primary.
func (le *Lessor) scheduleCheckpoint(l *lease, now time.Time) {
	interval := le.cfg.CheckpointInterval
	if interval <= 0 {
		return
	}
	left := l.TTLSeconds
	if l.remainingSeconds > 0 {
		left = l.remainingSeconds
	}
	if time.Duration(left)*time.Second <= interval {
		return
	}
	l.checkpointDue = now.Add(interval)
	heap.Push(&le.checkpoints, dueItem{at: l.checkpointDue, id: l.ID})
	// Rescheduling leaves stale entries behind; rebuild before they
	// outnumber the live ones, so the queue stays within twice the leases.
	if len(le.checkpoints) > 2*len(le.leases)+64 {
		le.checkpoints = le.checkpoints[:0]
		for _, l := range le.leases {
			if !l.checkpointDue.IsZero() {
				le.checkpoints = append(le.checkpoints, dueItem{at: l.checkpointDue, id: l.ID})
			}
		}
		heap.Init(&le.checkpoints)
	}
}
