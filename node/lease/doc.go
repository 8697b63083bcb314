// Package lease is cairn's lessor: the leases of one member, with etcd v3's
// semantics, as a pure, deterministic data structure.
//
// # Contract
//
// Grants and revocations come from applied raft entries and are applied in
// the same order on every member, so every member holds the same leases with
// the same IDs and TTLs. Expiry times are not replicated: only the member
// that leads (the primary, after Promote) tracks them, in memory, from the
// time its driver supplies. A follower's leases never expire ("forever").
// When a member becomes leader it calls Promote, which gives every lease a
// fresh TTL plus an extension (etcd extends by one election timeout), so a
// lease never expires early because leadership moved; Demote makes them
// forever again. The primary asks Expired which leases to revoke, proposes
// their revocation through raft, and only the applied revocation removes
// them.
//
// With checkpoints on (Config.CheckpointInterval, etcd's LeaseCheckpoint
// gate; checkpoint.go) the primary also reports leases' remaining TTLs
// (DueCheckpoints); applied on every member (Checkpoint), they make a later
// Promote start each lease from its checkpoint instead of a fresh TTL.
//
// The lessor holds no keys: which keys are attached to a lease lives in the
// keyspace (package mvcc), on disk. Persisting the leases themselves is the
// caller's job (package node writes them in its apply batch).
//
// # Time
//
// Every method that needs time takes now as an argument: the lessor reads no
// clock. Expiry is decided by comparing now with the expiry the primary set
// from its own earlier readings of the same clock, so only the primary's
// clock rate matters, never the skew between members.
//
// # Concurrency
//
// A Lessor is not safe for concurrent use. Like the rest of the core, it is
// driven from the driver's one goroutine: apply grants, revokes and
// promotes, ticks expire, and keep-alives renew there (node.Start), after
// their ReadIndex barrier.
package lease
