package node

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Alarms are replicated state, kept next to the applied index, one key
// each:
//
//	al <alarm type:4 BE> <member id:8 BE> → (empty)
//
// They change only by applying AlarmRequests, so every member has the same
// alarms at the same applied index, and a snapshot (a checkpoint of the
// whole database) carries them. As in etcd, an active NOSPACE alarm refuses
// writes that add data, and an active CORRUPT alarm refuses every write,
// when they apply: the check is deterministic on every member.
var alarmPrefix = []byte("al")

func alarmKey(a *pb.AlarmMember) []byte {
	k := binary.BigEndian.AppendUint32(slices.Clone(alarmPrefix), uint32(a.GetAlarm()))
	return binary.BigEndian.AppendUint64(k, a.GetMemberID())
}

// alarmList is the active alarms as of the applied index, sorted by type
// then member ID. The driver's loop writes it; any goroutine reads it.
// Each change publishes a new slice; published slices and their elements
// are never modified.
type alarmList struct {
	p atomic.Pointer[[]*pb.AlarmMember]
}

func (l *alarmList) current() []*pb.AlarmMember {
	if a := l.p.Load(); a != nil {
		return *a
	}
	return nil
}

func (l *alarmList) set(alarms []*pb.AlarmMember) {
	slices.SortFunc(alarms, compareAlarms)
	l.p.Store(&alarms)
}

func compareAlarms(a, b *pb.AlarmMember) int {
	return cmp.Or(cmp.Compare(a.GetAlarm(), b.GetAlarm()), cmp.Compare(a.GetMemberID(), b.GetMemberID()))
}

// get returns the active alarms of one type (NONE: all of them).
func (l *alarmList) get(t pb.AlarmType) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, a := range l.current() {
		if t == pb.AlarmType_NONE || a.GetAlarm() == t {
			out = append(out, &pb.AlarmMember{MemberID: a.GetMemberID(), Alarm: a.GetAlarm()})
		}
	}
	return out
}

func (l *alarmList) find(memberID uint64, t pb.AlarmType) (*pb.AlarmMember, bool) {
	i, ok := slices.BinarySearchFunc(l.current(), &pb.AlarmMember{MemberID: memberID, Alarm: t}, compareAlarms)
	if !ok {
		return nil, false
	}
	return l.current()[i], true
}

func (l *alarmList) active(t pb.AlarmType) bool { return len(l.get(t)) > 0 }

func loadAlarms(db *pebble.DB) ([]*pb.AlarmMember, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: alarmPrefix, UpperBound: []byte("am")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var alarms []*pb.AlarmMember
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(alarmPrefix)+4+8 {
			return nil, fmt.Errorf("alarm key %x: %w", k, errCorrupt)
		}
		t := pb.AlarmType(binary.BigEndian.Uint32(k[len(alarmPrefix):]))
		id := binary.BigEndian.Uint64(k[len(alarmPrefix)+4:])
		alarms = append(alarms, &pb.AlarmMember{MemberID: id, Alarm: t})
	}
	return alarms, it.Error()
}

// Alarms returns the active alarms, sorted by type then member; safe for
// concurrent use.
func (n *Node) Alarms() []*pb.AlarmMember { return n.alarms.get(pb.AlarmType_NONE) }

// applyAlarm applies one AlarmRequest as etcd does: GET lists the alarms
// of a type (NONE: all), ACTIVATE answers with the alarm (new or already
// active), DEACTIVATE with the alarm it removed (nothing if none was
// active).
func (n *Node) applyAlarm(b *pebble.Batch, rev int64, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp := &pb.AlarmResponse{Header: n.header(rev)}
	a := &pb.AlarmMember{MemberID: req.GetMemberID(), Alarm: req.GetAlarm()}
	switch req.GetAction() {
	case pb.AlarmRequest_GET:
		resp.Alarms = n.alarms.get(req.GetAlarm())
	case pb.AlarmRequest_ACTIVATE:
		if a.GetAlarm() == pb.AlarmType_NONE {
			break
		}
		resp.Alarms = []*pb.AlarmMember{a}
		if a.GetMemberID() == n.cfg.ID && a.GetAlarm() == pb.AlarmType_NOSPACE {
			n.noSpaceRaised = false
		}
		if _, ok := n.alarms.find(a.GetMemberID(), a.GetAlarm()); ok {
			break
		}
		if err := b.Set(alarmKey(a), nil, nil); err != nil {
			return nil, err
		}
		n.alarms.set(append(slices.Clone(n.alarms.current()), a))
	case pb.AlarmRequest_DEACTIVATE:
		if _, ok := n.alarms.find(a.GetMemberID(), a.GetAlarm()); !ok {
			break
		}
		resp.Alarms = []*pb.AlarmMember{a}
		if err := b.Delete(alarmKey(a), nil); err != nil {
			return nil, err
		}
		n.alarms.set(slices.DeleteFunc(slices.Clone(n.alarms.current()), func(x *pb.AlarmMember) bool {
			return compareAlarms(x, a) == 0
		}))
	}
	return resp, nil
}

// refusedByAlarm is the error with which an active alarm refuses a write
// when it applies, as etcd's capped and corrupt appliers refuse it: under
// CORRUPT every keyspace and lease write fails, under NOSPACE those that
// may add data (quotaCostBytes above zero).
func (n *Node) refusedByAlarm(req *pb.InternalRaftRequest) error {
	writes := req.Put != nil || req.DeleteRange != nil || req.Txn != nil || req.Compaction != nil ||
		req.LeaseGrant != nil || req.LeaseRevoke != nil
	switch {
	case writes && n.alarms.active(pb.AlarmType_CORRUPT):
		return rpctypes.ErrGRPCCorrupt
	case internalQuotaCostBytes(req) > 0 && n.alarms.active(pb.AlarmType_NOSPACE):
		return rpctypes.ErrGRPCNoSpace
	}
	return nil
}

// Quota costs, as etcd estimates them (the bytes a request may add).
const (
	// keyOverheadBytes is the estimated metadata of one stored version.
	keyOverheadBytes = 256
	// leaseOverheadBytes is the estimated size of one lease.
	leaseOverheadBytes = 64
)

// quotaCostBytes is what a request may add to the database: a put, its key
// and value and overhead; a txn, the puts of its costlier branch; a lease
// grant, a lease. Zero for every other request, which the quota never
// refuses.
func (r Request) quotaCostBytes() int {
	switch {
	case r.Put != nil:
		return putCostBytes(r.Put)
	case r.Txn != nil:
		return txnCostBytes(r.Txn)
	case r.LeaseGrant != nil:
		return leaseOverheadBytes
	}
	return 0
}

func internalQuotaCostBytes(req *pb.InternalRaftRequest) int {
	return Request{Put: req.Put, Txn: req.Txn, LeaseGrant: req.LeaseGrant}.quotaCostBytes()
}

func putCostBytes(p *pb.PutRequest) int {
	return keyOverheadBytes + len(p.GetKey()) + len(p.GetValue())
}

func txnCostBytes(t *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) int {
		sum := 0
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				sum += putCostBytes(p)
			}
			if nested := op.GetRequestTxn(); nested != nil {
				sum += txnCostBytes(nested)
			}
		}
		return sum
	}
	return max(branch(t.GetSuccess()), branch(t.GetFailure()))
}

// admitQuota refuses, at the door, a request that may add data while a
// NOSPACE alarm is active or while the database (as last sampled) would
// pass the quota with it. The latter also raises this member's NOSPACE
// alarm through raft, as etcd's quota check does.
func (n *Node) admitQuota(req Request) error {
	cost := req.quotaCostBytes()
	if cost == 0 {
		return nil
	}
	if n.alarms.active(pb.AlarmType_NOSPACE) {
		return rpctypes.ErrGRPCNoSpace
	}
	q := n.cfg.Limits.QuotaBackendBytes
	if q <= 0 || n.dbSizeBytes+int64(cost) < q {
		return nil
	}
	n.raiseNoSpace()
	return rpctypes.ErrGRPCNoSpace
}

// raiseNoSpace proposes this member's NOSPACE alarm, unless it is active or
// a proposal of it is still waiting (at most one is, for up to
// RequestTimeoutTicks).
func (n *Node) raiseNoSpace() {
	if _, ok := n.alarms.find(n.cfg.ID, pb.AlarmType_NOSPACE); ok {
		return
	}
	if n.noSpaceRaised && n.ticks-n.noSpaceRaisedAtTick < uint64(n.cfg.RequestTimeoutTicks) {
		return
	}
	n.noSpaceRaised, n.noSpaceRaisedAtTick = true, n.ticks
	n.propose(n.ids.next(), &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: n.cfg.ID, Alarm: pb.AlarmType_NOSPACE,
	}})
}
