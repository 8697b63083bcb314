// Package auth is etcd's auth store as replicated state: the users, the
// roles with their key permissions, whether auth is enabled, and the auth
// revision, which counts the changes that can alter a permission decision.
//
// Every management request (AuthEnable, UserAdd, RoleGrantPermission, ...)
// is applied here from a committed raft entry, with etcd 3.7.3's rules
// about the root user and role and its errors, so every member holds the
// same state at the same applied index. Apply is deterministic: passwords
// arrive already hashed (the driver hashes them with bcrypt before
// proposing, as etcd does), and nothing here reads a clock or a random
// source.
//
// The state is kept in memory for decisions and written, in the batch of
// the entry that changed it, under the "au" prefix of the member's Pebble
// database, so it is durable with the applied index and carried by
// snapshots (a snapshot is a checkpoint of that database); Load reads it
// back on start and after a snapshot is installed.
//
// Store is not safe for concurrent use: the node's loop owns it.
//
// Tokens: Tokens holds etcd's simple tokens, per member and in memory;
// JWT issues and verifies etcd's JSON Web Tokens (--auth-token jwt,...)
// from keys parsed once, at the times its caller passes. ES* and PS*
// signatures draw randomness inside Go's crypto library; the claims, and so
// every decision a token leads to, do not depend on it.
package auth
