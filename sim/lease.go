package sim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Leases: lease clients grant leases with client-chosen IDs, attach keys
// to them, keep some alive (a ReadIndex on the member that leads, then
// Renew there, as the server does), revoke some and let others expire;
// some use their lease for a fenced lock. See docs/simulation.md for the
// rules checked.
//
// Keys: "lease/<id>/a" is a lease's plain key, "lock/<id>" its lock key,
// "fence" the key lock holders write. The KV workload's keys and prefix
// reads ("k...") never touch them. Puts, lock reads and fenced txns are
// recorded in the client history (the model ignores the lease a put
// carries). A revocation, whether a client asked for it or the leader
// decided the lease expired, deletes the lease's keys at one revision: it
// is recorded as a txn of two deletes ("lease/<id>/" and "lock/<id>")
// invoked when the grant is sent and returned when the first member applies
// it, so the history stays complete: every revision is a recorded write.
// Grants, keep-alives and revocation requests create no revision and are
// not recorded.

const (
	leaseKeyPrefix = "lease/"
	lockKeyPrefix  = "lock/"
	fenceKey       = "fence"
	// leaseClientBase and revocationClientBase keep the history's client
	// IDs of lease clients and of revocations apart from KV clients'.
	leaseClientBase      = 100
	revocationClientBase = 1000
	// leaseSlackMicros is the tick quantisation of lease expiry: the leader
	// reads its clock in whole ticks, and a tick is at most 200 ms long
	// (the slowest skewed clock), so a lease may be revoked up to one tick
	// earlier than TTL after a keep-alive was sent.
	leaseSlackMicros = 2 * tickMicros
)

// simLease is one lease the workload granted (or tried to).
type simLease struct {
	id         int64
	c          *leaseClient
	ttlSeconds int64
	// revocation is the history's record of the revocation.
	revocation lin.OpID
	// lastAckSentMicros is when the last acknowledged grant or keep-alive
	// was sent; -1 while none was acknowledged.
	lastAckSentMicros int64
	// revokeSentMicros is when the client asked for the revocation; -1 if
	// it never did.
	revokeSentMicros int64
	// revokedRevision and revokedMicros are the revision that deleted the
	// lease's keys and when a member first applied it; 0 until then.
	revokedRevision, revokedMicros int64
	// ended is set when the client stops using the lease.
	ended bool
	lock  bool
	// fences counts the fenced writes this lease's holder made.
	fences int
}

func (l *simLease) key() string     { return fmt.Sprintf("%s%016x/a", leaseKeyPrefix, l.id) }
func (l *simLease) lockKey() string { return fmt.Sprintf("%s%016x", lockKeyPrefix, l.id) }

// revocationRequest is a revocation as the history sees it.
func (l *simLease) revocationRequest() lin.Request {
	prefix := fmt.Sprintf("%s%016x/", leaseKeyPrefix, l.id)
	return lin.Txn(nil, []lin.Request{lin.DeleteRange(prefix, lin.PrefixEnd(prefix)), lin.Delete(l.lockKey())}, nil)
}

// leaseOf returns the lease ID a lease or lock key names.
func leaseOf(key string) (int64, bool) {
	var rest string
	switch {
	case strings.HasPrefix(key, leaseKeyPrefix):
		rest, _, _ = strings.Cut(strings.TrimPrefix(key, leaseKeyPrefix), "/")
	case strings.HasPrefix(key, lockKeyPrefix):
		rest = strings.TrimPrefix(key, lockKeyPrefix)
	default:
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 16, 64)
	return int64(id), err == nil
}

// leaseClient runs one lease at a time.
type leaseClient struct {
	w       *world
	id      int
	counter int
}

func (w *world) startLeaseClients() {
	w.leases = map[int64]*simLease{}
	for i := range 1 + w.rng.IntN(3) {
		c := &leaseClient{w: w, id: i + 1}
		w.sched.after(w.rng.Int64N(second), c.grant)
	}
}

func (c *leaseClient) historyID() int { return leaseClientBase + c.id }

func (c *leaseClient) active() bool {
	return !c.w.failed() && c.w.sched.nowMicros < c.w.opts.DurationMicros
}

// next starts the client's next lease after a pause.
func (c *leaseClient) next() {
	c.w.sched.after(50*millisecond+c.w.rng.Int64N(500*millisecond), c.grant)
}

func (c *leaseClient) grant() {
	w := c.w
	if !c.active() {
		return
	}
	m := w.randomLiveMember()
	if m == nil {
		c.next()
		return
	}
	c.counter++
	l := &simLease{id: int64(c.id)<<32 | int64(c.counter), c: c, ttlSeconds: 2 + w.rng.Int64N(4),
		lastAckSentMicros: -1, revokeSentMicros: -1, lock: w.rng.IntN(2) == 0}
	w.leases[l.id] = l
	w.leaseOrder = append(w.leaseOrder, l)
	l.revocation = w.rec.Invoke(revocationClientBase+len(w.leaseOrder), l.revocationRequest())
	sent := w.sched.nowMicros
	w.trace.printf("l%d → %s grant %x ttl %ds", c.id, m.name(), l.id, l.ttlSeconds)
	id := m.start(node.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: l.id, TTL: l.ttlSeconds}})
	w.await(m, id, func(m *member, done *node.Completion) {
		if done == nil || done.Err != nil {
			w.trace.printf("l%d ✗ grant %x: %v", c.id, l.id, completionError(done))
			l.ended = true // an unknown grant may exist: it expires alone
			c.next()
			return
		}
		l.ttlSeconds = done.Response.(*pb.LeaseGrantResponse).GetTTL()
		l.lastAckSentMicros = sent
		w.trace.printf("l%d ← grant %x ttl %ds", c.id, l.id, l.ttlSeconds)
		c.use(l)
	})
}

func completionError(c *node.Completion) error {
	if c == nil {
		return errors.New("timeout or crash")
	}
	return c.Err
}

// use attaches a key to a fresh lease, plans its life (kept alive or not,
// revoked or left to expire) and, for a lock, starts acquiring.
func (c *leaseClient) use(l *simLease) {
	w := c.w
	keepAlive := w.rng.IntN(10) < 7
	life := second + w.rng.Int64N(12*second)
	if !keepAlive {
		life = w.rng.Int64N(l.ttlSeconds * second)
	}
	revoke := w.rng.IntN(3) == 0
	key := l.key()
	if l.lock {
		key = l.lockKey()
	}
	c.put(l, key)
	if keepAlive {
		c.scheduleKeepAlive(l)
	}
	w.sched.after(life, func() { c.end(l, revoke) })
}

func (c *leaseClient) put(l *simLease, key string) {
	m := c.w.randomLiveMember()
	if m == nil {
		return
	}
	c.w.recordedOp(c.historyID(), m, lin.Put(key, fmt.Sprintf("l%d-%d", c.id, c.counter)), l.id, func(_ lin.Response, ok bool) {
		if ok && l.lock && !l.ended {
			c.pollLock(l)
		}
	})
}

// end stops using the lease: no more keep-alives, and maybe a revocation;
// then the client moves on to its next lease.
func (c *leaseClient) end(l *simLease, revoke bool) {
	w := c.w
	if l.ended {
		return
	}
	l.ended = true
	if revoke && c.active() {
		if m := w.randomLiveMember(); m != nil {
			l.revokeSentMicros = w.sched.nowMicros
			w.trace.printf("l%d → %s revoke %x", c.id, m.name(), l.id)
			id := m.start(node.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: l.id}})
			w.await(m, id, func(*member, *node.Completion) {})
		}
	}
	c.next()
}

// scheduleKeepAlive sends a keep-alive every third of the TTL, as etcd's
// client does.
func (c *leaseClient) scheduleKeepAlive(l *simLease) {
	c.w.sched.after(l.ttlSeconds*second/3, func() {
		if l.ended || !c.active() {
			return
		}
		c.keepAlive(l)
		c.scheduleKeepAlive(l)
	})
}

// keepAlive renews the lease as the server does: it sends the keep-alive
// to the member that leads (the one a random live member believes leads,
// reachable from it), whose core confirms its leadership before renewing.
// Only an acknowledgement with a TTL counts; the time that counts is when
// the keep-alive was sent.
func (c *leaseClient) keepAlive(l *simLease) {
	w := c.w
	sent := w.sched.nowMicros
	leader := c.leaderFor()
	if leader == nil {
		return
	}
	id := leader.start(node.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: l.id}})
	w.await(leader, id, func(m *member, done *node.Completion) {
		if done == nil || l.ended {
			return
		}
		resp, err := done.Result()
		ttl := int64(0)
		if err == nil {
			ttl = resp.(*pb.LeaseKeepAliveResponse).GetTTL()
		}
		switch {
		case (err == nil && ttl > 0) || (w.opts.plantFollowerKeepAlive && errors.Is(err, node.ErrNotLeader)):
			l.lastAckSentMicros = max(l.lastAckSentMicros, sent)
			w.trace.printf("l%d ← keep-alive %x on %s ttl %d", c.id, l.id, m.name(), ttl)
		case err == nil:
			w.trace.printf("l%d ← keep-alive %x: ttl 0, lease lost", c.id, l.id)
			l.ended = true
		default:
			w.trace.printf("l%d ✗ keep-alive %x on %s: %v", c.id, l.id, m.name(), err)
		}
	})
}

// leaderFor is where a keep-alive goes: a random live member if it leads,
// else the leader it knows of, if reachable from it both ways. With the
// planted bug follower-acks-keep-alive, the random member itself.
func (c *leaseClient) leaderFor() *member {
	w := c.w
	m := w.randomLiveMember()
	if m == nil || w.opts.plantFollowerKeepAlive {
		return m
	}
	st := m.node.Status()
	if st.IsLeader {
		return m
	}
	leader := w.memberByID(st.Leader)
	if leader == nil || !leader.up() || w.net.isBlocked(m, leader) || w.net.isBlocked(leader, m) {
		return nil
	}
	return leader
}

// pollLock reads the lock prefix: the lowest create_revision holds the
// lock. The holder writes the fenced key; a waiter polls again.
func (c *leaseClient) pollLock(l *simLease) {
	w := c.w
	if l.ended || !c.active() {
		return
	}
	m := w.randomLiveMember()
	if m == nil {
		w.sched.after(100*millisecond, func() { c.pollLock(l) })
		return
	}
	w.recordedOp(c.historyID(), m, lin.Prefix(lockKeyPrefix, 0), 0, func(resp lin.Response, ok bool) {
		if !ok {
			w.sched.after(100*millisecond, func() { c.pollLock(l) })
			return
		}
		holder, mine := lockHolder(resp.KVs), false
		for _, kv := range resp.KVs {
			mine = mine || kv.Key == l.lockKey()
		}
		switch {
		case !mine:
			w.trace.printf("l%d: lock key %x gone", c.id, l.id)
		case holder == l.lockKey():
			c.fence(l)
		default:
			w.sched.after(100*millisecond+w.rng.Int64N(300*millisecond), func() { c.pollLock(l) })
		}
	})
}

// lockHolder is the key with the lowest create_revision.
func lockHolder(kvs []lin.KeyValue) string {
	holder, lowest := "", int64(0)
	for _, kv := range kvs {
		if holder == "" || kv.CreateRevision < lowest {
			holder, lowest = kv.Key, kv.CreateRevision
		}
	}
	return holder
}

// fence writes the fenced key as the lock holder: a txn that puts it only
// if the holder's own lock key still exists.
func (c *leaseClient) fence(l *simLease) {
	w := c.w
	if (l.ended && !w.opts.plantUnfencedLock) || !c.active() {
		return
	}
	m := w.randomLiveMember()
	if m == nil {
		w.sched.after(100*millisecond, func() { c.fence(l) })
		return
	}
	l.fences++
	value := fmt.Sprintf("%016x-%d", l.id, l.fences)
	cmp := []lin.Compare{{Key: l.lockKey(), Target: lin.CompareVersion, Result: lin.CompareGreater, Version: 0}}
	req := lin.Txn(cmp, []lin.Request{lin.Put(fenceKey, value)}, nil)
	if w.opts.plantUnfencedLock {
		req = lin.Put(fenceKey, value)
	}
	w.recordedOp(c.historyID(), m, req, 0, func(resp lin.Response, ok bool) {
		if ok && req.Kind == lin.OpTxn && !resp.Succeeded {
			w.trace.printf("l%d: fenced write refused, lock %x lost", c.id, l.id)
			return
		}
		w.sched.after(100*millisecond+w.rng.Int64N(200*millisecond), func() { c.fence(l) })
	})
}

// observeRevocations notes, from a member's applied events, the revisions
// that deleted lease keys: the first member to apply one returns the
// revocation's record in the history.
func (w *world) observeRevocations(events []*mvccpb.Event) {
	for i := 0; i < len(events); {
		rev := events[i].GetKv().GetModRevision()
		j := i
		for j < len(events) && events[j].GetKv().GetModRevision() == rev {
			j++
		}
		w.observeRevision(events[i:j])
		i = j
	}
}

func (w *world) observeRevision(events []*mvccpb.Event) {
	var l *simLease
	for _, e := range events {
		if id, ok := leaseOf(string(e.GetKv().GetKey())); ok && e.GetType() == mvccpb.Event_DELETE {
			l = w.leases[id]
		}
	}
	if l == nil || l.revokedRevision != 0 {
		return
	}
	l.revokedRevision, l.revokedMicros = events[0].GetKv().GetModRevision(), w.sched.nowMicros
	w.trace.printf("lease %x revoked at revision %d", l.id, l.revokedRevision)
	w.rec.Return(l.revocation, revocationResponse(l, events))
}

// revocationResponse is what the recorded revocation txn returned: how
// many lease keys and lock keys the revision deleted.
func revocationResponse(l *simLease, events []*mvccpb.Event) lin.Response {
	var leaseKeys, lockKeys int64
	for _, e := range events {
		switch key := string(e.GetKv().GetKey()); {
		case key == l.lockKey():
			lockKeys++
		case strings.HasPrefix(key, leaseKeyPrefix):
			leaseKeys++
		}
	}
	return lin.Response{HeaderRevision: events[0].GetKv().GetModRevision(), Succeeded: true,
		Results: []lin.Response{{Deleted: leaseKeys}, {Deleted: lockKeys}}}
}
