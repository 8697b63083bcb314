//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// requireLeaderCancelWait bounds how long a stream that requires a leader
// may stay open after its member lost quorum: three election timeouts of
// 500 ms after the member notices (one to two more), with room for a
// loaded machine.
const requireLeaderCancelWait = 20 * time.Second

// requireLeaderScript opens a watch and a lease keep-alive stream that
// require a leader (etcd's hasleader metadata) on m1, stops the two other
// members, and records how both streams end and what a new watch that
// requires a leader gets.
func requireLeaderScript(t *testing.T, kind Kind) []string {
	c := StartCluster(t, kind, 3)
	m1 := c.Member("m1")
	cli := c.Client(m1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	leaderCtx := clientv3.WithRequireLeader(ctx)
	wch := cli.Watch(leaderCtx, "k", clientv3.WithCreatedNotify())
	if r := <-wch; !r.Created {
		t.Fatalf("watch not created: %+v", r)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	keepAlive, err := etcdserverpb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(
		metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
	if err != nil {
		t.Fatal(err)
	}
	if err := keepAlive.Send(&etcdserverpb.LeaseKeepAliveRequest{ID: int64(lease.ID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := keepAlive.Recv(); err != nil {
		t.Fatalf("first keep-alive: %v", err)
	}
	var out []string
	for _, m := range c.Members {
		if m != m1 {
			m.Kill()
		}
	}
	out = append(out, "watch: "+watchEnd(t, wch))
	_, err = keepAlive.Recv()
	out = append(out, fmt.Sprintf("keep-alive stream: %v", err))
	fresh := cli.Watch(leaderCtx, "k")
	out = append(out, "new watch: "+watchEnd(t, fresh))
	return out
}

// watchEnd waits for a watch channel to end and describes its last
// response.
func watchEnd(t *testing.T, wch clientv3.WatchChan) string {
	deadline := time.After(requireLeaderCancelWait)
	var last string
	for {
		select {
		case r, ok := <-wch:
			if !ok {
				return last + " closed"
			}
			last = fmt.Sprintf("canceled=%v err=%v events=%d", r.Canceled, r.Err(), len(r.Events))
		case <-deadline:
			t.Fatalf("watch still open %v after losing quorum (last: %q)", requireLeaderCancelWait, last)
			return ""
		}
	}
}

// TestRequireLeaderSameAsEtcd: streams that require a leader on a member
// that lost its quorum end with `etcdserver: no leader`, and new ones are
// refused, as in etcd.
func TestRequireLeaderSameAsEtcd(t *testing.T) {
	got := map[Kind][]string{}
	forEachKind(t, func(t *testing.T, kind Kind) {
		start := time.Now()
		got[kind] = requireLeaderScript(t, kind)
		t.Logf("%s: %s (%v)", kind, strings.Join(got[kind], "; "), time.Since(start).Round(time.Millisecond))
	})
	etcd, cairn := got[KindEtcd], got[KindCairn]
	if len(etcd) == 0 || len(cairn) == 0 {
		return
	}
	if strings.Join(etcd, "\n") != strings.Join(cairn, "\n") {
		t.Errorf("transcripts differ\n--- etcd\n%s\n--- cairn\n%s", strings.Join(etcd, "\n"), strings.Join(cairn, "\n"))
	}
}
