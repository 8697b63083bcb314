package sim

import (
	"errors"
	"math/rand/v2"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Some seeds run their members with a small --quota-backend-bytes, so the
// database passes it during the run: writes then fail with NOSPACE, the
// members raise NOSPACE alarms through raft, and clients that see a
// refusal disarm them, as an operator would (listing the alarms, then
// deactivating each). Refused writes are definite failures in the history:
// a refused write that applied anyway breaks linearizability.
//
// The quota's draws come from their own stream of the seed, so seeds
// without a quota run exactly as they did before quotas were simulated.

const (
	// quotaSeedsOneIn: one seed in quotaSeedsOneIn runs with a small quota.
	quotaSeedsOneIn = 4
	// quotaBaseBytes and quotaSpanBytes bound the quota drawn: a fresh
	// member's database is a few KiB, and a run writes a few hundred KiB
	// of log, so the quota is passed somewhere in the run.
	quotaBaseBytes = 16 << 10
	quotaSpanBytes = 256 << 10
	// disarmOneIn: a client disarms after one refusal in disarmOneIn.
	disarmOneIn = 2
	// quotaStream names the quota's random stream of a seed, and
	// seedSpread spreads consecutive seeds over it (PCG's first draws of
	// consecutive seeds are alike).
	quotaStream = 0x71756f7461 // "quota"
	seedSpread  = 0x9e3779b97f4a7c15
)

// quotaWorld is the run's quota and its random stream.
type quotaWorld struct {
	// bytes is the members' QuotaBackendBytes; 0 leaves etcd's default.
	bytes int64
	rng   *rand.Rand
	// disarms counts the alarm deactivations clients proposed.
	disarms int
}

func newQuotaWorld(seed uint64) quotaWorld {
	q := quotaWorld{rng: rand.New(rand.NewPCG(seed*seedSpread, quotaStream))}
	if q.rng.IntN(quotaSeedsOneIn) == 0 {
		q.bytes = quotaBaseBytes + q.rng.Int64N(quotaSpanBytes)
	}
	return q
}

// limits are the members' request limits: the quota, the rest etcd's
// defaults.
func (q *quotaWorld) limits() node.Limits { return node.Limits{QuotaBackendBytes: q.bytes} }

// refused is told the error of every client operation: after a NOSPACE
// refusal the client may disarm the alarms the member lists.
func (w *world) refused(m *member, err error) {
	if !errors.Is(err, rpctypes.ErrGRPCNoSpace) || !m.up() || w.quota.rng.IntN(disarmOneIn) != 0 {
		return
	}
	for _, a := range m.node.Alarms() {
		if a.GetAlarm() != pb.AlarmType_NOSPACE {
			continue
		}
		w.quota.disarms++
		w.trace.printf("disarm the NOSPACE alarm of %x on %s", a.GetMemberID(), m.name())
		id := m.start(node.Request{Alarm: &pb.AlarmRequest{
			Action: pb.AlarmRequest_DEACTIVATE, MemberID: a.GetMemberID(), Alarm: a.GetAlarm(),
		}})
		w.await(m, id, func(*member, *node.Completion) {})
	}
}

// livenessWrite is the write the liveness check commits: a delete when
// the quota may have been passed, which NOSPACE does not refuse.
func (w *world) livenessWrite(key, value string) lin.Request {
	if w.quota.bytes > 0 {
		return lin.Delete(key)
	}
	return lin.Put(key, value)
}

// checkAlarmsAgree requires every member in the cluster to have the same
// alarms: they are replicated state.
func (w *world) checkAlarmsAgree() {
	members := w.inCluster()
	want := members[0].node.Alarms()
	for _, m := range members[1:] {
		got := m.node.Alarms()
		if len(got) != len(want) {
			w.failAs(FailConvergence, "%s has alarms %v, %s has %v", members[0].name(), want, m.name(), got)
			return
		}
		for i := range got {
			if got[i].GetMemberID() != want[i].GetMemberID() || got[i].GetAlarm() != want[i].GetAlarm() {
				w.failAs(FailConvergence, "%s has alarms %v, %s has %v", members[0].name(), want, m.name(), got)
				return
			}
		}
	}
	if w.quota.bytes > 0 {
		w.trace.printf("quota %d bytes: %d alarms at the end, %d disarms", w.quota.bytes, len(want), w.quota.disarms)
	}
}
