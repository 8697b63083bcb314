//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	failoverWriters    = 30
	failoverKeys       = 100
	failoverPutTimeout = 2 * time.Second
	// The load runs failoverBeforeKill, then the leader is killed, then the
	// load runs failoverAfterKill more.
	failoverBeforeKill = 1500 * time.Millisecond
	failoverAfterKill  = 2 * time.Second
	// failoverMinAckedAfterKill is the fewest puts sent after the kill that
	// must be acknowledged: fewer means writes did not continue.
	failoverMinAckedAfterKill = 50
	// failoverCatchUpTimeout bounds the restarted member's catch-up.
	failoverCatchUpTimeout = 20 * time.Second
	// failoverCheckers is how many goroutines read acknowledged writes back.
	failoverCheckers = 8
	// failoverMaxReported caps the lost writes a failure lists.
	failoverMaxReported = 10
)

// snapshotFlags make members truncate their raft log often and keep few
// entries for a slow follower, so catching up needs a streamed snapshot.
var snapshotFlags = []string{"--snapshot-count", "100", "--snapshot-catchup-entries", "10"}

// snapshotRestoredLog is what raft logs when a member installs a snapshot.
const snapshotRestoredLog = "restored snapshot"

// expectLog fails the test unless the member's log holds the text.
func expectLog(t *testing.T, m *Member, text string) {
	t.Helper()
	if !logHas(m, text) {
		t.Errorf("%s: log has no %q", m.Name, text)
	}
}

// ackedPut is one put the cluster acknowledged.
type ackedPut struct {
	key, value string
	revision   int64
	sent       time.Time
}

// TestClusterKillLeaderUnderLoad SIGKILLs the leader of a 3-member cluster
// while 30 clients write through every member, and checks that a new leader
// takes over, writes continue, the killed member catches up after a restart,
// and every acknowledged put is in every member's history at its revision.
func TestClusterKillLeaderUnderLoad(t *testing.T) {
	cl := StartCluster(t, KindCairn, 3, snapshotFlags...)
	cli := cl.Client()
	oldLeader := cl.WaitLeader(cli)

	var mu sync.Mutex
	var acked []ackedPut
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range failoverWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failoverWriter(w, cli, stop, func(p ackedPut) {
				mu.Lock()
				acked = append(acked, p)
				mu.Unlock()
			})
		}()
	}
	time.Sleep(failoverBeforeKill)
	oldLeader.Kill()
	killed := time.Now()
	t.Logf("killed leader %s", oldLeader.Name)
	newLeader := cl.WaitLeader(cli)
	t.Logf("new leader %s after %v", newLeader.Name, time.Since(killed).Round(time.Millisecond))
	time.Sleep(failoverAfterKill)
	close(stop)
	wg.Wait()

	ackedAfterKill := 0
	for _, p := range acked {
		if p.sent.After(killed) {
			ackedAfterKill++
		}
	}
	t.Logf("%d puts acknowledged, %d of them sent after the kill", len(acked), ackedAfterKill)
	if ackedAfterKill < failoverMinAckedAfterKill {
		t.Fatalf("only %d puts sent after the leader was killed were acknowledged, want >= %d", ackedAfterKill, failoverMinAckedAfterKill)
	}
	checkUniqueRevisions(t, acked)

	last, err := cli.Put(ctxTimeout(t, clusterRequestTimeout), "failover/last", "done")
	if err != nil {
		t.Fatalf("put after load: %v", err)
	}
	oldLeader.Start()
	cl.WaitSerializable(oldLeader, "failover/last", "done", last.Header.Revision, failoverCatchUpTimeout)
	expectLog(t, oldLeader, snapshotRestoredLog)
	for _, m := range cl.Members {
		checkAckedOn(t, cl, m, acked)
	}
}

// failoverWriter puts random keys until stop is closed, reporting each
// acknowledged put.
func failoverWriter(w int, cli *clientv3.Client, stop <-chan struct{}, ack func(ackedPut)) {
	rnd := rand.New(rand.NewPCG(uint64(w), 11))
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("failover/%03d", rnd.IntN(failoverKeys))
		value := fmt.Sprintf("w%02d-%06d", w, seq)
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), failoverPutTimeout)
		resp, err := cli.Put(ctx, key, value)
		cancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ack(ackedPut{key: key, value: value, revision: resp.Header.Revision, sent: sent})
	}
}

// checkUniqueRevisions fails the test if two acknowledged puts share a
// revision: each put is its own transaction.
func checkUniqueRevisions(t *testing.T, acked []ackedPut) {
	t.Helper()
	byRevision := map[int64]ackedPut{}
	for _, p := range acked {
		if q, dup := byRevision[p.revision]; dup {
			t.Errorf("revision %d acknowledged twice: %s=%q and %s=%q", p.revision, q.key, q.value, p.key, p.value)
		}
		byRevision[p.revision] = p
	}
}

// checkAckedOn reads every acknowledged put back from member m at its
// revision with serializable reads.
func checkAckedOn(t *testing.T, cl *Cluster, m *Member, acked []ackedPut) {
	t.Helper()
	cli := cl.Client(m)
	work := make(chan ackedPut)
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	for range failoverCheckers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if problem := checkAcked(cli, p); problem != "" {
					mu.Lock()
					problems = append(problems, problem)
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range acked {
		work <- p
	}
	close(work)
	wg.Wait()
	if len(problems) > 0 {
		t.Errorf("%s: %d of %d acknowledged puts not readable at their revision, e.g.:\n  %s",
			m.Name, len(problems), len(acked), joinFirst(problems, failoverMaxReported))
	}
}

func checkAcked(cli *clientv3.Client, p ackedPut) string {
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, p.key, clientv3.WithRev(p.revision), clientv3.WithSerializable())
	if err != nil {
		return fmt.Sprintf("get %s at revision %d: %v", p.key, p.revision, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != p.value || resp.Kvs[0].ModRevision != p.revision {
		return fmt.Sprintf("get %s at revision %d: got %v, want %q", p.key, p.revision, kvStrings(resp.Kvs), p.value)
	}
	return ""
}

func joinFirst(lines []string, n int) string {
	if len(lines) > n {
		lines = append(lines[:n:n], fmt.Sprintf("... and %d more", len(lines)-n))
	}
	return strings.Join(lines, "\n  ")
}
