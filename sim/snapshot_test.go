package sim

import "testing"

// A snapshot lost on the network must be reported to its sender as failed,
// as cairn's transport reports every failed snapshot stream: raft then
// probes the member again and sends a new snapshot once the link heals.
// Unreported, raft waits for the lost one forever and the cluster never
// converges, a failure production cannot have.
func TestLostSnapshotIsReportedAndResent(t *testing.T) {
	withSeededCryptoRand(11, func() {
		w := newWorld(Options{Seed: 11, Members: 3, Clients: 4, NoFaults: true, DurationMicros: 10 * second})
		defer w.close()
		// A short log, so the restarted member needs a snapshot.
		w.snapshotCount, w.snapshotCatchUp = 20, 2
		w.startMembers()
		w.startClients()
		w.runUntil(2 * second)
		leader := w.leader()
		if leader == nil {
			t.Fatal("no leader after 2 s")
		}
		lagging := w.members[0]
		if lagging == leader {
			lagging = w.members[1]
		}
		lagging.crash()
		w.runUntil(6 * second)
		// The first snapshot to the lagging member meets a partition of
		// its link, which heals two seconds later.
		partitioned := false
		w.net.beforeSnapshot = func(from, to *member) {
			if to == lagging && !partitioned {
				partitioned = true
				w.net.block(from, to)
				w.sched.after(2*second, w.net.heal)
			}
		}
		w.restart(lagging)
		w.runUntil(w.opts.DurationMicros)
		w.converge()
		if !partitioned || w.net.snapshotsFailed == 0 {
			t.Fatalf("no snapshot was lost (partitioned %t, reported failed %d): the test did not test", partitioned, w.net.snapshotsFailed)
		}
		if w.failed() {
			t.Fatalf("%v\n  applied: %s", w.failures, w.appliedSummary())
		}
		t.Logf("%d snapshots reported failed; converged: %s", w.net.snapshotsFailed, w.appliedSummary())
	})
}
