package sim

import (
	"bytes"
	"fmt"
	"time"

	lin "github.com/cairn-db/cairn/linearizability"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func (w *world) rememberPuts(req lin.Request, resp lin.Response) {
	switch {
	case req.Kind == lin.OpPut:
		w.ackedPuts = append(w.ackedPuts, ackedPut{req.Key, req.Value, resp.HeaderRevision})
	case req.Kind == lin.OpTxn && resp.Succeeded:
		for _, op := range req.Then {
			if op.Kind == lin.OpPut {
				w.ackedPuts = append(w.ackedPuts, ackedPut{op.Key, op.Value, resp.HeaderRevision})
			}
		}
	}
}

// finish heals every fault and runs the end-of-run checks.
func (w *world) finish() {
	if w.failed() {
		return
	}
	w.checkNoCorruptAlarm()
	w.healAll()
	w.checkLiveness()
	w.finalRead()
	w.converge()
	if w.failed() {
		return
	}
	w.checkConvergence()
	w.checkAlarmsAgree()
	w.checkAckedWrites()
	committed, err := w.committedHistory(w.mostAdvanced())
	if err != nil {
		w.fail("%v", err)
		return
	}
	w.checkSerializableReads(committed)
	w.checkLeasesAndWatches(committed)
	w.checkLinearizable(committed)
	w.checkAuth(committed)
}

func (w *world) healAll() {
	w.trace.printf("heal all")
	w.net.heal()
	for _, m := range w.members {
		m.tickMicros, m.diskMicros = tickMicros, defaultDiskMicros
		m.leaseClock.setRate(100)
		m.diskFailing.Off()
		m.resume()
		w.restart(m)
	}
}

// checkLiveness requires a healed cluster to commit a write within a
// bounded time.
func (w *world) checkLiveness() {
	c := &client{w: w, id: 0, seenModRevision: map[string]int64{}}
	deadline := w.sched.nowMicros + livenessBoundMicros
	for w.sched.nowMicros < deadline && !w.failed() {
		op := w.issueOnce(c, w.livenessWrite("liveness", fmt.Sprint(w.sched.nowMicros)))
		if op != nil && op.acked {
			w.trace.printf("liveness: write committed")
			return
		}
		w.runUntil(w.sched.nowMicros + 100*millisecond)
	}
	w.failAs(FailLiveness, "no write committed within %dms of healing", livenessBoundMicros/millisecond)
}

// issueOnce sends one operation to the leader (or any member) and runs the
// world until it finishes.
func (w *world) issueOnce(c *client, req lin.Request) *pendingOp {
	m := w.leader()
	if m == nil {
		m = w.randomLiveMember()
	}
	if m == nil {
		return nil
	}
	before := len(m.waiting)
	c.start(m, req)
	var op *pendingOp
	for _, id := range sortedKeys(m.waiting) {
		if p := m.waiting[id]; p.c == c && !p.done {
			op = p
		}
	}
	if op == nil || len(m.waiting) == before {
		return op
	}
	w.runWhile(requestTimeoutMicros+millisecond, func() bool { return !op.done })
	return op
}

// converge runs until no client operation is in flight and every member
// has applied everything committed.
func (w *world) converge() {
	ok := w.runWhile(convergeBoundMicros, func() bool { return w.inflight > 0 || !w.converged() })
	if !ok && !w.failed() {
		w.failAs(FailConvergence, "members did not converge within %ds of healing: %s", convergeBoundMicros/second, w.appliedSummary())
	}
}

func (w *world) converged() bool {
	leader := w.leader()
	if leader == nil {
		return false
	}
	commit := leader.node.Status().CommitIndex
	for _, m := range w.inCluster() {
		if !m.up() || m.node.Status().AppliedIndex != commit {
			return false
		}
	}
	return true
}

func (w *world) appliedSummary() string {
	s := ""
	for _, m := range w.members {
		if m.up() {
			st := m.node.Status()
			s += fmt.Sprintf("%s(applied %d commit %d) ", m.name(), st.AppliedIndex, st.CommitIndex)
		}
	}
	return s
}

// finalRead records a linearizable read of every key, so the history ends
// with the final state and a lost write shows.
func (w *world) finalRead() {
	c := &client{w: w, id: 0, seenModRevision: map[string]int64{}}
	op := w.issueOnce(c, lin.Prefix(keyPrefix, 0))
	if op == nil || !op.acked {
		w.failAs(FailLiveness, "final read did not complete")
	}
}

// checkConvergence requires equal keyspace hashes on every member at the
// lowest revision they all reached (a write still in flight may have
// applied on some members and not yet on others).
func (w *world) checkConvergence() {
	members := w.inCluster()
	rev := members[0].node.Store().Rev()
	for _, m := range members {
		rev = min(rev, m.node.Store().Rev())
	}
	var want uint32
	for i, m := range members {
		// The key index is derived state that HashKV does not cover.
		if err := m.node.Store().VerifyKeyIndex(); err != nil {
			w.failAs(FailConvergence, "%s: %v", m.name(), err)
		}
		hash, _, err := m.node.Store().HashKV(rev)
		if err != nil {
			w.failAs(FailConvergence, "HashKV(%d) on %s: %v", rev, m.name(), err)
			return
		}
		if i == 0 {
			want = hash
		} else if hash != want {
			w.failAs(FailConvergence, "%s hash %08x at revision %d, %s has %08x", members[0].name(), want, rev, m.name(), hash)
		}
	}
	w.trace.printf("convergence: %d members at revision %d, hash %08x", len(members), rev, want)
}

// checkAckedWrites requires every acknowledged put to be in every member's
// history at the revision it was acknowledged with.
func (w *world) checkAckedWrites() {
	for _, p := range w.ackedPuts {
		for _, m := range w.inCluster() {
			if p.revision < m.node.Store().CompactRev() {
				// Compacted away (the workload compacts): the committed
				// history has it, or it was lost.
				if !w.appliedPut(p.revision, p.key, p.value) {
					w.failAs(FailLostWrite, "acknowledged put %s=%s at revision %d is not in the committed history", p.key, p.value, p.revision)
					return
				}
				continue
			}
			rr, err := m.node.Store().Range(&pb.RangeRequest{Key: []byte(p.key), Revision: p.revision})
			if err != nil {
				w.failAs(FailLostWrite, "acknowledged put %s=%s at revision %d: read on %s: %v", p.key, p.value, p.revision, m.name(), err)
				return
			}
			kvs := rr.GetKvs()
			if len(kvs) != 1 || kvs[0].GetModRevision() != p.revision || !bytes.Equal(kvs[0].GetValue(), []byte(p.value)) {
				w.failAs(FailLostWrite, "acknowledged put %s=%s at revision %d lost on %s: found %v", p.key, p.value, p.revision, m.name(), kvs)
				return
			}
		}
	}
}

// checkLinearizable checks the client history, with the windows of its
// unknown-outcome writes narrowed by the committed history
// (lin.NarrowUnknownWrites).
func (w *world) checkLinearizable(committed []lin.Event) {
	// No wall-clock timeout: the search is bounded by a budget of model
	// steps, so its verdict does not depend on the machine.
	start := time.Now()
	result, _ := w.rec.CheckCommitted(committed, 0)
	w.limits.usage.LinearizabilityCheck = time.Since(start)
	w.limits.usage.LinearizabilitySteps = w.rec.LastCheckSteps()
	if f := linearizabilityFailure(result, len(w.rec.Operations()), w.limits.usage.LinearizabilitySteps); f != nil {
		w.failAs(f.Kind, "%s", f.Message)
		return
	}
	w.trace.printf("linearizability: ok")
}

// linearizabilityFailure turns porcupine's verdict into the run's failure,
// nil for a proof of linearizability. A search that took its whole step
// budget proved nothing: it fails with its own kind, never passes.
func linearizabilityFailure(result lin.Result, ops int, steps int64) *Failure {
	switch result {
	case lin.ResultOK:
		return nil
	case lin.ResultStepBudget:
		return &Failure{FailLinearizabilityUndecided, fmt.Sprintf("linearizability check undecided after %d model steps (history of %d ops)", steps, ops)}
	case lin.ResultIllegal:
		return &Failure{FailLinearizability, "the history is not linearizable (history.txt and linearization.html show where)"}
	}
	return &Failure{FailLinearizability, fmt.Sprintf("unexpected verdict %v", result)}
}
