package member

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// blockedFor is how long a test watches a blocked Lock or Campaign to be
// sure it does not return.
const blockedFor = 300 * time.Millisecond

// wantRPCError fails unless err is a gRPC error with etcd's code and
// message. The Lock and Election services return the client library's
// errors, which gRPC sends with code Unknown, as etcd does.
func wantRPCError(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	s, ok := status.FromError(err)
	if err == nil || !ok || s.Code() != code || s.Message() != msg {
		t.Fatalf("%s: got %v; want code %v, %q", what, err, code, msg)
	}
}

func grant(t *testing.T, c *clientv3.Client, ttlSeconds int64) clientv3.LeaseID {
	t.Helper()
	g, err := c.Grant(ctxT(t), ttlSeconds)
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

type lockResult struct {
	resp *v3lockpb.LockResponse
	err  error
}

func lockAsync(ctx context.Context, lc v3lockpb.LockClient, name string, lease clientv3.LeaseID) <-chan lockResult {
	done := make(chan lockResult, 1)
	go func() {
		r, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: int64(lease)})
		done <- lockResult{r, err}
	}()
	return done
}

func TestLockService(t *testing.T) {
	m, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	lc := v3lockpb.NewLockClient(c.ActiveConnection())
	first := grant(t, c, 60)
	held, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("mylock"), Lease: int64(first)})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("mylock/%x", first); string(held.Key) != want {
		t.Fatalf("lock key %q, want %q", held.Key, want)
	}
	if h := held.Header; h.ClusterId != m.Identity.ClusterID || h.MemberId != m.Identity.MemberID || h.Revision == 0 {
		t.Fatalf("lock header %+v", h)
	}
	// Locking again with the same lease holds the same key at once.
	again, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("mylock"), Lease: int64(first)})
	if err != nil || string(again.Key) != string(held.Key) {
		t.Fatalf("relock with the holder's lease = %v, %v", again, err)
	}

	// A second locker waits until Unlock.
	second := grant(t, c, 60)
	waiting := lockAsync(ctx, lc, "mylock", second)
	select {
	case r := <-waiting:
		t.Fatalf("second Lock returned while the lock is held: %+v", r)
	case <-time.After(blockedFor):
	}
	unlocked, err := lc.Unlock(ctx, &v3lockpb.UnlockRequest{Key: held.Key})
	if err != nil {
		t.Fatal(err)
	}
	r := <-waiting
	if r.err != nil || string(r.resp.Key) != fmt.Sprintf("mylock/%x", second) || r.resp.Header.Revision < unlocked.Header.Revision {
		t.Fatalf("second Lock after Unlock at %d = %+v", unlocked.Header.Revision, r)
	}
	// Unlocking a key that is gone succeeds.
	if _, err := lc.Unlock(ctx, &v3lockpb.UnlockRequest{Key: held.Key}); err != nil {
		t.Fatalf("unlock of a released key: %v", err)
	}
	if _, err := lc.Unlock(ctx, &v3lockpb.UnlockRequest{Key: r.resp.Key}); err != nil {
		t.Fatal(err)
	}

	// A lease that does not exist cannot lock.
	_, err = lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("mylock"), Lease: 0x999})
	wantRPCError(t, "lock with an unknown lease", err, codes.Unknown, "etcdserver: requested lease not found")

	// Lease 0: the server grants a lease (60 s, as etcd's session default).
	own, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("own")})
	if err != nil {
		t.Fatal(err)
	}
	var ownLease int64
	if _, err := fmt.Sscanf(string(own.Key), "own/%x", &ownLease); err != nil {
		t.Fatalf("key %q: %v", own.Key, err)
	}
	if ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(ownLease)); err != nil || ttl.GrantedTTL != 60 {
		t.Fatalf("lease the server granted: %+v, %v", ttl, err)
	}
}

// TestLockExpiredLease: the lock of a lease nobody keeps alive is released
// when the lease expires; a revoked lease cannot lock.
func TestLockExpiredLease(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	lc := v3lockpb.NewLockClient(c.ActiveConnection())
	short := grant(t, c, 1)
	if _, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(short)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := <-lockAsync(ctx, lc, "l", grant(t, c, 60))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("second Lock returned after %v, before the 1 s lease could expire", waited)
	}
	if _, err := c.Revoke(ctx, short); err == nil {
		t.Fatal("the expired lease could still be revoked")
	}
	_, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("other"), Lease: int64(short)})
	wantRPCError(t, "lock with an expired lease", err, codes.Unknown, "etcdserver: requested lease not found")
}

// TestLockCanceledWaiter: a waiter that gives up leaves no key behind, so
// it never takes the lock later.
func TestLockCanceledWaiter(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	lc := v3lockpb.NewLockClient(c.ActiveConnection())
	if _, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(grant(t, c, 60))}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, blockedFor)
	defer cancel()
	_, err := lc.Lock(waitCtx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(grant(t, c, 60))})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("waiter past its deadline: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := c.Get(ctx, "l/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys under l/ after the waiter gave up; want the holder's only", r.Count)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLockMutualExclusion: concurrent lockers on one member never hold the
// lock at the same time, and all get it.
func TestLockMutualExclusion(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	lc := v3lockpb.NewLockClient(c.ActiveConnection())
	const lockers, rounds = 5, 4
	var holders, acquired atomic.Int32
	var wg sync.WaitGroup
	for range lockers {
		lease := grant(t, c, 60)
		wg.Go(func() {
			for range rounds {
				r, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("mutex"), Lease: int64(lease)})
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				acquired.Add(1)
				time.Sleep(5 * time.Millisecond)
				holders.Add(-1)
				if _, err := lc.Unlock(ctx, &v3lockpb.UnlockRequest{Key: r.Key}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := acquired.Load(); got != lockers*rounds {
		t.Fatalf("acquired %d times, want %d", got, lockers*rounds)
	}
}

func TestElectionService(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	ec := v3electionpb.NewElectionClient(c.ActiveConnection())
	name := []byte("myelection")
	_, err := ec.Leader(ctx, &v3electionpb.LeaderRequest{Name: name})
	wantRPCError(t, "leader of an empty election", err, codes.Unknown, "election: no leader")

	first := grant(t, c, 60)
	won, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: int64(first), Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	l := won.Leader
	if string(l.Name) != "myelection" || string(l.Key) != fmt.Sprintf("myelection/%x", first) || l.Lease != int64(first) || l.Rev != won.Header.Revision {
		t.Fatalf("campaign leader key %+v at %d", l, won.Header.Revision)
	}
	observeCtx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	observer, err := ec.Observe(observeCtx, &v3electionpb.LeaderRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	wantObserved := func(value string) {
		t.Helper()
		r, err := observer.Recv()
		if err != nil || string(r.Kv.Value) != value {
			t.Fatalf("observed %v, %v; want value %q", r, err, value)
		}
	}
	wantObserved("v1")

	// A second candidate waits.
	second := grant(t, c, 60)
	campaigned := make(chan *v3electionpb.CampaignResponse, 1)
	go func() {
		r, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: int64(second), Value: []byte("w")})
		if err != nil {
			t.Error(err)
		}
		campaigned <- r
	}()
	select {
	case <-campaigned:
		t.Fatal("second candidate won while the first leads")
	case <-time.After(blockedFor):
	}

	if _, err := ec.Proclaim(ctx, &v3electionpb.ProclaimRequest{Leader: l, Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	wantObserved("v2")
	lead, err := ec.Leader(ctx, &v3electionpb.LeaderRequest{Name: name})
	if err != nil || string(lead.Kv.Key) != string(l.Key) || string(lead.Kv.Value) != "v2" {
		t.Fatalf("leader = %v, %v", lead, err)
	}
	stale := &v3electionpb.LeaderKey{Name: l.Name, Key: l.Key, Rev: l.Rev - 1, Lease: l.Lease}
	_, err = ec.Proclaim(ctx, &v3electionpb.ProclaimRequest{Leader: stale, Value: []byte("x")})
	wantRPCError(t, "proclaim with a stale leader key", err, codes.Unknown, "election: not leader")
	_, err = ec.Proclaim(ctx, &v3electionpb.ProclaimRequest{Value: []byte("x")})
	wantRPCError(t, "proclaim without a leader key", err, codes.Unknown, `"leader" field must be provided`)
	_, err = ec.Resign(ctx, &v3electionpb.ResignRequest{})
	wantRPCError(t, "resign without a leader key", err, codes.Unknown, `"leader" field must be provided`)

	if _, err := ec.Resign(ctx, &v3electionpb.ResignRequest{Leader: l}); err != nil {
		t.Fatal(err)
	}
	next := <-campaigned
	if next == nil || string(next.Leader.Key) != fmt.Sprintf("myelection/%x", second) {
		t.Fatalf("second campaign = %v", next)
	}
	wantObserved("w")
	// Resigning an election one no longer leads is not an error.
	if _, err := ec.Resign(ctx, &v3electionpb.ResignRequest{Leader: l}); err != nil {
		t.Fatalf("resign again: %v", err)
	}
	_, err = ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: 0x999, Value: []byte("v")})
	wantRPCError(t, "campaign with an unknown lease", err, codes.Unknown, "etcdserver: requested lease not found")
}

// TestElectionLeaseExpiry: the leader's lease expiring hands leadership to
// the next candidate, and observers see it.
func TestElectionLeaseExpiry(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	ec := v3electionpb.NewElectionClient(c.ActiveConnection())
	name := []byte("e")
	if _, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: int64(grant(t, c, 1)), Value: []byte("short")}); err != nil {
		t.Fatal(err)
	}
	observer, err := ec.Observe(ctx, &v3electionpb.LeaderRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := observer.Recv(); err != nil || string(r.Kv.Value) != "short" {
		t.Fatalf("observed %v, %v", r, err)
	}
	if _, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: int64(grant(t, c, 60)), Value: []byte("long")}); err != nil {
		t.Fatal(err)
	}
	if r, err := observer.Recv(); err != nil || string(r.Kv.Value) != "long" {
		t.Fatalf("observed %v, %v", r, err)
	}
}

// TestLockStopIsPrompt: the loopback client holds no stream on the
// member's gRPC server, so after locks and observers a graceful stop does
// not wait out its grace period.
func TestLockStopIsPrompt(t *testing.T) {
	m, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	lc := v3lockpb.NewLockClient(c.ActiveConnection())
	ec := v3electionpb.NewElectionClient(c.ActiveConnection())
	if _, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(grant(t, c, 60))}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("e"), Lease: int64(grant(t, c, 60)), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	start := time.Now()
	if err := m.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("stop took %v", took)
	}
}

// TestLockAcrossMembers: lockers on different members of a cluster exclude
// each other; a follower serves Lock and Unlock like the leader.
func TestLockAcrossMembers(t *testing.T) {
	_, clients := startCluster(t)
	ctx := ctxT(t)
	leases := make([]clientv3.LeaseID, 3)
	for i, c := range clients {
		leases[i] = grant(t, c, 60)
	}
	lock := func(i int) v3lockpb.LockClient { return v3lockpb.NewLockClient(clients[i].ActiveConnection()) }
	held, err := lock(0).Lock(ctx, &v3lockpb.LockRequest{Name: []byte("m"), Lease: int64(leases[0])})
	if err != nil {
		t.Fatal(err)
	}
	waiting := lockAsync(ctx, lock(1), "m", leases[1])
	select {
	case r := <-waiting:
		t.Fatalf("lock through member 1 returned while member 0's locker holds it: %+v", r)
	case <-time.After(blockedFor):
	}
	if _, err := lock(2).Unlock(ctx, &v3lockpb.UnlockRequest{Key: held.Key}); err != nil {
		t.Fatal(err)
	}
	if r := <-waiting; r.err != nil || string(r.resp.Key) != fmt.Sprintf("m/%x", leases[1]) {
		t.Fatalf("lock through member 1 = %+v", r)
	}
}
