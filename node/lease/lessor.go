package lease

import (
	"cmp"
	"container/heap"
	"errors"
	"math"
	"slices"
	"time"
)

// MaxTTLSeconds is the largest TTL a lease may ask for (etcd's
// MaxLeaseTTL).
const MaxTTLSeconds = 9_000_000_000

// Errors of lessor operations. The server maps them to etcd's rpctypes
// errors.
var (
	// ErrNotFound: no lease has this ID (or, for Renew, it has expired and
	// its revocation is on its way).
	ErrNotFound = errors.New("lease: not found")
	// ErrExists: Grant of an ID already granted.
	ErrExists = errors.New("lease: already exists")
	// ErrTTLTooLarge: Grant of a TTL above MaxTTLSeconds.
	ErrTTLTooLarge = errors.New("lease: TTL too large")
	// ErrNotPrimary: Renew or TimeToLive on a member that does not lead; the
	// request must be served by the leader.
	ErrNotPrimary = errors.New("lease: not the primary lessor")
)

// Config configures a Lessor.
type Config struct {
	// MinTTLSeconds is the smallest TTL a lease gets: shorter requests are
	// raised to it. etcd derives it from the election timeout
	// (MinTTLSeconds func). Default 2 (etcd's with its default timings).
	MinTTLSeconds int64
	// ExpiredMax bounds the leases one Expired call returns, so a pile of
	// expiries is revoked over several ticks, never all at once. Default 100
	// (etcd revokes up to 500 every 500 ms; 100 per 100 ms tick is the same
	// rate).
	ExpiredMax int
	// RetryInterval is how long after Expired reported a lease it is
	// reported again if its revocation has not been applied by then (the
	// proposal was lost). Default 3 s, as etcd.
	RetryInterval time.Duration
	// CheckpointInterval, when positive, turns checkpoints on (etcd's
	// LeaseCheckpoint feature gate; checkpoint.go): the primary reports,
	// through DueCheckpoints, the remaining TTL of each lease with more
	// than CheckpointInterval left, every CheckpointInterval, for its
	// member to replicate; a lessor promoted later starts each lease from
	// its last applied checkpoint instead of its full TTL. 0: off.
	CheckpointInterval time.Duration
	// CheckpointIgnoredAtPromotion is a planted bug (tests only): Promote
	// gives every lease its full TTL, as if no checkpoint had applied.
	CheckpointIgnoredAtPromotion bool
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MinTTLSeconds == 0 {
		c.MinTTLSeconds = 2
	}
	if c.ExpiredMax == 0 {
		c.ExpiredMax = 100
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 3 * time.Second
	}
}

// MinTTLSeconds is etcd's minimum lease TTL: one and a half election
// timeouts (in whole ticks, rounded down as etcd does), rounded up to whole
// seconds. A lease must outlive the election that may follow a leader's
// failure, or it could expire before its client finds the new leader.
func MinTTLSeconds(electionTicks int, tick time.Duration) int64 {
	d := time.Duration((3*electionTicks)/2) * tick
	return int64(math.Ceil(d.Seconds()))
}

// Lease is what readers see of one lease.
type Lease struct {
	ID int64
	// TTLSeconds is the granted TTL (after raising it to the minimum).
	TTLSeconds int64
}

type lease struct {
	Lease
	// expiry is when the lease expires; zero (forever) unless primary.
	expiry time.Time
	// due is when Expired next looks at the lease: its expiry, or, once
	// reported, the time to report it again. Zero unless primary.
	due time.Time
	// remainingSeconds is the remaining TTL the last applied checkpoint
	// recorded; 0 if none, or since a renewal cleared it. Promote starts
	// the lease from it.
	remainingSeconds int64
	// checkpointDue is when DueCheckpoints next reports the lease; zero
	// if not scheduled. Primary only.
	checkpointDue time.Time
}

// Lessor holds a member's leases. See the package documentation.
type Lessor struct {
	cfg Config

	// leases by ID.
	leases map[int64]*lease
	// primary is set between Promote and Demote.
	primary bool
	// queue orders leases by due time (then ID), primary only. Entries are
	// not removed when a lease is renewed or revoked; one whose time is not
	// its lease's due time is stale and skipped.
	// Invariant: every primary lease's (due, id) is in queue.
	queue dueQueue
	// checkpoints orders scheduled checkpoints by time (then ID), primary
	// only, with stale entries as in queue: one whose time is not its
	// lease's checkpointDue is skipped.
	checkpoints dueQueue
}

// New returns an empty lessor that is not primary.
func New(cfg Config) *Lessor {
	cfg.EnsureDefaults()
	return &Lessor{cfg: cfg, leases: map[int64]*lease{}}
}

// MinTTLSeconds is the minimum TTL this lessor grants.
func (le *Lessor) MinTTLSeconds() int64 { return le.cfg.MinTTLSeconds }

// Grant adds a lease, as an applied LeaseGrant does, and returns the TTL
// granted. On the primary the lease expires ttl seconds after now.
func (le *Lessor) Grant(id, ttlSeconds int64, now time.Time) (int64, error) {
	switch {
	case id == 0:
		return 0, ErrNotFound
	case ttlSeconds > MaxTTLSeconds:
		return 0, ErrTTLTooLarge
	}
	if _, ok := le.leases[id]; ok {
		return 0, ErrExists
	}
	l := &lease{Lease: Lease{ID: id, TTLSeconds: max(ttlSeconds, le.cfg.MinTTLSeconds)}}
	le.leases[id] = l
	if le.primary {
		le.refreshLocked(l, now, 0)
		le.scheduleCheckpoint(l, now)
	}
	return l.TTLSeconds, nil
}

// Reset removes every lease and demotes the lessor, before the leases of a
// replaced database (an installed snapshot) are recovered.
func (le *Lessor) Reset() {
	le.leases, le.primary, le.queue, le.checkpoints = map[int64]*lease{}, false, nil, nil
}

// Recover adds a lease read back from storage, as it was granted.
func (le *Lessor) Recover(id, ttlSeconds int64) {
	if le.primary {
		panic("lease: Recover on a primary lessor")
	}
	le.leases[id] = &lease{Lease: Lease{ID: id, TTLSeconds: ttlSeconds}}
}

// Revoke removes a lease, as an applied LeaseRevoke does.
func (le *Lessor) Revoke(id int64) error {
	if _, ok := le.leases[id]; !ok {
		return ErrNotFound
	}
	delete(le.leases, id)
	return nil
}

// Exists reports whether the lease is granted and not revoked.
func (le *Lessor) Exists(id int64) bool {
	_, ok := le.leases[id]
	return ok
}

// Lookup returns a lease.
func (le *Lessor) Lookup(id int64) (Lease, bool) {
	l, ok := le.leases[id]
	if !ok {
		return Lease{}, false
	}
	return l.Lease, true
}

// Len is the number of leases.
func (le *Lessor) Len() int {
	return len(le.leases)
}

// IsPrimary reports whether the lessor tracks expiries.
func (le *Lessor) IsPrimary() bool {
	return le.primary
}

// Leases returns every lease, soonest expiry first (then by ID; on a
// follower, where none expires, by ID).
func (le *Lessor) Leases() []Lease {
	ls := make([]*lease, 0, len(le.leases))
	for _, l := range le.leases {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *lease) int {
		if c := a.expiry.Compare(b.expiry); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	out := make([]Lease, len(ls))
	for i, l := range ls {
		out[i] = l.Lease
	}
	return out
}

// Renew restarts a lease's TTL at now, as a keep-alive does, and returns the
// granted TTL. Only the primary renews. An expired lease is not renewed
// (ErrNotFound): its revocation is due, and renewing it would let a client
// believe in a lease the cluster is about to revoke.
func (le *Lessor) Renew(id int64, now time.Time) (int64, error) {
	if !le.primary {
		return 0, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok || !now.Before(l.expiry) {
		return 0, ErrNotFound
	}
	le.refreshLocked(l, now, 0)
	return l.TTLSeconds, nil
}

// TimeToLive returns a lease's granted TTL and the whole seconds it has left
// at now (truncated, as etcd does). Only the primary knows the latter.
func (le *Lessor) TimeToLive(id int64, now time.Time) (granted, remaining int64, err error) {
	if !le.primary {
		return 0, 0, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok {
		return 0, 0, ErrNotFound
	}
	return l.TTLSeconds, int64(l.expiry.Sub(now).Seconds()), nil
}

// Promote makes the lessor primary, as its member becomes leader: every
// lease expires its remaining TTL (its last checkpoint's, else its full
// TTL) plus extend after now. (etcd extends by one election timeout, so
// that clients have time to find the new leader.)
func (le *Lessor) Promote(now time.Time, extend time.Duration) {
	le.primary = true
	le.queue, le.checkpoints = le.queue[:0], le.checkpoints[:0]
	for _, l := range le.sortedLeases() {
		ttl := l.TTLSeconds
		// Checkpoints recorded while checkpointing was on are not cleared
		// by renewals once it is off: only trust them while it is on.
		if l.remainingSeconds > 0 && le.cfg.CheckpointInterval > 0 && !le.cfg.CheckpointIgnoredAtPromotion {
			ttl = l.remainingSeconds
		}
		l.expiry = now.Add(extend + time.Duration(ttl)*time.Second)
		l.due = l.expiry
		le.queue = append(le.queue, dueItem{at: l.due, id: l.ID})
		le.scheduleCheckpoint(l, now)
	}
	heap.Init(&le.queue)
}

// sortedLeases returns the leases by ID: an order that does not depend on
// the map's.
func (le *Lessor) sortedLeases() []*lease {
	ls := make([]*lease, 0, len(le.leases))
	for _, l := range le.leases {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *lease) int { return cmp.Compare(a.ID, b.ID) })
	return ls
}

// Demote makes the lessor a follower's: no lease expires.
func (le *Lessor) Demote() {
	le.primary = false
	for _, l := range le.leases {
		l.expiry, l.due, l.checkpointDue = time.Time{}, time.Time{}, time.Time{}
	}
	le.queue, le.checkpoints = nil, nil
}

// Expired returns, on the primary, up to ExpiredMax leases whose expiry is
// at or before now, soonest first, for the caller to propose their
// revocation. A lease returned is returned again after RetryInterval if it
// still exists then.
func (le *Lessor) Expired(now time.Time) []int64 {
	if !le.primary {
		return nil
	}
	var out []int64
	for len(le.queue) > 0 && len(out) < le.cfg.ExpiredMax {
		top := le.queue[0]
		l, ok := le.leases[top.id]
		if !ok || !l.due.Equal(top.at) {
			heap.Pop(&le.queue) // stale
			continue
		}
		if now.Before(top.at) {
			break
		}
		heap.Pop(&le.queue)
		out = append(out, l.ID)
		l.due = now.Add(le.cfg.RetryInterval)
		heap.Push(&le.queue, dueItem{at: l.due, id: l.ID})
	}
	return out
}

// refreshLocked sets a primary lease to expire its TTL plus extend after
// now.
// REQUIRES: le.primary.
func (le *Lessor) refreshLocked(l *lease, now time.Time, extend time.Duration) {
	l.expiry = now.Add(extend + time.Duration(l.TTLSeconds)*time.Second)
	l.due = l.expiry
	heap.Push(&le.queue, dueItem{at: l.due, id: l.ID})
	// Renewals leave stale entries behind; rebuild before they outnumber
	// the live ones, so the queue stays within twice the leases.
	if len(le.queue) > 2*len(le.leases)+64 {
		le.rebuildQueueLocked()
	}
}

func (le *Lessor) rebuildQueueLocked() {
	le.queue = le.queue[:0]
	for _, l := range le.leases {
		le.queue = append(le.queue, dueItem{at: l.due, id: l.ID})
	}
	heap.Init(&le.queue)
}

// dueItem is one entry of the due queue.
type dueItem struct {
	at time.Time
	id int64
}

// dueQueue is a min-heap by (at, id): a total order, so the order of
// Expired does not depend on the order leases were inserted.
type dueQueue []dueItem

func (q dueQueue) Len() int { return len(q) }
func (q dueQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].id < q[j].id
}
func (q dueQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)   { *q = append(*q, x.(dueItem)) }
func (q *dueQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
