package sim

import (
	"fmt"
	"slices"
	"strings"

	lin "github.com/cairn-db/cairn/linearizability"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// clockFault is a stretch of time in which a member's lease clock ran at a
// rate other than real time (skew), or a moment it jumped.
type clockFault struct {
	startMicros, endMicros int64 // endMicros 0: until the end of the run
	// rate is the clock's speed relative to real time; 0 for a jump.
	rate float64
}

// noteClockFault records a skew (rate > 0) or a jump (rate 0) starting
// now and returns what ends it.
func (w *world) noteClockFault(rate float64) func() {
	w.clockFaults = append(w.clockFaults, clockFault{startMicros: w.sched.nowMicros, rate: rate})
	i := len(w.clockFaults) - 1
	if rate == 0 {
		w.clockFaults[i].endMicros = w.sched.nowMicros
	}
	return func() { w.clockFaults[i].endMicros = w.sched.nowMicros }
}

// clockBounds returns the fastest rate any member's clock ran at during
// [from, to] (at least 1) and whether any clock jumped then.
func (w *world) clockBounds(from, to int64) (rate float64, jumped bool) {
	rate = 1
	for _, f := range w.clockFaults {
		end := f.endMicros
		if end == 0 {
			end = to
		}
		if f.startMicros > to || end < from {
			continue
		}
		if f.rate == 0 {
			jumped = true
		} else {
			rate = max(rate, f.rate)
		}
	}
	return rate, jumped
}

// mostAdvanced is the member of the converged cluster at the highest
// revision.
func (w *world) mostAdvanced() *member {
	members := w.inCluster()
	source := members[0]
	for _, m := range members {
		if m.node.Store().Rev() > source.node.Store().Rev() {
			source = m
		}
	}
	return source
}

// checkLeasesAndWatches runs the watch and lease checks on the converged
// cluster against the committed history; it must run before the
// linearizability check, as it completes the history's revocation records.
func (w *world) checkLeasesAndWatches(committed []lin.Event) {
	members := w.inCluster()
	w.resolveRevocations(committed)
	w.checkWatches(committed)
	w.checkLeaseExpiry()
	w.checkRevokedKeysGone(members)
	w.checkFencedLock(committed)
}

// resolveRevocations finishes the history's revocation records: one that
// no member's events returned is returned now if the committed history
// holds it, and left out (no effect) if it never happened.
func (w *world) resolveRevocations(committed []lin.Event) {
	byRevision := map[int64][]lin.Event{}
	for _, e := range committed {
		byRevision[e.Revision] = append(byRevision[e.Revision], e)
	}
	found := map[int64]int64{} // lease → revision that deleted its keys
	for _, e := range committed {
		if id, ok := leaseOf(e.Key); ok && e.Type == lin.EventDelete && found[id] == 0 {
			found[id] = e.Revision
		}
	}
	for _, l := range w.leaseOrder {
		rev := found[l.id]
		switch {
		case l.revokedRevision != 0:
			if rev != l.revokedRevision {
				w.failAs(FailLease, "lease %x: revoked at revision %d in a member's events, %d in the committed history", l.id, l.revokedRevision, rev)
			}
		case rev != 0:
			l.revokedRevision = rev
			w.rec.Return(l.revocation, revocationResponseOf(l, byRevision[rev]))
		default:
			w.rec.Fail(l.revocation)
		}
	}
}

func revocationResponseOf(l *simLease, events []lin.Event) lin.Response {
	var leaseKeys, lockKeys int64
	for _, e := range events {
		switch {
		case e.Key == l.lockKey():
			lockKeys++
		case strings.HasPrefix(e.Key, leaseKeyPrefix):
			leaseKeys++
		}
	}
	return lin.Response{HeaderRevision: events[0].Revision, Succeeded: true,
		Results: []lin.Response{{Deleted: leaseKeys}, {Deleted: lockKeys}}}
}

// checkLeaseExpiry: a lease the client did not revoke loses its keys only
// once its TTL has passed since the last acknowledged keep-alive (or the
// grant) was sent, in real time scaled by the fastest lease clock that
// ran meanwhile, less one tick. Leases during which a lease clock jumped
// are excused: a leader whose clock leaps expires leases early, as etcd's
// would. Faults of raft ticks alone are not recorded: they must not move
// lease time.
func (w *world) checkLeaseExpiry() {
	checked, excused := 0, 0
	for _, l := range w.leaseOrder {
		if l.revokedMicros == 0 || l.lastAckSentMicros < 0 {
			continue
		}
		if l.revokeSentMicros >= 0 && l.revokeSentMicros <= l.revokedMicros {
			continue // the client asked for it
		}
		rate, jumped := w.clockBounds(l.lastAckSentMicros, l.revokedMicros)
		if jumped {
			excused++
			continue
		}
		checked++
		held := l.revokedMicros - l.lastAckSentMicros
		least := int64(float64(l.ttlSeconds*second)/rate) - leaseSlackMicros
		if held < least {
			w.failAs(FailLease, "lease %x (ttl %ds): keys deleted at revision %d, %dms after the last acknowledged keep-alive was sent (at least %dms expected, clock rate up to %.2f)",
				l.id, l.ttlSeconds, l.revokedRevision, held/millisecond, least/millisecond, rate)
		}
	}
	w.trace.printf("leases: %d granted, %d expiries checked, %d excused by clock jumps", len(w.leaseOrder), checked, excused)
	if w.opts.leaseCheckpointing() {
		w.trace.printf("lease checkpoints: %d checkpointed leases checked at promotions", w.checkpointedPromotions)
	}
}

// checkRevokedKeysGone: every member has the same leases, and no member
// keeps a key of a lease that is gone, in the keyspace or in its lease
// index.
func (w *world) checkRevokedKeysGone(members []*member) {
	var want []int64
	for i, m := range members {
		var ids []int64
		for _, l := range m.node.Leases() {
			ids = append(ids, l.ID)
		}
		slices.Sort(ids)
		if i == 0 {
			want = ids
		} else if !slices.Equal(ids, want) {
			w.failAs(FailLease, "leases differ: %s has %x, %s has %x", members[0].name(), want, m.name(), ids)
			return
		}
	}
	for _, l := range w.leaseOrder {
		if _, alive := slices.BinarySearch(want, l.id); alive {
			continue
		}
		if l.revokedRevision == 0 && l.lastAckSentMicros >= 0 {
			// Gone without a revision: it had no keys left to delete.
			w.trace.printf("lease %x gone without deleting keys", l.id)
		}
		for _, m := range members {
			if err := leaseKeysGone(m, l); err != nil {
				w.failAs(FailLease, "lease %x is gone but %s: %v", l.id, m.name(), err)
				return
			}
		}
	}
}

func leaseKeysGone(m *member, l *simLease) error {
	attached, err := m.node.Store().LeaseKeys(l.id)
	if err != nil {
		return err
	}
	if len(attached) > 0 {
		return fmt.Errorf("still indexes keys %q under it", attached)
	}
	for _, r := range []*pb.RangeRequest{
		{Key: []byte(strings.TrimSuffix(l.key(), "a")), RangeEnd: []byte(lin.PrefixEnd(strings.TrimSuffix(l.key(), "a")))},
		{Key: []byte(l.lockKey())},
	} {
		rr, err := m.node.Store().Range(r)
		if err != nil {
			return err
		}
		if len(rr.GetKvs()) > 0 {
			return fmt.Errorf("still holds %q", rr.GetKvs()[0].GetKey())
		}
	}
	return nil
}

// checkFencedLock replays the committed history: every write of the fenced
// key is made by the lease whose lock key has the lowest create_revision
// at that revision, and once another holder has written, an earlier one
// never writes again.
func (w *world) checkFencedLock(committed []lin.Event) {
	live := map[string]int64{} // lock key → create revision
	done := map[string]bool{}  // holders that were succeeded
	last, writes := "", 0
	for _, e := range committed {
		switch {
		case strings.HasPrefix(e.Key, lockKeyPrefix) && e.Type == lin.EventPut:
			if _, ok := live[e.Key]; !ok {
				live[e.Key] = e.Revision
			}
		case strings.HasPrefix(e.Key, lockKeyPrefix):
			delete(live, e.Key)
		case e.Key == fenceKey && e.Type == lin.EventPut:
			writer := lockKeyPrefix + strings.SplitN(e.Value, "-", 2)[0]
			holder := lowestCreated(live)
			if writer != holder || done[writer] {
				w.failAs(FailLock, "%s wrote the fenced key at revision %d while %s held the lock", writer, e.Revision, holderName(holder))
				return
			}
			if last != "" && last != writer {
				done[last] = true
			}
			last = writer
			writes++
		}
	}
	w.trace.printf("lock: %d fenced writes, one holder at a time", writes)
}

func lowestCreated(live map[string]int64) string {
	holder := ""
	for _, k := range sortedKeys(live) {
		if holder == "" || live[k] < live[holder] {
			holder = k
		}
	}
	return holder
}

func holderName(k string) string {
	if k == "" {
		return "nobody"
	}
	return k
}
