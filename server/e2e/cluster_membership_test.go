//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// removedExitTimeout bounds how long a removed member may keep running.
	removedExitTimeout = 10 * time.Second
	// removedLog is what etcd and cairn say when a member learns it was removed.
	removedLog = "the member has been permanently removed from the cluster"
	// mismatchTimeout bounds the wait for a cluster ID mismatch to be logged.
	mismatchTimeout = 10 * time.Second
	// mismatchLog is the phrase etcd and cairn log on either side of a
	// connection refused for a cluster ID mismatch.
	mismatchLog = "cluster ID mismatch"
)

// TestClusterRemoveMember removes a follower with MemberRemove: the removed
// process stops by itself, and the other two keep serving writes.
func TestClusterRemoveMember(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		cl := StartCluster(t, kind, 3)
		leader := cl.WaitLeader(cl.Client())
		followers := cl.Followers(leader)
		victim, survivor := followers[0], followers[1]
		cli := cl.Client(leader, survivor)
		id := cl.MemberID(cli, victim)
		if _, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "remove/before", "1"); err != nil {
			t.Fatalf("put before remove: %v", err)
		}

		err := retryUnhealthy(func(ctx context.Context) error {
			_, err := cli.MemberRemove(ctx, id)
			return err
		})
		if err != nil {
			t.Fatalf("member remove %s: %v", victim.Name, err)
		}
		start := time.Now()
		exited, exitErr := victim.WaitExit(removedExitTimeout)
		switch {
		case !exited:
			t.Errorf("removed member %s still runs %v after MemberRemove", victim.Name, removedExitTimeout)
		case exitErr != nil:
			// etcd 3.7.3 exits with status 0 once removed, and so does cairn.
			t.Errorf("removed member %s exited after %v with %v, want status 0", victim.Name, time.Since(start).Round(time.Millisecond), exitErr)
		default:
			t.Logf("removed member %s exited after %v: %v", victim.Name, time.Since(start).Round(time.Millisecond), exitErr)
		}
		expectLog(t, victim, removedLog)

		if _, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "remove/after", "2"); err != nil {
			t.Errorf("put after remove: %v", err)
		}
		list, err := cli.MemberList(ctxTimeout(t, clusterRequestTimeout))
		if err != nil {
			t.Fatalf("member list: %v", err)
		}
		if len(list.Members) != 2 || slices.ContainsFunc(list.Members, func(m *etcdserverpb.Member) bool { return m.ID == id }) {
			t.Errorf("member list after removing %x:\n  %v", id, memberStrings(list.Members))
		}
		_, err = cli.MemberRemove(ctxTimeout(t, clusterRequestTimeout), id)
		expectErr(t, "remove the removed member again", err, rpctypes.ErrMemberNotFound)
	})
}

// TestClusterMoveLeader moves leadership to a follower with MoveLeader, and
// checks that a follower refuses MoveLeader with "not leader".
func TestClusterMoveLeader(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		cl := StartCluster(t, kind, 3)
		cli := cl.Client()
		leader := cl.WaitLeader(cli)
		followers := cl.Followers(leader)
		target, other := followers[0], followers[1]
		targetID := cl.MemberID(cli, target)

		if _, err := cl.Client(leader).MoveLeader(ctxTimeout(t, clusterRequestTimeout), targetID); err != nil {
			t.Fatalf("move leader %s -> %s: %v", leader.Name, target.Name, err)
		}
		st, err := cl.Status(cli, target)
		if err != nil {
			t.Fatalf("status of %s: %v", target.Name, err)
		}
		if st.Leader != targetID {
			t.Errorf("after MoveLeader to %s (%x), its Status names leader %x", target.Name, targetID, st.Leader)
		}
		if lead := cl.WaitLeader(cli); lead != target {
			t.Errorf("after MoveLeader to %s, the members agree on %s", target.Name, lead.Name)
		}

		// leader is a follower now.
		_, err = cl.Client(leader).MoveLeader(ctxTimeout(t, clusterRequestTimeout), cl.MemberID(cli, other))
		expectErr(t, "move leader sent to a follower", err, rpctypes.ErrNotLeader)
		_, err = cl.Client(target).MoveLeader(ctxTimeout(t, clusterRequestTimeout), 0xdead)
		expectErr(t, "move leader to an unknown member", err, rpctypes.ErrBadLeaderTransferee)
		if _, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "moveleader/after", "1"); err != nil {
			t.Errorf("put after MoveLeader: %v", err)
		}
	})
}

// TestClusterIDMismatch replaces a stopped member by a fresh process on the
// same URLs but with another --initial-cluster-token: its cluster ID differs,
// the running members refuse it, and it never joins.
func TestClusterIDMismatch(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		cl := StartCluster(t, kind, 3)
		cli := cl.Client(cl.Members[0], cl.Members[1])
		put, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "mismatch/key", "1")
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		before, err := cli.MemberList(ctxTimeout(t, clusterRequestTimeout))
		if err != nil {
			t.Fatalf("member list: %v", err)
		}

		victim := cl.Members[2]
		victim.Kill()
		impostor := cl.newMember(victim.Name)
		impostor.ClientURL, impostor.PeerURL = victim.ClientURL, victim.PeerURL
		impostor.InitialCluster = victim.InitialCluster
		impostor.Extra = slices.Clone(victim.Extra)
		impostor.Extra[slices.Index(impostor.Extra, "--initial-cluster-token")+1] = "another-token"
		impostor.Launch()

		deadline := time.Now().Add(mismatchTimeout)
		for !logHas(cl.Members[0], mismatchLog) && !logHas(cl.Members[1], mismatchLog) && !logHas(impostor, mismatchLog) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in any log %v after the impostor started", mismatchLog, mismatchTimeout)
			}
			time.Sleep(clusterPollInterval)
		}
		for _, m := range []*Member{cl.Members[0], cl.Members[1], impostor} {
			t.Logf("%s (%s) logs %q: %v", m.Name, m.LogPath, mismatchLog, logHas(m, mismatchLog))
		}
		time.Sleep(2 * clusterElectionMs * time.Millisecond) // time enough to join, were it accepted

		after, err := cli.MemberList(ctxTimeout(t, clusterRequestTimeout))
		if err != nil {
			t.Fatalf("member list: %v", err)
		}
		if !slices.Equal(memberStrings(before.Members), memberStrings(after.Members)) {
			t.Errorf("member list changed:\n before %v\n after  %v", memberStrings(before.Members), memberStrings(after.Members))
		}
		ic := cl.Client(impostor)
		if resp, err := ic.Get(ctxTimeout(t, clusterRequestTimeout), "mismatch/key", clientv3.WithSerializable()); err == nil && len(resp.Kvs) != 0 {
			t.Errorf("the impostor serves the cluster's key: %v", kvStrings(resp.Kvs))
		}
		if _, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "mismatch/key", "2"); err != nil {
			t.Errorf("put with the impostor running: %v", err)
		}

		// The real member comes back on its data and catches up.
		impostor.Kill()
		victim.Start()
		cl.WaitSerializable(victim, "mismatch/key", "2", put.Header.Revision+1, failoverCatchUpTimeout)
	})
}

const (
	// membershipRounds is how many add/promote/remove rounds
	// TestClusterMembershipReadYourWrites runs.
	membershipRounds = 20
	// membershipMaxFailures stops the rounds once this many failed: a
	// learner left behind makes every later round fail too.
	membershipMaxFailures = 3
)

// TestClusterMembershipReadYourWrites adds a learner, asks to promote it
// and removes it, round after round, through a client that spreads requests
// over every member: each request must see the changes acknowledged before
// it, whichever member serves it (etcd validates them on the leader or at
// apply time, in log order).
func TestClusterMembershipReadYourWrites(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		cl := StartCluster(t, kind, 3)
		cli := cl.Client()
		failures := 0
		for round := 0; round < membershipRounds && failures < membershipMaxFailures; round++ {
			if err := membershipRound(cli, round); err != nil {
				failures++
				t.Errorf("round %d: %v", round, err)
			}
		}
	})
}

// membershipRound adds a learner that never starts, checks that promoting it
// is refused as not in sync, and removes it.
func membershipRound(cli *clientv3.Client, round int) error {
	var added *clientv3.MemberAddResponse
	err := retryUnhealthy(func(ctx context.Context) (err error) {
		added, err = cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", 1000+round)})
		return err
	})
	if err != nil {
		return fmt.Errorf("member add --learner: %w", err)
	}
	id := added.Member.ID
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	_, err = cli.MemberPromote(ctx, id)
	cancel()
	var problem error
	if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
		problem = fmt.Errorf("promote the learner %x just added: error %v, want %v", id, err, rpctypes.ErrMemberLearnerNotReady)
	}
	err = retryUnhealthy(func(ctx context.Context) error {
		_, err := cli.MemberRemove(ctx, id)
		return err
	})
	if err != nil {
		return errors.Join(problem, fmt.Errorf("remove the learner %x just added: %w", id, err))
	}
	return problem
}
