package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leases: clients that grant leases, attach keys to them, keep them alive
// for a while, then revoke or abandon them, and record what every call
// observed and when. The attached keys are outside KeyPrefix, so the
// revisions they make (their puts, and the deletes when their lease ends)
// are foreign to the KV history (see linearizability's Recorder.SetForeign);
// what is checked is the lease's own life (CheckLeases in package chaos) and
// that its keys go when it goes, all at one revision (checkLeaseKeys).

// LeaseKeyPrefix is the prefix of the keys attached to leases:
// LeaseKeyPrefix + the lease ID in hex + "/" + the key's index.
const LeaseKeyPrefix = "chaos-lease/"

// LeaseKey is the name of the i-th key attached to lease id.
func LeaseKey(id clientv3.LeaseID, i int) string {
	return fmt.Sprintf("%s%x/%d", LeaseKeyPrefix, int64(id), i)
}

// LeaseOp is a lease call.
type LeaseOp int

const (
	LeaseGrant LeaseOp = iota + 1
	LeaseKeepAlive
	LeaseTimeToLive
	LeaseRevoke
	// LeaseAttach is a put of a key with the lease: it succeeds only if
	// the lease exists when it is applied.
	LeaseAttach
)

func (op LeaseOp) String() string {
	switch op {
	case LeaseGrant:
		return "grant"
	case LeaseKeepAlive:
		return "keep-alive"
	case LeaseTimeToLive:
		return "time-to-live"
	case LeaseRevoke:
		return "revoke"
	case LeaseAttach:
		return "attach"
	}
	return "lease-op?"
}

// LeaseOutcome is what a lease call says of its lease.
type LeaseOutcome int

const (
	// LeaseUnknown: the call failed; it says nothing.
	LeaseUnknown LeaseOutcome = iota
	// LeaseAlive: the lease existed when the call was served. A grant or
	// keep-alive also renewed it for TTL seconds from then; an attach put
	// its key.
	LeaseAlive
	// LeaseGone: the lease did not exist when the call was served (a
	// keep-alive or time-to-live that found none), or was revoked by it.
	LeaseGone
)

func (o LeaseOutcome) String() string {
	switch o {
	case LeaseAlive:
		return "alive"
	case LeaseGone:
		return "gone"
	}
	return "unknown"
}

// LeaseObservation is one lease call: when it was sent and answered
// (offsets on the run's clock) and what it said.
type LeaseObservation struct {
	Lease          clientv3.LeaseID
	Op             LeaseOp
	Sent, Received time.Duration
	Outcome        LeaseOutcome
	// TTL is the lease's time to live in seconds that an alive grant or
	// keep-alive renewed it for.
	TTL int64
	// Key and Revision are an attach's key and, when it succeeded, the
	// revision of its put.
	Key      string
	Revision int64
}

// Renews reports whether the observation renewed its lease.
func (o LeaseObservation) Renews() bool {
	return o.Outcome == LeaseAlive && (o.Op == LeaseGrant || o.Op == LeaseKeepAlive)
}

// LeaseConfig shapes the lease traffic.
type LeaseConfig struct {
	// Endpoints are the proxied client URLs of every member. Client i is
	// pinned to endpoint i for i < len(Endpoints) (so a member that should
	// refuse to renew keeps being asked); the others balance.
	Endpoints []string
	Clients   int
	// TTLSeconds is the TTL asked for each lease.
	TTLSeconds int64
	// KeepAliveInterval is the time between two calls on a held lease.
	KeepAliveInterval time.Duration
	// HoldMin and HoldMax bound how long a lease is kept alive before it
	// is revoked or abandoned.
	HoldMin, HoldMax time.Duration
	// RevokePercent of the leases are revoked at the end of their hold;
	// the others are abandoned and must expire.
	RevokePercent int
	// KeysMax bounds the keys attached to each lease (0 to KeysMax, one
	// put each, right after the grant).
	KeysMax int
	// RequestTimeout bounds every call.
	RequestTimeout time.Duration
	Seed           uint64
}

// leaseCallsMax bounds the calls of one run, whatever its length.
const leaseCallsMax = 200_000

// timeToLivePercent of the calls on a held lease ask its time to live
// instead of renewing it.
const timeToLivePercent = 20

// LeaseWorkload is a running lease traffic generator.
type LeaseWorkload struct {
	cfg   LeaseConfig
	clock func() time.Duration
	calls atomic.Int64

	mu struct {
		sync.Mutex
		observations []LeaseObservation
		leases       []clientv3.LeaseID
	}
}

// NewLeases returns a lease workload reading the run's clock from clock.
func NewLeases(cfg LeaseConfig, clock func() time.Duration) *LeaseWorkload {
	return &LeaseWorkload{cfg: cfg, clock: clock}
}

// Run issues lease calls until ctx is done and every client has finished
// its last call (at most RequestTimeout later). Leases held then are
// abandoned: they must expire.
func (lw *LeaseWorkload) Run(ctx context.Context) error {
	var clients []*clientv3.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range lw.cfg.Clients {
		endpoints := lw.cfg.Endpoints
		if i < len(endpoints) {
			endpoints = endpoints[i : i+1]
		}
		c, err := NewClient(endpoints)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lw.runClient(ctx, c, rand.New(rand.NewPCG(lw.cfg.Seed, 0x1ea5e+uint64(i))))
		}()
	}
	wg.Wait()
	return nil
}

// Observations returns every observation so far.
func (lw *LeaseWorkload) Observations() []LeaseObservation {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return append([]LeaseObservation(nil), lw.mu.observations...)
}

// Leases returns every lease granted, in grant order.
func (lw *LeaseWorkload) Leases() []clientv3.LeaseID {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return append([]clientv3.LeaseID(nil), lw.mu.leases...)
}

// Calls is the number of lease calls issued.
func (lw *LeaseWorkload) Calls() int64 { return lw.calls.Load() }

// runClient grants, holds and lets go of one lease after another.
func (lw *LeaseWorkload) runClient(ctx context.Context, cli *clientv3.Client, rng *rand.Rand) {
	for ctx.Err() == nil && lw.calls.Load() < leaseCallsMax {
		id, ok := lw.grant(ctx, cli)
		if !ok {
			sleep(ctx, lw.cfg.KeepAliveInterval)
			continue
		}
		for i := range rng.IntN(lw.cfg.KeysMax + 1) {
			lw.Attach(ctx, cli, id, i)
		}
		hold := lw.cfg.HoldMin + time.Duration(rng.Int64N(int64(lw.cfg.HoldMax-lw.cfg.HoldMin)+1))
		revoke := rng.IntN(100) < lw.cfg.RevokePercent
		until := time.Now().Add(hold)
		gone := false
		for !gone && ctx.Err() == nil && time.Now().Before(until) {
			sleep(ctx, lw.cfg.KeepAliveInterval)
			op := LeaseKeepAlive
			if rng.IntN(100) < timeToLivePercent {
				op = LeaseTimeToLive
			}
			gone = lw.Call(ctx, cli, op, id).Outcome == LeaseGone
		}
		if revoke && !gone && ctx.Err() == nil {
			lw.Call(ctx, cli, LeaseRevoke, id)
		}
	}
}

func (lw *LeaseWorkload) grant(ctx context.Context, cli *clientv3.Client) (clientv3.LeaseID, bool) {
	callCtx, cancel := context.WithTimeout(ctx, lw.cfg.RequestTimeout)
	defer cancel()
	lw.calls.Add(1)
	sent := lw.clock()
	resp, err := cli.Grant(callCtx, lw.cfg.TTLSeconds)
	if err != nil {
		// A grant whose outcome is unknown may have made a lease nobody
		// knows the ID of; it expires unobserved, which nothing checks.
		return 0, false
	}
	lw.record(LeaseObservation{Lease: resp.ID, Op: LeaseGrant, Sent: sent, Received: lw.clock(), Outcome: LeaseAlive, TTL: resp.TTL}, true)
	return resp.ID, true
}

// Call issues one keep-alive, time-to-live or revoke of id through cli
// and records what it observed.
func (lw *LeaseWorkload) Call(ctx context.Context, cli *clientv3.Client, op LeaseOp, id clientv3.LeaseID) LeaseObservation {
	callCtx, cancel := context.WithTimeout(ctx, lw.cfg.RequestTimeout)
	defer cancel()
	lw.calls.Add(1)
	obs := LeaseObservation{Lease: id, Op: op, Sent: lw.clock()}
	var err error
	switch op {
	case LeaseKeepAlive:
		var resp *clientv3.LeaseKeepAliveResponse
		if resp, err = cli.KeepAliveOnce(callCtx, id); err == nil {
			obs.Outcome, obs.TTL = LeaseAlive, resp.TTL
		}
	case LeaseTimeToLive:
		var resp *clientv3.LeaseTimeToLiveResponse
		if resp, err = cli.TimeToLive(callCtx, id); err == nil {
			// etcd answers a lease it does not have with TTL -1, and one
			// about to expire with 0.
			obs.Outcome = LeaseAlive
			if resp.TTL < 0 {
				obs.Outcome = LeaseGone
			}
		}
	case LeaseRevoke:
		if _, err = cli.Revoke(callCtx, id); err == nil {
			obs.Outcome = LeaseGone
		}
	}
	obs.Received = lw.clock()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		obs.Outcome = LeaseGone
	}
	lw.record(obs, false)
	return obs
}

// Attach puts the i-th key of lease id with the lease through cli and
// records what it observed: alive with the put's revision, gone if the
// lease was not found, unknown on any other error.
func (lw *LeaseWorkload) Attach(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID, i int) LeaseObservation {
	callCtx, cancel := context.WithTimeout(ctx, lw.cfg.RequestTimeout)
	defer cancel()
	lw.calls.Add(1)
	obs := LeaseObservation{Lease: id, Op: LeaseAttach, Key: LeaseKey(id, i), Sent: lw.clock()}
	resp, err := cli.Put(callCtx, obs.Key, fmt.Sprintf("attached at %v", obs.Sent), clientv3.WithLease(id))
	obs.Received = lw.clock()
	switch {
	case err == nil:
		obs.Outcome, obs.Revision = LeaseAlive, resp.Header.Revision
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		obs.Outcome = LeaseGone
	}
	lw.record(obs, false)
	return obs
}

func (lw *LeaseWorkload) record(obs LeaseObservation, granted bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.mu.observations = append(lw.mu.observations, obs)
	if granted {
		lw.mu.leases = append(lw.mu.leases, obs.Lease)
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
