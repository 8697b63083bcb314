package auth

import (
	"fmt"
	"testing"
)

func TestTokensExpireAfterTheirLastUse(t *testing.T) {
	const ttl = 10
	tokens := NewTokens().With("a.1", "alice", 10).With("b.2", "bob", 10)
	if user, ok := tokens.Lookup("a.1", 5, ttl); !ok || user != "alice" {
		t.Fatalf("a.1 at 5: %q %v", user, ok)
	}
	// a.1 was used at 5: it now expires at 15; b.2 still at 10.
	if _, ok := tokens.Lookup("b.2", 10, ttl); ok {
		t.Fatal("b.2 valid at its expiry")
	}
	if _, ok := tokens.Lookup("a.1", 14, ttl); !ok {
		t.Fatal("a.1 expired before a TTL after its last use")
	}
	if _, ok := tokens.Lookup("nope.3", 0, ttl); ok {
		t.Fatal("an unknown token is valid")
	}
	kept := tokens.WithoutExpired(20)
	if kept.Len() != 1 || tokens.Len() != 2 {
		t.Fatalf("after dropping expired tokens: %d kept, the published table changed to %d", kept.Len(), tokens.Len())
	}
	if same := kept.WithoutExpired(20); same != kept {
		t.Fatal("dropping nothing made a new table")
	}
}

func TestTokensDropAUsersTokens(t *testing.T) {
	tokens := NewTokens().With("a.1", "alice", 100).With("b.2", "bob", 100).With("a.3", "alice", 100)
	tokens = tokens.WithoutUser("alice")
	if _, ok := tokens.Lookup("a.1", 0, 1); ok {
		t.Fatal("a deleted user's token is valid")
	}
	if _, ok := tokens.Lookup("b.2", 0, 1); !ok || tokens.Len() != 1 {
		t.Fatal("another user's token was dropped")
	}
}

func TestTokensBound(t *testing.T) {
	tokens := NewTokens()
	for i := range TokensMax + 1 {
		tokens = tokens.With(fmt.Sprintf("t.%d", i), "u", 100)
	}
	if tokens.Len() != TokensMax {
		t.Fatalf("%d tokens held, bound %d", tokens.Len(), TokensMax)
	}
	if _, ok := tokens.Lookup("t.0", 0, 1); ok {
		t.Fatal("the oldest token was kept past the bound")
	}
	if _, ok := tokens.Lookup(fmt.Sprintf("t.%d", TokensMax), 0, 1); !ok {
		t.Fatal("the newest token was dropped")
	}
}

func TestTokenPrefix(t *testing.T) {
	n := uint64(0)
	next := func() uint64 { n += 0x9e3779b97f4a7c15; return n }
	a, b := TokenPrefix(next), TokenPrefix(next)
	if len(a) != simpleTokenLength || a == b {
		t.Fatalf("prefixes %q and %q", a, b)
	}
	for _, c := range a {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			t.Fatalf("prefix %q has %q", a, c)
		}
	}
	if got := SimpleToken(a, 42); got != a+".42" {
		t.Fatalf("token %q", got)
	}
}
