package lease

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestMinTTLSecondsAsEtcd(t *testing.T) {
	for _, c := range []struct {
		ticks int
		tick  time.Duration
		want  int64
	}{
		{10, 100 * time.Millisecond, 2}, // etcd defaults: 1.5 s rounded up
		{5, 100 * time.Millisecond, 1},  // 7 ticks (rounded down) = 0.7 s
		{10, time.Second, 15},
		{21, 100 * time.Millisecond, 4}, // 31 ticks = 3.1 s
	} {
		if got := MinTTLSeconds(c.ticks, c.tick); got != c.want {
			t.Errorf("MinTTLSeconds(%d, %v) = %d, want %d", c.ticks, c.tick, got, c.want)
		}
	}
}

func TestGrantErrorsAndMinimum(t *testing.T) {
	le := New(Config{MinTTLSeconds: 5})
	if _, err := le.Grant(0, 10, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("grant of ID 0: %v", err)
	}
	if _, err := le.Grant(1, MaxTTLSeconds+1, t0); !errors.Is(err, ErrTTLTooLarge) {
		t.Fatalf("grant of too large a TTL: %v", err)
	}
	if ttl, err := le.Grant(1, MaxTTLSeconds, t0); err != nil || ttl != MaxTTLSeconds {
		t.Fatalf("grant of the largest TTL: %d, %v", ttl, err)
	}
	if ttl, err := le.Grant(2, 1, t0); err != nil || ttl != 5 {
		t.Fatalf("grant below the minimum: %d, %v; want 5", ttl, err)
	}
	if _, err := le.Grant(2, 30, t0); !errors.Is(err, ErrExists) {
		t.Fatalf("second grant of one ID: %v", err)
	}
	if err := le.Revoke(2); err != nil {
		t.Fatal(err)
	}
	if err := le.Revoke(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestFollowerNeverExpires(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1})
	le.Grant(1, 1, t0)
	if got := le.Expired(at(time.Hour)); got != nil {
		t.Fatalf("a follower's lessor expired %v", got)
	}
	if _, err := le.Renew(1, t0); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew on a follower: %v", err)
	}
	if _, _, err := le.TimeToLive(1, t0); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("time-to-live on a follower: %v", err)
	}
}

func TestPromoteGivesFullTTLPlusExtension(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1})
	le.Grant(1, 10, t0)
	le.Promote(at(100*time.Second), time.Second) // long after the grant
	if got := le.Expired(at(110 * time.Second)); len(got) != 0 {
		t.Fatalf("expired %v before TTL+extension after promotion", got)
	}
	if g, r, err := le.TimeToLive(1, at(100*time.Second)); err != nil || g != 10 || r != 11 {
		t.Fatalf("TimeToLive = %d, %d, %v; want 10, 11", g, r, err)
	}
	if got := le.Expired(at(111 * time.Second)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("Expired = %v at TTL+extension, want [1]", got)
	}
}

func TestRenewAndExpiry(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1, RetryInterval: 3 * time.Second})
	le.Promote(t0, 0)
	le.Grant(1, 5, t0)
	le.Grant(2, 5, t0)
	if ttl, err := le.Renew(1, at(4*time.Second)); err != nil || ttl != 5 {
		t.Fatalf("renew: %d, %v", ttl, err)
	}
	if got := le.Expired(at(5 * time.Second)); !slices.Equal(got, []int64{2}) {
		t.Fatalf("Expired at 5s = %v, want [2]", got)
	}
	// Reported once, then again only after the retry interval.
	if got := le.Expired(at(6 * time.Second)); len(got) != 0 {
		t.Fatalf("Expired at 6s = %v, want none", got)
	}
	if got := le.Expired(at(8 * time.Second)); !slices.Equal(got, []int64{2}) {
		t.Fatalf("Expired at 8s = %v, want [2] again", got)
	}
	// An expired lease is not renewed: its revocation is due.
	if _, err := le.Renew(2, at(8*time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew of an expired lease: %v", err)
	}
	if got := le.Expired(at(9 * time.Second)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("Expired at 9s = %v, want [1]", got)
	}
	le.Revoke(1)
	le.Revoke(2)
	if got := le.Expired(at(time.Hour)); len(got) != 0 {
		t.Fatalf("revoked leases expired: %v", got)
	}
}

func TestDemoteStopsExpiry(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1})
	le.Promote(t0, 0)
	le.Grant(1, 5, t0)
	le.Demote()
	if got := le.Expired(at(time.Hour)); len(got) != 0 {
		t.Fatalf("a demoted lessor expired %v", got)
	}
	le.Promote(at(time.Hour), 0)
	if got := le.Expired(at(time.Hour + 4*time.Second)); len(got) != 0 {
		t.Fatalf("expired %v before its TTL after promotion", got)
	}
}

func TestExpiredIsBounded(t *testing.T) {
	le := New(Config{MinTTLSeconds: 1, ExpiredMax: 3})
	le.Promote(t0, 0)
	for id := int64(1); id <= 7; id++ {
		le.Grant(id, 1, t0)
	}
	var all []int64
	for range 3 {
		got := le.Expired(at(2 * time.Second))
		if len(got) > 3 {
			t.Fatalf("Expired returned %d leases, bound 3", len(got))
		}
		all = append(all, got...)
	}
	if !slices.Equal(all, []int64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("Expired over three calls = %v", all)
	}
}

// TestAgainstReference checks the lessor against a naive model: a map of
// expiries scanned in full. A lease the model says has not expired must
// never be reported, and every expired one must be reported.
func TestAgainstReference(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		le := New(Config{MinTTLSeconds: 1, ExpiredMax: 1 << 20, RetryInterval: time.Hour * 1000})
		le.Promote(t0, 0)
		model := map[int64]time.Time{}
		now := t0
		for step := range 400 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			id := int64(rng.IntN(20) + 1)
			switch rng.IntN(4) {
			case 0:
				ttl := int64(rng.IntN(5) + 1)
				if _, err := le.Grant(id, ttl, now); err == nil {
					model[id] = now.Add(time.Duration(ttl) * time.Second)
				} else if _, ok := model[id]; !ok {
					t.Fatalf("seed %d step %d: grant %d: %v", seed, step, id, err)
				}
			case 1:
				_, err := le.Renew(id, now)
				exp, ok := model[id]
				live := ok && now.Before(exp)
				if live != (err == nil) {
					t.Fatalf("seed %d step %d: renew %d: %v, model live %v", seed, step, id, err, live)
				}
				if live {
					ttl, _ := le.Lookup(id)
					model[id] = now.Add(time.Duration(ttl.TTLSeconds) * time.Second)
				}
			case 2:
				for _, got := range le.Expired(now) {
					exp, ok := model[got]
					if !ok || now.Before(exp) {
						t.Fatalf("seed %d step %d: lease %d reported expired, model expiry %v, now %v", seed, step, got, exp, now)
					}
					delete(model, got)
					le.Revoke(got)
				}
				for id, exp := range model {
					if !now.Before(exp) {
						t.Fatalf("seed %d step %d: lease %d expired at %v, not reported at %v", seed, step, id, exp, now)
					}
				}
			case 3:
				if _, ok := model[id]; ok {
					delete(model, id)
					if err := le.Revoke(id); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(le.queue) > 2*le.Len()+64+1 {
				t.Fatalf("seed %d: queue of %d entries for %d leases", seed, len(le.queue), le.Len())
			}
		}
	}
}
