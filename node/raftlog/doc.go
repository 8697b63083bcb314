// Package raftlog is the raft log of one cairn member: its entries, its
// HardState and the point up to which it was truncated (snapshot
// metadata), in segment files of its own; and its ConfState, which lives
// in the applied state's Pebble database beside the applied index.
//
// Storage implements go.etcd.io/raft/v3's Storage interface for reads and
// adds write methods that stage records; Commit writes what was staged
// with one write and, when raft says the state must survive a crash, one
// sync. Each entry is written once: the log is the applied state's
// write-ahead log, and nothing copies it elsewhere.
//
// # Segments
//
// The log is a directory of segment files, <seq in 16 hex digits>.log,
// written one after another. A segment starts with a base record (the
// log's state when it was made) and holds records: entries, HardStates,
// truncations and resets (record.go describes them). Once a segment has
// grown past Options.SegmentBytes, the next record starts a new one,
// after the old one and its directory entry are synced. Truncation deletes
// the segments that hold nothing the log still needs, after the next
// synced commit. Open reads every segment kept and rebuilds, in memory,
// where each entry is and its term (about 32 bytes per entry), so Term
// reads no file and Entries reads each run of entries with one read.
//
// # Crashes
//
// A sync covers every record before it, so a crash leaves, of each
// segment, its records up to some point beyond its last sync, and maybe
// garbage after: a torn record, zeros, or records the crash kept although
// one before them was lost. Open ends the newest segment at its first
// record that fails its check, and writes the next records there, with an
// epoch above every record before: a record that epoch marks as older is
// never taken for one written after the crash. A bad record in an older
// segment, before the end its successor's base names, is corruption
// (ErrCorrupt), as is any entry of the log no segment holds. A write,
// sync or removal that fails stops the log for good (ErrWriteFailed).
//
// # Concurrency
//
// A Storage is not safe for concurrent use: raft calls it from the node's
// goroutine, and so do the write methods.
package raftlog
