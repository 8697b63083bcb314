//go:build e2e

package chaos

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
	lin "github.com/cairn-db/cairn/linearizability"
)

// The chaos tests of `make test-chaos` (part of `make test`): one short run
// of every fault against cairn, and the self-tests that prove the checks
// catch planted bugs. They run real processes and take about two minutes.

const (
	// shortRunDuration is the fault schedule of TestChaosCairn; the
	// CHAOS_DURATION environment variable overrides it.
	shortRunDuration = 40 * time.Second
	// selfTestDuration is each self-test's schedule.
	selfTestDuration = 10 * time.Second
	// staleReadSelfTestDuration is the stale-read self-test's: a stale
	// read needs a read on the cut-off side of a partition after a write
	// on the other, and 10 s (four partitions) once drew none.
	staleReadSelfTestDuration = 25 * time.Second
	// testSeed fixes the schedules; CHAOS_SEED overrides it.
	testSeed = 20261129
)

// requireBin returns the path in the environment variable env, skipping the
// test when it is unset or not a file (failing when CI=true: CI must never
// pass by skipping).
func requireBin(t *testing.T, env string) string {
	t.Helper()
	path := os.Getenv(env)
	st, err := os.Stat(path)
	if path != "" && err == nil && !st.IsDir() {
		return path
	}
	problem := fmt.Sprintf("$%s=%q is not a binary", env, path)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: run `make build build-failpoints`)", problem)
	}
	t.Skipf("%s; skipping (run via `make test-chaos`)", problem)
	return ""
}

func testConfig(t *testing.T, bin string, duration time.Duration) Config {
	seed := uint64(testSeed)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &seed); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
	}
	return Config{
		Target: cluster.KindCairn, Bin: bin, Members: 3, Duration: duration, Seed: seed,
		ReportRoot: testReportRoot, CheckTimeout: time.Minute, Logf: t.Logf,
	}
}

// testReportRoot is where the tests write reports: the repository's
// git-ignored chaos-out folder. A passing test deletes its report.
const testReportRoot = "../chaos-out/test"

// keepReport deletes the report of a passing test and names the folder of a
// failing one.
func keepReport(t *testing.T, res *Result) {
	if t.Failed() {
		t.Logf("report: chaos/%s", res.ReportDir)
		return
	}
	_ = os.RemoveAll(res.ReportDir)
}

func TestChaosCairn(t *testing.T) {
	cfg := testConfig(t, requireBin(t, "CAIRN_BIN"), shortRunDuration)
	if d := os.Getenv("CHAOS_DURATION"); d != "" {
		var err error
		if cfg.Duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("CHAOS_DURATION=%q: %v", d, err)
		}
	}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	defer keepReport(t, res)
	if len(res.Timeline) == 0 {
		t.Fatal("no fault injected")
	}
	if !res.Passed() {
		t.Fatalf("chaos run failed: %s\nrerun: CHAOS_SEED=%d make test-chaos", res.Summary(), cfg.Seed)
	}
}

// selfTest runs a failpoint build of cairn with the planted bug and the
// faults that expose it, and requires the named checks to fail.
func selfTest(t *testing.T, failpoint string, faults []string, mustFail ...string) {
	selfTestFor(t, selfTestDuration, failpoint, faults, mustFail...)
}

// selfTestFor is selfTest with a schedule of the given length.
func selfTestFor(t *testing.T, duration time.Duration, failpoint string, faults []string, mustFail ...string) {
	cfg := testConfig(t, requireBin(t, "CAIRN_FAILPOINTS_BIN"), duration)
	cfg.Env = []string{"CAIRN_FAILPOINTS=" + failpoint}
	cfg.Faults = faults
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	defer keepReport(t, res)
	if res.Passed() {
		t.Fatalf("planted bug %s not caught: %s", failpoint, res.Summary())
	}
	if slices.Contains(mustFail, "linearizability") && res.Linearizability == lin.ResultOK {
		t.Errorf("planted bug %s: history still linearizable", failpoint)
	}
	for _, name := range mustFail {
		for _, c := range res.Checks {
			if c.Name == name && c.OK {
				t.Errorf("planted bug %s: check %s passed", failpoint, name)
			}
		}
	}
}

// A member that serves linearizable reads from its own state, without
// ReadIndex, answers stale reads while partitioned away from the leader.
func TestSelfTestStaleRead(t *testing.T) {
	selfTestFor(t, staleReadSelfTestDuration, "read-without-read-index", []string{FaultPartitionOne, FaultPartitionLeader}, "linearizability")
}

// A lessor whose clock runs fast lets leases expire before the TTL a
// keep-alive promised; restarts and leader changes, after which leases
// start again from their full TTL, must not hide it.
func TestSelfTestLeaseClockFast(t *testing.T) {
	selfTest(t, "lease-clock-fast", []string{FaultKillLeader, FaultPartitionLeader}, "leases")
}

// A cluster that acknowledges writes before fsync loses them when every
// member is killed at once (the failpoint build's filesystem drops unsynced
// writes at SIGKILL, as a power failure would).
func TestSelfTestAckBeforeDurable(t *testing.T) {
	selfTest(t, "ack-before-durable", []string{FaultKillAll}, "linearizability", "lost-writes")
}
