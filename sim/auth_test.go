package sim

import (
	"strings"
	"testing"
)

// authSweepSeeds is how many seeds the auth workload's short sweep runs.
const authSweepSeeds = 6

// TestAuthSweep runs the auth workload under every fault: it must pass,
// have enabled auth and checked revocations.
func TestAuthSweep(t *testing.T) {
	checked := 0
	for seed := uint64(1); seed <= authSweepSeeds; seed++ {
		res := Run(Options{Seed: seed, DurationMicros: shortRunMicros, Auth: true, KeepTrace: true})
		if !res.Passed() {
			t.Errorf("seed %d failed: %v\n  reproduce: go run ./sim/cmd/cairnsim -auth -seed %d -duration 20s -v", seed, res.Failures, seed)
			continue
		}
		if !strings.Contains(res.Trace, "auth enabled") {
			t.Errorf("seed %d never enabled auth", seed)
		}
		if strings.Contains(res.Trace, "auth revoked") {
			checked++
		}
	}
	if checked == 0 {
		t.Error("no seed revoked a permission: the auth check checked nothing")
	}
}

// TestAuthDeterminism: an auth run's trace is the same byte for byte
// (tokens, bcrypt salts and all come from the seed).
func TestAuthDeterminism(t *testing.T) {
	for _, kind := range AuthTokens {
		first := Run(Options{Seed: 5, DurationMicros: 10 * second, Auth: true, AuthToken: kind, KeepTrace: true})
		second := Run(Options{Seed: 5, DurationMicros: 10 * second, Auth: true, AuthToken: kind, KeepTrace: true})
		if first.TraceHash != second.TraceHash {
			t.Fatalf("%s: trace hashes differ: %s vs %s\nfirst difference: %s", kind, first.TraceHash, second.TraceHash, firstDifference(first.Trace, second.Trace))
		}
		if !strings.Contains(first.Trace, "authenticate <nil>") {
			t.Fatalf("%s: no client authenticated", kind)
		}
	}
}

// jwtSweepSeeds is how many seeds TestAuthJWTSweep runs per kind.
const jwtSweepSeeds = 3

// TestAuthJWTSweep runs the auth workload with each kind of JSON Web
// Token: it must pass, and across the seeds clients must have seen their
// tokens go stale (a change of the auth state) and expire, and, with
// EdDSA, a verify-only member refuse to issue one.
func TestAuthJWTSweep(t *testing.T) {
	seen := map[string]int{}
	for _, kind := range []string{AuthTokenJWTHS256, AuthTokenJWTEdDSA} {
		for seed := uint64(1); seed <= jwtSweepSeeds; seed++ {
			res := Run(Options{Seed: seed, DurationMicros: shortRunMicros, Auth: true, AuthToken: kind, KeepTrace: true})
			if !res.Passed() {
				t.Errorf("%s seed %d failed: %v\n  reproduce: go run ./sim/cmd/cairnsim -auth -auth-token %s -seed %d -duration 20s -v", kind, seed, res.Failures, kind, seed)
				continue
			}
			for _, line := range []string{"auth tokens: " + kind, "authenticate <nil>", "drops its token: etcdserver: revision of auth store is old",
				"drops its token: etcdserver: invalid auth token", "authenticate rpc error: code = Unknown desc = auth: token signing attempted with verify-only key"} {
				if strings.Contains(res.Trace, line) {
					seen[line]++
				}
			}
		}
	}
	for _, line := range []string{"auth tokens: " + AuthTokenJWTHS256, "auth tokens: " + AuthTokenJWTEdDSA, "authenticate <nil>",
		"drops its token: etcdserver: revision of auth store is old", "drops its token: etcdserver: invalid auth token",
		"authenticate rpc error: code = Unknown desc = auth: token signing attempted with verify-only key"} {
		if seen[line] == 0 {
			t.Errorf("no seed's trace has %q", line)
		}
	}
}

// TestAuthTokenDraw: the seeds draw every token kind, and the draw takes
// nothing from the run's own random stream.
func TestAuthTokenDraw(t *testing.T) {
	drawn := map[string]int{}
	for seed := uint64(1); seed <= 40; seed++ {
		with, without := Options{Seed: seed, Auth: true}, Options{Seed: seed}
		if with.resolve().Uint64() != without.resolve().Uint64() {
			t.Fatalf("seed %d: drawing the token kind moved the run's random stream", seed)
		}
		drawn[with.AuthToken]++
	}
	for _, kind := range AuthTokens {
		if drawn[kind] == 0 {
			t.Errorf("no seed of 40 drew %s: %v", kind, drawn)
		}
	}
	if err := ValidateAuthToken("jwt-RS256"); err == nil {
		t.Error("an unknown kind is accepted")
	}
}
