package auth

import (
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
)

// TokensMax bounds the simple tokens a member holds. Issuing one more
// drops the oldest issued: its client gets "invalid auth token" and
// authenticates again, as after a member restart (etcd keeps tokens in
// memory only, without a bound).
const TokensMax = 8192

// simpleTokenLength and simpleTokenLetters shape a token's random part,
// as etcd's: 16 ASCII letters, then "." and the index of the raft entry
// that issued it.
const (
	simpleTokenLength  = 16
	simpleTokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// TokenPrefix is the random part of a simple token, drawn from next (the
// node's random source) by the member that proposes the Authenticate.
func TokenPrefix(next func() uint64) string {
	b := make([]byte, simpleTokenLength)
	for i := range b {
		b[i] = simpleTokenLetters[next()%uint64(len(simpleTokenLetters))]
	}
	return string(b)
}

// SimpleToken is the token an Authenticate entry at index issues.
func SimpleToken(prefix string, index uint64) string {
	return prefix + "." + strconv.FormatUint(index, 10)
}

// tokenEntry is one issued token. Only expiresAtNanos changes after the
// entry is published: every use pushes it a TTL later.
type tokenEntry struct {
	user           string
	expiresAtNanos atomic.Int64
}

// Tokens are the simple tokens a member issued and not yet dropped,
// per member and in memory only, as in etcd: every member registers the
// token of an Authenticate entry when it applies it, so a client may use
// it on any member, and a restarted member has none. A Tokens value is
// immutable once published, except each entry's expiry: the loop replaces
// the whole value on a change (copy on write, at most TokensMax entries),
// and readers on other goroutines look tokens up without a lock.
type Tokens struct {
	byToken map[string]*tokenEntry
	// issued are the tokens in the order they were issued, for the bound.
	// Invariant: the same tokens as byToken's keys.
	issued []string
}

// NewTokens returns an empty token table.
func NewTokens() *Tokens { return &Tokens{byToken: map[string]*tokenEntry{}} }

// Len is the number of tokens held.
func (t *Tokens) Len() int { return len(t.byToken) }

// Lookup returns the user of a token that has not expired at nowNanos,
// and pushes its expiry to nowNanos+ttlNanos, as etcd does on every use.
func (t *Tokens) Lookup(token string, nowNanos, ttlNanos int64) (string, bool) {
	e, ok := t.byToken[token]
	if !ok || e.expiresAtNanos.Load() <= nowNanos {
		return "", false
	}
	e.expiresAtNanos.Store(nowNanos + ttlNanos)
	return e.user, true
}

// With returns a table that also holds token for user, expiring at
// expiresAtNanos, without the oldest token if t is full.
func (t *Tokens) With(token, user string, expiresAtNanos int64) *Tokens {
	next := &Tokens{byToken: maps.Clone(t.byToken), issued: slices.Clone(t.issued)}
	if len(next.issued) >= TokensMax {
		delete(next.byToken, next.issued[0])
		next.issued = next.issued[1:]
	}
	e := &tokenEntry{user: user}
	e.expiresAtNanos.Store(expiresAtNanos)
	next.byToken[token] = e
	next.issued = append(next.issued, token)
	return next
}

// without returns a table without the tokens drop selects, or t itself if
// it selects none.
func (t *Tokens) without(drop func(token string, e *tokenEntry) bool) *Tokens {
	found := false
	for _, token := range t.issued {
		if drop(token, t.byToken[token]) {
			found = true
			break
		}
	}
	if !found {
		return t
	}
	kept := &Tokens{byToken: map[string]*tokenEntry{}}
	for _, token := range t.issued {
		e := t.byToken[token]
		if drop(token, e) {
			continue
		}
		kept.byToken[token] = e
		kept.issued = append(kept.issued, token)
	}
	return kept
}

// WithoutUser drops every token of user (deleted, or its password
// changed).
func (t *Tokens) WithoutUser(user string) *Tokens {
	return t.without(func(_ string, e *tokenEntry) bool { return e.user == user })
}

// WithoutExpired drops the tokens expired at nowNanos.
func (t *Tokens) WithoutExpired(nowNanos int64) *Tokens {
	return t.without(func(_ string, e *tokenEntry) bool { return e.expiresAtNanos.Load() <= nowNanos })
}
