//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestForceNewCluster is disaster recovery from one surviving member, for
// etcd and cairn alike: a 3-member cluster takes writes, every member is
// killed, one restarts on its data with --force-new-cluster and must come
// back as a one-member cluster (same member ID) holding every
// acknowledged key, take writes, and then grow again by a member add.
func TestForceNewCluster(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		c := StartCluster(t, kind, 3)
		cli := c.Client()
		const keys = 50
		var last int64
		for i := range keys {
			ctx := ctxTimeout(t, clusterRequestTimeout)
			resp, err := cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
			if err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			last = resp.Header.Revision
		}
		// The survivor must know the writes committed, durably: entries it
		// holds beyond its stored commit index are dropped, in etcd as in
		// cairn (both lost the last write when killed right after it). A
		// later write, applied there, and a few heartbeats see to it; that
		// write itself may be lost.
		survivor := c.Members[1]
		c.WaitSerializable(survivor, fmt.Sprintf("k%02d", keys-1), fmt.Sprintf("v%d", keys-1), last, 10*time.Second)
		filler, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "z-filler", "x")
		if err != nil {
			t.Fatal(err)
		}
		c.WaitSerializable(survivor, "z-filler", "x", filler.Header.Revision, 10*time.Second)
		time.Sleep(10 * clusterHeartbeatMs * time.Millisecond)
		id := c.MemberID(cli, survivor)
		for _, m := range c.Members {
			m.Kill()
		}
		survivor.Extra = append(survivor.Extra, "--force-new-cluster")
		survivor.Start()
		one := c.Client(survivor)
		ctx := ctxTimeout(t, 10*time.Second)
		list, err := one.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Members) != 1 || list.Members[0].ID != id {
			t.Fatalf("members after --force-new-cluster: %v, want only %x", list.Members, id)
		}
		resp, err := one.Get(ctx, "k", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != keys {
			var got []string
			for _, kv := range resp.Kvs {
				got = append(got, string(kv.Key))
			}
			t.Fatalf("keys after --force-new-cluster: %d %q, %v; want %d", len(got), got, err, keys)
		}
		put, err := one.Put(ctx, "after", "force")
		if err != nil {
			t.Fatalf("write on the new cluster: %v", err)
		}
		added, _ := c.AddMember(one, "m4", false)
		added.Launch()
		added.WaitReady()
		c.WaitSerializable(added, "after", "force", put.Header.Revision, 20*time.Second)
		ctx = ctxTimeout(t, 10*time.Second)
		if list, err = one.MemberList(ctx); err != nil || len(list.Members) != 2 {
			t.Fatalf("members after adding one back: %v, %v", list, err)
		}
	})
}
