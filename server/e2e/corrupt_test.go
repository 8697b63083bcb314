//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// corruptCheckFlags turn on every corruption check, checking every second.
var corruptCheckFlags = []string{
	"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true",
	"--corrupt-check-time=1s",
	"--compact-hash-check-time=1s",
}

const (
	// corruptChecksSettle is how long the tests let the checks run: several
	// periodic and compaction checks at one a second.
	corruptChecksSettle = 4 * time.Second
	// corruptAlarmTimeout bounds the wait for the CORRUPT alarm.
	corruptAlarmTimeout = 20 * time.Second
	// corruptPuts is how many puts a test writes: more than the sixteen
	// revisions in which the corrupt-applied-value failpoint corrupts one.
	corruptPuts = 40
)

// A healthy cluster with every corruption check on, etcd and cairn alike:
// the flags and gates are accepted, a restarted member passes the initial
// check, and after writes, a compaction and several checks no alarm is
// raised.
func TestCorruptionChecksHealthyCluster(t *testing.T) {
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		t.Run(string(kind), func(t *testing.T) {
			c := StartCluster(t, kind, 3, corruptCheckFlags...)
			cli := c.Client()
			defer cli.Close()
			writeAndCompact(t, cli)
			time.Sleep(corruptChecksSettle)
			if got := alarmList(t, c.Members[0]); got != "" {
				t.Fatalf("%s: alarm list of a healthy cluster: %q", kind, got)
			}
			m := c.Members[1]
			m.Kill()
			m.Start() // the initial check passes: its data is the cluster's
			writeAndCompact(t, cli)
			time.Sleep(corruptChecksSettle)
			if got := alarmList(t, m); got != "" {
				t.Fatalf("%s: alarm list after a restart: %q", kind, got)
			}
		})
	}
}

// One member of a cairn cluster applies some puts with another value (the
// corrupt-applied-value failpoint). The periodic check must raise CORRUPT
// for it, as etcd's leader raises it for the follower whose hash differs;
// writes are then refused with etcd's error; and the member, restarted
// without the failpoint, must refuse to start: its initial check finds its
// data differs from its peers'.
func TestCorruptionCheckRaisesCorrupt(t *testing.T) {
	failpointsBin := requireBin(t, "CAIRN_FAILPOINTS_BIN")
	c := StartCluster(t, KindCairn, 3, corruptCheckFlags...)
	cli := c.Client()
	defer cli.Close()
	leader := c.WaitLeader(cli)
	m := c.Followers(leader)[0]
	id := c.MemberID(cli, m)
	cairnBin := m.Bin
	m.Kill()
	m.Bin = failpointWrapper(t, failpointsBin, "corrupt-applied-value")
	m.Start()

	// The checks run every second: the alarm may come before the last put,
	// which it then refuses.
	for i := range corruptPuts {
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		_, err := cli.Put(ctx, fmt.Sprintf("corrupt-%02d", i), "v")
		cancel()
		if errors.Is(err, rpctypes.ErrCorrupt) {
			break
		}
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	want := fmt.Sprintf("memberID:%d alarm:CORRUPT", id)
	deadline := time.Now().Add(corruptAlarmTimeout)
	got := ""
	for time.Now().Before(deadline) {
		if got = alarmList(t, leader); got != "" {
			break
		}
		time.Sleep(clusterPollInterval)
	}
	if got != want {
		t.Fatalf("etcdctl alarm list = %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	_, err := cli.Put(ctx, "after-corrupt", "v")
	cancel()
	if !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("put under CORRUPT: %v, want %v", err, rpctypes.ErrCorrupt)
	}

	// Stopped cleanly, the member flushes its applied state: the rotten
	// values are on its disk (killed, it would apply the log again).
	m.Stop()
	m.Bin = cairnBin
	m.Launch()
	exited, _ := m.WaitExit(readyTimeout)
	if !exited {
		t.Fatalf("the corrupted member started; its initial corruption check should refuse")
	}
	if log := m.LogTail(logTailLines); !strings.Contains(log, fmt.Sprintf("%x found data inconsistency with peers", id)) {
		t.Fatalf("the corrupted member exited without etcd's error:\n%s", log)
	}
}

// writeAndCompact writes corruptPuts keys and compacts at the last one.
func writeAndCompact(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	var rev int64
	for i := range corruptPuts {
		rev = corruptTestPut(t, cli, fmt.Sprintf("healthy-%02d", i), "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatalf("compact %d: %v", rev, err)
	}
}

func corruptTestPut(t *testing.T, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	resp, err := cli.Put(ctx, key, value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

// alarmList is `etcdctl alarm list` against m, trimmed.
func alarmList(t *testing.T, m *Member) string {
	t.Helper()
	ctl := requireBin(t, "ETCDCTL_BIN")
	cmd := exec.Command(ctl, "--endpoints", m.ClientURL, "--command-timeout=5s", "alarm", "list")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("etcdctl alarm list: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// failpointWrapper is an executable that runs bin with $CAIRN_FAILPOINTS
// set to failpoints, so that one member of a cluster plants them.
func failpointWrapper(t *testing.T, bin, failpoints string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn-"+failpoints)
	script := fmt.Sprintf("#!/bin/sh\nCAIRN_FAILPOINTS=%s exec %s \"$@\"\n", failpoints, bin)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
