//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	learnerHistoryPuts   = 1000
	learnerHistoryWriter = 20
	// learnerCatchUpTimeout bounds the learner's catch-up by snapshot.
	learnerCatchUpTimeout = 30 * time.Second
	// learnerPromoteTimeout bounds the retries of MemberPromote while the
	// learner is not yet in sync.
	learnerPromoteTimeout = 10 * time.Second
	// learnerPublishTimeout bounds the wait for the new member's name and
	// client URLs in MemberList.
	learnerPublishTimeout = 10 * time.Second
	// errNotSupportedForLearner is what etcd answers a learner's client for
	// any request but a serializable range or Status (no rpctypes value).
	errNotSupportedForLearner = "etcdserver: rpc not supported for learner"
)

// TestClusterLearnerSnapshotPromote adds a learner to a 3-member cluster with
// a history far longer than the raft log it keeps, checks that the learner
// catches up by snapshot, is refused promotion before, and is promoted to a
// voter with its name and client URL after.
func TestClusterLearnerSnapshotPromote(t *testing.T) {
	forEachKind(t, testLearnerSnapshotPromote)
}

func testLearnerSnapshotPromote(t *testing.T, kind Kind) {
	cl := StartCluster(t, kind, 3, snapshotFlags...)
	cli := cl.Client()
	writeHistory(t, cli, "history/", learnerHistoryPuts, learnerHistoryWriter)
	last, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "history/last", "done")
	if err != nil {
		t.Fatalf("put history/last: %v", err)
	}

	// Added through the leader, promoted at once through each follower: a
	// follower that has not applied the addition yet must still answer
	// with the leader's view, as etcd's followers forward promotions.
	leader := cl.WaitLeader(cli)
	followers := cl.Followers(leader)
	followerClients := map[*Member]*clientv3.Client{}
	for _, f := range followers {
		followerClients[f] = cl.Client(f)
		if _, err := followerClients[f].MemberList(ctxTimeout(t, clusterRequestTimeout)); err != nil {
			t.Fatalf("member list on %s: %v", f.Name, err)
		}
	}
	m4, id := cl.AddMember(cl.Client(leader), "m4", true)
	for _, f := range followers {
		_, err = followerClients[f].MemberPromote(ctxTimeout(t, clusterRequestTimeout), id)
		expectErr(t, "promote a learner that has not started, through "+f.Name, err, rpctypes.ErrMemberLearnerNotReady)
	}
	_, err = cl.Client(leader).MoveLeader(ctxTimeout(t, clusterRequestTimeout), id)
	expectErr(t, "move leader to a learner", err, rpctypes.ErrBadLeaderTransferee)

	m4.Launch()
	cl.WaitSerializable(m4, "history/last", "done", last.Header.Revision, learnerCatchUpTimeout)
	expectLog(t, m4, snapshotRestoredLog)
	_, err = cl.Client(m4).Put(ctxTimeout(t, clusterRequestTimeout), "learner/put", "x")
	if err == nil || !strings.Contains(err.Error(), errNotSupportedForLearner) {
		t.Errorf("put on a learner: error %v, want %q", err, errNotSupportedForLearner)
	}

	promote(t, cli, id)
	got := waitMemberList(t, cli, func(ms []*etcdserverpb.Member) bool {
		i := slices.IndexFunc(ms, func(pm *etcdserverpb.Member) bool { return pm.ID == id })
		return len(ms) == 4 && i >= 0 && ms[i].Name == "m4" && !ms[i].IsLearner &&
			slices.Equal(ms[i].ClientURLs, []string{m4.ClientURL}) && slices.Equal(ms[i].PeerURLs, []string{m4.PeerURL})
	})
	t.Logf("member list after promote:\n  %s", strings.Join(got, "\n  "))

	// A voter now: it serves linearizable reads and writes.
	m4.WaitReady()
	if _, err := cl.Client(m4).Put(ctxTimeout(t, clusterRequestTimeout), "learner/put", "voter"); err != nil {
		t.Errorf("put on the promoted member: %v", err)
	}
}

// writeHistory puts n keys under prefix from writers concurrent clients.
func writeHistory(t *testing.T, cli *clientv3.Client, prefix string, n, writers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
				_, err := cli.Put(ctx, fmt.Sprintf("%s%04d", prefix, i), fmt.Sprintf("v%d", i))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s%04d: %w", prefix, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// promote calls MemberPromote until the learner is in sync, for at most
// learnerPromoteTimeout.
func promote(t *testing.T, cli *clientv3.Client, id uint64) {
	t.Helper()
	deadline := time.Now().Add(learnerPromoteTimeout)
	for {
		_, err := cli.MemberPromote(ctxTimeout(t, clusterRequestTimeout), id)
		if err == nil {
			return
		}
		if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) || time.Now().After(deadline) {
			t.Fatalf("promote %x: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMemberList polls MemberList until ok accepts it, and returns its
// rendering; it fails the test after learnerPublishTimeout.
func waitMemberList(t *testing.T, cli *clientv3.Client, ok func([]*etcdserverpb.Member) bool) []string {
	t.Helper()
	deadline := time.Now().Add(learnerPublishTimeout)
	var last []string
	for {
		resp, err := cli.MemberList(ctxTimeout(t, clusterRequestTimeout))
		if err == nil {
			last = memberStrings(resp.Members)
			if ok(resp.Members) {
				return last
			}
		} else {
			last = []string{err.Error()}
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list never as expected within %v; last:\n  %s", learnerPublishTimeout, strings.Join(last, "\n  "))
		}
		time.Sleep(clusterPollInterval)
	}
}

func memberStrings(ms []*etcdserverpb.Member) []string {
	var out []string
	for _, pm := range ms {
		out = append(out, fmt.Sprintf("%x name=%q peer=%v client=%v learner=%v", pm.ID, pm.Name, pm.PeerURLs, pm.ClientURLs, pm.IsLearner))
	}
	return out
}
