package sim

import (
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The corruption checks (node/corrupt.go) run in every simulated cluster,
// far more often than in production, so every seed exercises them: a
// healthy cluster must never raise CORRUPT (checkNoCorruptAlarm), and the
// planted corruption (-plant corrupt-applied-value: one member applies
// some puts with another value) must be turned into a CORRUPT alarm.
const (
	// corruptCheckTicks is the periodic check's interval: 3 s of virtual
	// time.
	corruptCheckTicks = 30
	// compactHashCheckTicks is the compaction hash check's interval.
	compactHashCheckTicks = 20
	// corruptedMemberID is the one member the CorruptAppliedValue knob is
	// planted in; the others apply faithfully.
	corruptedMemberID = 1
)

// knobs are the planted bugs of this member: the run's, except that the
// planted corruption is only in corruptedMemberID (every member corrupting
// alike would agree).
func (m *member) knobs() node.TestingKnobs {
	k := m.w.opts.Knobs
	if m.id != corruptedMemberID {
		k.CorruptAppliedValue = false
	}
	return k
}

// hashForChecks computes the hashes the member's checks asked for and
// reports them at once: the production driver does it on another
// goroutine, which only delays the report.
func (m *member) hashForChecks(reqs []node.HashRequest) {
	for _, r := range reqs {
		resp, err := m.node.HashKV(&pb.HashKVRequest{Revision: r.Revision})
		if err == nil {
			m.w.trace.printf("%s hashes revision %d for check %d: %08x (compacted %d)", m.name(), r.Revision, r.CheckIndex, resp.GetHash(), resp.GetCompactRevision())
		}
		m.node.ReportHash(r, resp, err)
	}
}

// checkCorruptAlarmOn fails the run as soon as member m lists a CORRUPT
// alarm, before the planted corruption shows in reads.
func (w *world) checkCorruptAlarmOn(m *member) {
	if w.failed() || !m.up() {
		return
	}
	for _, a := range m.node.Alarms() {
		if a.GetAlarm() == pb.AlarmType_CORRUPT {
			w.failAs(FailCorruptAlarm, "%s has the CORRUPT alarm of member %x: the corruption checks found replicas that differ", m.name(), a.GetMemberID())
			return
		}
	}
}

// checkNoCorruptAlarm fails the run when a member has a CORRUPT alarm:
// the corruption checks found members whose keyspaces differ at one
// revision. It runs before healing, since the alarm refuses every write
// and the liveness check would then fail first.
func (w *world) checkNoCorruptAlarm() {
	for _, m := range w.members {
		w.checkCorruptAlarmOn(m)
	}
}
