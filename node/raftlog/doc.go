// Package raftlog is the raft log of one cairn member, kept in the member's
// Pebble database: the entries, the HardState, the ConfState and the point
// up to which the log was truncated (snapshot metadata).
//
// Storage implements go.etcd.io/raft/v3's Storage interface for reads and
// adds write methods that stage changes into a caller's *pebble.Batch, so the
// node can make entries and HardState durable with one synced commit per
// Ready, and write the ConfState in the same batch as the applied index.
//
// # Layout
//
// Every key starts with the byte 'r':
//
//	r e <index:8 BE>  → <term:8 BE> <raftpb.Entry protobuf>
//	r h               → raftpb.HardState protobuf
//	r c               → raftpb.ConfState protobuf (as of the applied index)
//	r t               → <index:8 BE> <term:8 BE> of the last truncated entry
//
// Entry keys sort by index, so a range of entries is one iterator pass and
// truncating a suffix or a prefix is one range deletion. The term is stored
// before the protobuf so Term(i) reads eight bytes instead of decoding the
// entry.
//
// # Concurrency
//
// A Storage is not safe for concurrent use: raft calls it from the node's
// goroutine, and so do the write methods.
package raftlog
