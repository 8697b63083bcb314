//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	leaseTTLSeconds = 3
	// leaseHeldAfterKill is how long the test keeps going after the kill:
	// well past the TTL, so a lease whose keep-alives were lost with the
	// leader would have expired.
	leaseHeldAfterKill = 3 * leaseTTLSeconds * time.Second
	leaseKeptAlive     = 4
)

// TestClusterLeaseSurvivesLeaderKill SIGKILLs the leader of a 3-member
// cluster while clients keep leases alive through every member: no kept-alive
// lease may expire (their keys stay), and a lease nobody keeps alive still
// expires under the new leader.
func TestClusterLeaseSurvivesLeaderKill(t *testing.T) {
	c := StartCluster(t, KindCairn, 3)
	cli := c.Client()
	leader := c.WaitLeader(cli)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var kept []clientv3.LeaseID
	for i := range leaseKeptAlive {
		id := grantWithKey(t, cli, fmt.Sprintf("held/%d", i))
		ch, err := cli.KeepAlive(ctx, id)
		if err != nil {
			t.Fatalf("keep-alive %x: %v", id, err)
		}
		go func() {
			for range ch { // drain: the client renews while someone reads
			}
		}()
		kept = append(kept, id)
	}
	abandoned := grantWithKey(t, cli, "abandoned")

	leader.Kill()
	c.WaitLeader(c.Client(c.Running()...))
	time.Sleep(leaseHeldAfterKill)

	survivor := c.Client(c.Running()...)
	for i, id := range kept {
		ttl, err := survivor.TimeToLive(ctxTimeout(t, clusterRequestTimeout), id)
		if err != nil || ttl.TTL <= 0 {
			t.Errorf("kept-alive lease %x expired after the leader was killed: %+v, %v", id, ttl, err)
		}
		expectKey(t, survivor, fmt.Sprintf("held/%d", i), true)
	}
	expectKey(t, survivor, "abandoned", false)
	if ttl, err := survivor.TimeToLive(ctxTimeout(t, clusterRequestTimeout), abandoned); err == nil && ttl.TTL > 0 {
		t.Errorf("lease %x nobody kept alive is still alive (TTL %d)", abandoned, ttl.TTL)
	}
}

func grantWithKey(t *testing.T, cli *clientv3.Client, key string) clientv3.LeaseID {
	t.Helper()
	lease, err := cli.Grant(ctxTimeout(t, clusterRequestTimeout), leaseTTLSeconds)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), key, "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("put %s with lease: %v", key, err)
	}
	return lease.ID
}

func expectKey(t *testing.T, cli *clientv3.Client, key string, present bool) {
	t.Helper()
	get, err := cli.Get(ctxTimeout(t, clusterRequestTimeout), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if got := len(get.Kvs) == 1; got != present {
		t.Errorf("key %s present = %v, want %v", key, got, present)
	}
}
