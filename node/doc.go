// Package node is one cairn member as a deterministic state machine: raft
// (go.etcd.io/raft/v3's RawNode), its log on Pebble (package raftlog), and
// the MVCC keyspace (package mvcc) that committed entries are applied to.
//
// # The contract
//
// A Node is driven, never drives. Its inputs are method calls: Tick advances
// logical time, Step delivers a message from a peer, Propose and ReadIndex
// start client requests. Process does all work that is ready — persists new
// entries and the HardState with one synced Pebble commit, applies committed
// entries, advances raft — and returns what the driver must do next: the
// messages to send and the requests that completed. The production server
// and the simulator are the two drivers; they share no copy of this logic.
//
// Everything outside the node comes in through Config: the filesystem
// Pebble uses (vfs.FS), the random source for request IDs, and the logger.
// The node starts no goroutine, reads no wall clock and draws no global
// randomness. (Pebble runs background goroutines of its own; raft draws its
// election jitter from Go's process-wide cryptographic random source, which
// a simulator must replace for the duration of a run.)
//
// # Concurrency
//
// A Node's methods are called from one goroutine at a time, except where a
// method says otherwise: Store's read methods, and Status, are safe from any
// goroutine.
//
// # Durability
//
// Entries and HardState are committed with pebble.Sync before Process
// returns the messages that depend on them and before any request they carry
// completes. The applied index is written in the same Pebble batch as the
// state it produces, so a crash re-applies nothing twice and loses nothing:
// on restart raft re-delivers every committed entry above the applied index.
// Storage errors are returned from Process; the driver must stop the member.
package node
