package sim

import (
	"fmt"
	"strings"
)

// FailureKind names what found a failure: one of the end-of-run checks, a
// bound on the run, or an error the simulator cannot carry on after.
// Planted-bug tests assert the kind of the check they target.
type FailureKind string

// The kinds of failure.
const (
	// FailLiveness: the healed cluster committed no write in time.
	FailLiveness FailureKind = "liveness"
	// FailConvergence: members did not apply everything committed in
	// time, or their keyspaces differ at the same revision.
	FailConvergence FailureKind = "convergence"
	// FailLostWrite: an acknowledged put is missing from a member's
	// history, or has another value or revision there.
	FailLostWrite FailureKind = "lost-write"
	// FailLinearizability: porcupine proved the client history is not
	// linearizable.
	FailLinearizability FailureKind = "linearizability"
	// FailLinearizabilityUndecided: porcupine's search took its whole
	// step budget (lin.SearchStepsPerOperation) without deciding; the history is
	// neither proven nor refuted, which is a failure to investigate, never
	// a pass. The budget counts model steps, not time, so the verdict is
	// the same on every machine.
	FailLinearizabilityUndecided FailureKind = "linearizability-undecided"
	// FailSerializableRead: a serializable read returned something other
	// than the committed keyspace at its header revision, or a header
	// revision ahead of its member's applied state.
	FailSerializableRead FailureKind = "serializable-read"
	// FailWatch: a watcher's events break a watch guarantee.
	FailWatch FailureKind = "watch"
	// FailHistoricalRead: a read at a past revision did not return the
	// committed store at that revision, or the wrong error.
	FailHistoricalRead FailureKind = "historical-read"
	// FailRangeStream: a RangeStream's chunks broke etcd's framing (a
	// chunk after the last, a header, more or count before it).
	FailRangeStream FailureKind = "range-stream"
	// FailLease: a lease expired early, or revoked leases left keys.
	FailLease FailureKind = "lease"
	// FailAuth: a write applied or a read served after the user lost the
	// permission, or a permission denied that was never revoked (auth.go).
	FailAuth FailureKind = "auth"
	// FailLock: two sessions held the lock at once.
	FailLock FailureKind = "lock"
	// FailLimit: the run exceeded one of its Limits.
	FailLimit FailureKind = "limit"
	// FailCrashRecovery: a member restarted after a crash without the
	// term, vote or log it had made durable, or holding an installed
	// snapshot with the sender's log (crashpoint.go).
	FailCrashRecovery FailureKind = "crash-recovery"
	// FailPanic: a member or the simulator panicked inside an event.
	FailPanic FailureKind = "panic"
	// FailError: an operation that must not fail did (a member's
	// Process, a proposal, reading the simulated disk).
	FailError FailureKind = "error"
	// FailCorruptAlarm: a member raised the CORRUPT alarm: the
	// corruption checks found members whose keyspaces differ at one
	// revision.
	FailCorruptAlarm FailureKind = "corrupt-alarm"
	// FailWorkerCrash: the process running the seed died (cairnsim sets
	// it; a run never reports it about itself).
	FailWorkerCrash FailureKind = "worker-crash"
)

// Failure is one failed check of a run.
type Failure struct {
	Kind    FailureKind `json:"kind"`
	Message string      `json:"message"`
}

func (f Failure) String() string { return string(f.Kind) + ": " + f.Message }

// Failures are a run's failures, in the order they were found.
type Failures []Failure

func (fs Failures) String() string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// FailedWith reports whether one of the run's failures is of kind.
func (r *Result) FailedWith(kind FailureKind) bool {
	for _, f := range r.Failures {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

// failAs records a failure of kind; the run stops at the next event.
func (w *world) failAs(kind FailureKind, format string, args ...any) {
	f := Failure{Kind: kind, Message: fmt.Sprintf(format, args...)}
	w.trace.printf("FAIL %s", f)
	w.failures = append(w.failures, f)
}

// fail records an error the run cannot carry on after (FailError).
func (w *world) fail(format string, args ...any) { w.failAs(FailError, format, args...) }
