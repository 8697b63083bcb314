package chaos

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cairn-db/cairn/chaos/workload"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The lease check. All times are offsets on the run's one monotonic clock,
// which the members' lessors share (they run on the same machine), so an
// order between a client's clock readings and a member's is sound:
//
//   - A grant or keep-alive answered "alive" (sent at s, TTL t) renewed the
//     lease at a moment after s, so the lease exists until at least s+t.
//   - A time-to-live answered "alive" (sent at s) saw the lease at a moment
//     after s.
//   - A call answered "gone" (received at r) saw no lease at a moment before
//     r, or revoked it then; a lease that is gone never comes back.
//
// So a "gone" received at r contradicts a renewal sent at s with TTL t when
// r < s+t (the lease expired early, or came back after it was gone), and an
// alive time-to-live sent at s when r < s. Leader changes only make a lease
// live longer (the new leader extends every lease), pauses and partitions
// only delay renewals, so neither excuses a contradiction.
//
// Expiry must also happen: after the run, every lease not revoked was
// abandoned, and once its TTL has passed since its last renewal was
// answered — plus an election timeout for the extension a new leader grants
// and leaseExpirySlack for the expiry itself to commit — every member must
// answer that the lease is gone.

// leaseExpirySlack is the time an expired lease is given to be revoked
// through raft once its TTL and a leader's extension have passed.
const leaseExpirySlack = 3 * time.Second

// leaseFinalProbeAttempts bounds the time-to-live calls made of one
// lease at the end when calls fail.
const leaseFinalProbeAttempts = 3

// CheckLeases finds the contradictions among a lease workload's
// observations, at most detailsMax of them described.
func CheckLeases(observations []workload.LeaseObservation) []string {
	byLease := map[clientv3.LeaseID][]workload.LeaseObservation{}
	var order []clientv3.LeaseID
	for _, o := range observations {
		if _, ok := byLease[o.Lease]; !ok {
			order = append(order, o.Lease)
		}
		byLease[o.Lease] = append(byLease[o.Lease], o)
	}
	var problems []string
	for _, id := range order {
		if p := leaseContradiction(byLease[id]); p != "" {
			problems = append(problems, fmt.Sprintf("lease %x: %s", int64(id), p))
		}
	}
	return problems
}

// leaseContradiction checks one lease's observations. A lease revoked by
// the workload may be gone before its TTL runs out, so the renewal rule
// applies only to "gone" answers received before the first revoke was sent;
// the rule that a lease never comes back applies to every one.
func leaseContradiction(obs []workload.LeaseObservation) string {
	var firstGone, firstExpired, lastRenewal, lastAlive *workload.LeaseObservation
	firstRevokeSent := time.Duration(math.MaxInt64)
	for i := range obs {
		if obs[i].Op == workload.LeaseRevoke {
			firstRevokeSent = min(firstRevokeSent, obs[i].Sent)
		}
	}
	for i := range obs {
		o := &obs[i]
		switch o.Outcome {
		case workload.LeaseGone:
			if firstGone == nil || o.Received < firstGone.Received {
				firstGone = o
			}
			if o.Received < firstRevokeSent && (firstExpired == nil || o.Received < firstExpired.Received) {
				firstExpired = o
			}
		case workload.LeaseAlive:
			if lastAlive == nil || o.Sent > lastAlive.Sent {
				lastAlive = o
			}
			if o.Renews() && (lastRenewal == nil || renewedUntil(*o) > renewedUntil(*lastRenewal)) {
				lastRenewal = o
			}
		}
	}
	if firstExpired != nil && lastRenewal != nil && firstExpired.Received < renewedUntil(*lastRenewal) {
		return fmt.Sprintf("%s answered gone at %v, but a %s sent at %v renewed it for %ds (until %v at least)",
			firstExpired.Op, firstExpired.Received, lastRenewal.Op, lastRenewal.Sent, lastRenewal.TTL, renewedUntil(*lastRenewal))
	}
	if firstGone != nil && lastAlive != nil && firstGone.Received < lastAlive.Sent {
		return fmt.Sprintf("%s answered gone at %v, but a %s sent later, at %v, found it alive",
			firstGone.Op, firstGone.Received, lastAlive.Op, lastAlive.Sent)
	}
	return ""
}

// renewedUntil is the earliest moment a renewal may let its lease expire.
func renewedUntil(o workload.LeaseObservation) time.Duration { return o.Sent + ttlDuration(o.TTL) }

func ttlDuration(seconds int64) time.Duration { return time.Duration(seconds) * time.Second }

// leaseExpiryDeadline is when every abandoned lease must be gone: the last
// keep-alive or grant that may have renewed it (answered or not) plus its
// TTL, and at least the TTL from quietSince (when the cluster was last
// known to change leader, at worst), each plus an election timeout and the
// slack.
func leaseExpiryDeadline(observations []workload.LeaseObservation, quietSince, electionTimeout time.Duration) time.Duration {
	ttl := map[clientv3.LeaseID]int64{}
	var ttlMax int64
	for _, o := range observations {
		if o.Op == workload.LeaseGrant {
			ttl[o.Lease] = o.TTL
			ttlMax = max(ttlMax, o.TTL)
		}
	}
	deadline := quietSince + ttlDuration(ttlMax)
	for _, o := range observations {
		if (o.Op == workload.LeaseGrant || o.Op == workload.LeaseKeepAlive) && o.Outcome != workload.LeaseGone {
			deadline = max(deadline, o.Received+ttlDuration(max(o.TTL, ttl[o.Lease])))
		}
	}
	return deadline + electionTimeout + leaseExpirySlack
}

// leaseExpiryRoundsMax bounds the waits for expiry when the leader keeps
// changing while the check waits.
const leaseExpiryRoundsMax = 3

// awaitLeaseExpiry waits until every abandoned lease must have expired.
// A new leader extends every lease, so a change of term during the wait
// starts it again from then.
func (r *runner) awaitLeaseExpiry() {
	quietSince := r.clock()
	for range leaseExpiryRoundsMax {
		term := r.maxTerm()
		deadline := leaseExpiryDeadline(r.leases.Observations(), quietSince, r.c.Config().ElectionTimeout)
		if wait := deadline - r.clock(); wait > 0 {
			time.Sleep(wait)
		}
		if r.maxTerm() == term {
			return
		}
		quietSince = r.clock()
	}
}

// maxTerm is the highest raft term any member reports, 0 if none answers.
func (r *runner) maxTerm() uint64 {
	var term uint64
	for _, m := range r.c.Members {
		if st, err := m.Status(); err == nil {
			term = max(term, st.RaftTerm)
		}
	}
	return term
}

// checkLeases waits until every abandoned lease must have expired, asks
// the cluster of each lease not yet seen gone, and checks every
// observation, the final ones included.
func (r *runner) checkLeases() Check {
	check := Check{Name: "leases"}
	r.awaitLeaseExpiry()
	observations := r.leases.Observations()
	gone := map[clientv3.LeaseID]bool{}
	for _, o := range observations {
		if o.Outcome == workload.LeaseGone {
			gone[o.Lease] = true
		}
	}
	cli, err := workload.NewClient(r.c.ClientURLs())
	if err != nil {
		check.Detail = fmt.Sprintf("client: %v", err)
		return check
	}
	defer cli.Close()
	var problems []string
	leases := r.leases.Leases()
	for _, id := range leases {
		if gone[id] {
			continue
		}
		final := workload.LeaseObservation{Outcome: workload.LeaseUnknown}
		for attempt := 0; attempt < leaseFinalProbeAttempts && final.Outcome == workload.LeaseUnknown; attempt++ {
			final = r.leases.Call(context.Background(), cli, workload.LeaseTimeToLive, id)
		}
		switch final.Outcome {
		case workload.LeaseAlive:
			problems = append(problems, fmt.Sprintf("lease %x: still alive at %v, after every renewal had run out", int64(id), final.Sent))
		case workload.LeaseUnknown:
			problems = append(problems, fmt.Sprintf("lease %x: no answer to time-to-live at the end", int64(id)))
		}
	}
	observations = r.leases.Observations()
	problems = append(problems, CheckLeases(observations)...)
	slices.Sort(problems)
	check.OK = len(problems) == 0
	check.Detail = leaseSummary(observations, len(leases))
	if !check.OK {
		check.Detail = fmt.Sprintf("%d problems: %s", len(problems), firstFew(problems))
	}
	return check
}

// leaseSummary counts what the lease workload saw.
func leaseSummary(observations []workload.LeaseObservation, leases int) string {
	renewals, gone, attached := 0, 0, 0
	for _, o := range observations {
		switch {
		case o.Op == workload.LeaseKeepAlive && o.Renews():
			renewals++
		case o.Op == workload.LeaseAttach && o.Outcome == workload.LeaseAlive:
			attached++
		case o.Outcome == workload.LeaseGone:
			gone++
		}
	}
	return fmt.Sprintf("%d leases, %d renewals, %d keys attached, %d seen gone", leases, renewals, attached, gone)
}
