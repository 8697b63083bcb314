package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The members of these tests tick every 10 ms with a 100 ms election
// timeout: etcd's minimum TTL is then 1 s (150 ms rounded up).

func TestLeaseThroughTheEtcdClient(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	g, err := c.Grant(ctx, 1)
	if err != nil || g.ID == 0 || g.TTL != 1 {
		t.Fatalf("Grant = %+v, %v", g, err)
	}
	long, err := c.Lease.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k1", "v", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "k2", "v", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.TimeToLive(ctx, long.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 600 || ttl.TTL < 598 || ttl.TTL > 600 || len(ttl.Keys) != 2 || string(ttl.Keys[0]) != "k1" {
		t.Fatalf("TimeToLive = %+v, %v", ttl, err)
	}
	ka, err := c.KeepAliveOnce(ctx, long.ID)
	if err != nil || ka.TTL != 600 {
		t.Fatalf("KeepAliveOnce = %+v, %v", ka, err)
	}
	ls, err := c.Leases(ctx)
	if err != nil || len(ls.Leases) != 2 {
		t.Fatalf("Leases = %+v, %v", ls, err)
	}
	// Errors as etcd.
	if _, err := c.Put(ctx, "k", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with an unknown lease: %v", err)
	}
	if _, err := c.Revoke(ctx, 12345); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke of an unknown lease: %v", err)
	}
	if _, err := c.Grant(ctx, 9_000_000_001); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("grant of too large a TTL: %v", err)
	}
	pbc := pb.NewLeaseClient(c.ActiveConnection())
	if _, err := pbc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: int64(long.ID), TTL: 5}); !errors.Is(err, rpctypes.ErrGRPCLeaseExist) {
		t.Fatalf("grant of an existing ID: %v", err)
	}
	if unknown, err := c.TimeToLive(ctx, 12345); err != nil || unknown.TTL != -1 {
		t.Fatalf("TimeToLive of an unknown lease = %+v, %v; want TTL -1", unknown, err)
	}
	if _, err := c.KeepAliveOnce(ctx, 12345); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of an unknown lease: %v (the server answers TTL 0)", err)
	}
	// Revoke deletes the attached keys at one revision.
	before, _ := c.Get(ctx, "x")
	if _, err := c.Revoke(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	after, err := c.Get(ctx, "k", clientv3.WithPrefix())
	if err != nil || len(after.Kvs) != 0 || after.Header.Revision != before.Header.Revision+1 {
		t.Fatalf("after revoke: %d keys at revision %d (was %d)", len(after.Kvs), after.Header.Revision, before.Header.Revision)
	}
	// The short lease expires on its own; its key goes with it.
	if _, err := c.Put(ctx, "short", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, "short", 5*time.Second)
	if r, err := c.TimeToLive(ctx, g.ID); err != nil || r.TTL != -1 {
		t.Fatalf("TimeToLive of an expired lease = %+v, %v", r, err)
	}
}

func waitGone(t *testing.T, c *clientv3.Client, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		r, err := c.Get(context.Background(), key)
		if err == nil && len(r.Kvs) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("key %q still present after %v", key, within)
}

func TestKeepAliveKeepsLeaseAlive(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	// A 2 s TTL: the client renews every third of it, so a renewal
	// delayed by load beyond a whole second does not let the lease lapse.
	g, err := c.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "alive", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	ch, err := c.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ch {
		}
	}()
	time.Sleep(5 * time.Second) // two and a half TTLs
	if r, err := c.Get(ctx, "alive"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("key of a kept-alive lease: %v, %v", r, err)
	}
	stop()
	waitGone(t, c, "alive", 10*time.Second)
}

func TestConcurrencyMutexAndElection(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	var mu sync.Mutex
	holders, maxHolders, total := 0, 0, 0
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := concurrency.NewSession(c, concurrency.WithTTL(2))
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			m := concurrency.NewMutex(s, "/lock/")
			for range 3 {
				if err := m.Lock(ctx); err != nil {
					t.Errorf("client %d: lock: %v", i, err)
					return
				}
				mu.Lock()
				holders++
				total++
				maxHolders = max(maxHolders, holders)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				holders--
				mu.Unlock()
				if err := m.Unlock(ctx); err != nil {
					t.Errorf("client %d: unlock: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if maxHolders != 1 || total != 12 {
		t.Fatalf("mutex: at most %d holders at once, %d acquisitions; want 1 and 12", maxHolders, total)
	}

	s1, err := concurrency.NewSession(c, concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := concurrency.NewSession(c, concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e1, e2 := concurrency.NewElection(s1, "/elect/"), concurrency.NewElection(s2, "/elect/")
	if err := e1.Campaign(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "two") }()
	if l, err := e1.Leader(ctx); err != nil || string(l.Kvs[0].Value) != "one" {
		t.Fatalf("leader: %v, %v", l, err)
	}
	// The first leader's session dies without resigning: its lease
	// expires, and the second candidate wins.
	s1.Orphan()
	if err := c.Lease.Close(); err != nil {
		t.Logf("close lessor: %v", err)
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second candidate did not win after the leader's lease expired")
	}
}

// startCluster starts three members on loopback and a client of each.
func startCluster(t *testing.T) ([]*Member, []*clientv3.Client) {
	t.Helper()
	peerURLs, peerListeners := holdPeerPorts(t, 3)
	var peers []string
	for i, u := range peerURLs {
		peers = append(peers, fmt.Sprintf("m%d=%s", i, u))
	}
	dir := t.TempDir()
	members := make([]*Member, 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig(fmt.Sprintf("%s/m%d", dir, i), etcdapi.Limits{})
			cfg.Name = fmt.Sprintf("m%d", i)
			cfg.ListenPeerURLs = peerURLs[i : i+1]
			cfg.PeerListeners = peerListeners[i : i+1]
			cfg.InitialAdvertisePeerURLs = cfg.ListenPeerURLs
			cfg.InitialCluster = strings.Join(peers, ",")
			m, err := Start(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			members[i] = m
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	clients := make([]*clientv3.Client, 3)
	for i, m := range members {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{m.listeners[0].Addr().String()},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	t.Cleanup(func() {
		for i, m := range members {
			clients[i].Close()
			m.Stop(time.Second)
		}
	})
	return members, clients
}

// leaseTTLAcrossLeaderChange is the TTL, in seconds, of the leases in
// TestLeasesAcrossLeaderChange: long beside the test's election timeout
// (100 ms), so keep-alives delayed by load do not let a lease lapse.
const leaseTTLAcrossLeaderChange = 3

// TestLeasesAcrossLeaderChange keeps leases alive through each member of a
// three-member cluster, followers included (they forward to the leader),
// stops the leader, and checks that no kept-alive lease expired and that
// an abandoned one still does.
func TestLeasesAcrossLeaderChange(t *testing.T) {
	members, clients := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), abandonedExpiryBound+20*time.Second)
	defer cancel()
	if _, err := clients[0].Put(ctx, "warm", "up"); err != nil {
		t.Fatal(err)
	}
	leader := -1
	for i, m := range members {
		if m.node.Status().IsLeader {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	ids := make([]clientv3.LeaseID, 3)
	for i, c := range clients {
		g, err := c.Grant(ctx, leaseTTLAcrossLeaderChange)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = g.ID
		if _, err := c.Put(ctx, fmt.Sprintf("alive%d", i), "v", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		if i == leader {
			continue // its client dies with the leader
		}
		ch, err := c.KeepAlive(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range ch {
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	members[leader].Stop(0)
	// The new leader gives every lease its full TTL again: the abandoned
	// one expires a TTL and an election after the stop. Until every
	// surviving member has seen it go, each must still hold the keys of the
	// kept-alive leases. The wait is bounded by abandonedExpiryBound, not
	// timed: a loaded machine under the race detector only makes it longer.
	deadline := time.Now().Add(abandonedExpiryBound)
	for {
		gone := 0
		for i, c := range clients {
			if i == leader {
				continue
			}
			for j := range clients {
				r, err := c.Get(ctx, fmt.Sprintf("alive%d", j))
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case j != leader && len(r.Kvs) != 1:
					t.Fatalf("member %d: key of kept-alive lease %x (through member %d) is gone", i, ids[j], j)
				case j == leader && len(r.Kvs) == 0:
					gone++
				}
			}
		}
		if gone == len(clients)-1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key of abandoned lease %x survived %v after its member stopped", ids[leader], abandonedExpiryBound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// abandonedExpiryBound bounds the wait in TestLeasesAcrossLeaderChange for
// the abandoned lease to expire: its TTL and an election, many times over.
const abandonedExpiryBound = 30 * time.Second
