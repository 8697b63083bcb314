package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/chaos/workload"
)

func obs(op workload.LeaseOp, sentMs, receivedMs int64, outcome workload.LeaseOutcome, ttl int64) workload.LeaseObservation {
	return workload.LeaseObservation{Lease: 7, Op: op, Sent: time.Duration(sentMs) * time.Millisecond,
		Received: time.Duration(receivedMs) * time.Millisecond, Outcome: outcome, TTL: ttl}
}

func TestCheckLeases(t *testing.T) {
	const (
		alive   = workload.LeaseAlive
		gone    = workload.LeaseGone
		unknown = workload.LeaseUnknown
	)
	for _, tc := range []struct {
		name string
		obs  []workload.LeaseObservation
		want string // a part of the problem, "" for none
	}{
		{"expired after its TTL", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseKeepAlive, 500, 520, alive, 2),
			obs(workload.LeaseTimeToLive, 2500, 2510, gone, 0),
		}, ""},
		{"expired early", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseKeepAlive, 500, 520, alive, 2),
			obs(workload.LeaseTimeToLive, 2400, 2490, gone, 0),
		}, "renewed it for 2s"},
		{"renewed after it was gone", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseKeepAlive, 3000, 3010, gone, 0),
			obs(workload.LeaseKeepAlive, 3500, 3510, alive, 2),
		}, "renewed it"},
		{"seen alive after a revoke was answered", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseRevoke, 100, 120, gone, 0),
			obs(workload.LeaseTimeToLive, 3000, 3010, alive, 0),
		}, "found it alive"},
		{"revoked before its TTL ran out", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseRevoke, 100, 2000, unknown, 0),
			obs(workload.LeaseKeepAlive, 500, 600, gone, 0),
		}, ""},
		{"expired early before a revoke was sent", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseKeepAlive, 300, 400, gone, 0),
			obs(workload.LeaseRevoke, 500, 600, gone, 0),
		}, "renewed it for 2s"},
		{"alive time-to-live concurrent with the revoke", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseRevoke, 2100, 2200, gone, 0),
			obs(workload.LeaseTimeToLive, 2150, 2300, alive, 0),
		}, ""},
		{"unknown outcomes say nothing", []workload.LeaseObservation{
			obs(workload.LeaseGrant, 0, 10, alive, 2),
			obs(workload.LeaseKeepAlive, 1900, 3900, unknown, 0),
			obs(workload.LeaseTimeToLive, 2100, 2110, gone, 0),
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := CheckLeases(tc.obs)
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Fatalf("unexpected problems: %v", problems)
			case tc.want != "" && len(problems) != 1:
				t.Fatalf("want one problem with %q, got %v", tc.want, problems)
			case tc.want != "" && !strings.Contains(problems[0], tc.want):
				t.Fatalf("problem %q does not say %q", problems[0], tc.want)
			}
		})
	}
}

func TestLeaseExpiryDeadline(t *testing.T) {
	observations := []workload.LeaseObservation{
		obs(workload.LeaseGrant, 0, 10, workload.LeaseAlive, 2),
		// A keep-alive that timed out may still have renewed the lease.
		obs(workload.LeaseKeepAlive, 1000, 3000, workload.LeaseUnknown, 0),
	}
	got := leaseExpiryDeadline(observations, time.Second, 500*time.Millisecond)
	want := 3*time.Second + 2*time.Second + 500*time.Millisecond + leaseExpirySlack
	if got != want {
		t.Fatalf("deadline %v, want %v", got, want)
	}
	// A leader change late in the run extends every lease from then.
	got = leaseExpiryDeadline(observations, 10*time.Second, 500*time.Millisecond)
	want = 12*time.Second + 500*time.Millisecond + leaseExpirySlack
	if got != want {
		t.Fatalf("deadline after a late leader change %v, want %v", got, want)
	}
}
