// Package watch is a member's watch hub: it fans the keyspace changes the
// member applies out to the watchers of every client stream, and catches
// watchers up from the MVCC history, with etcd v3's guarantees.
//
// # Design (etcd's synced/unsynced split)
//
// A watcher is synced when it has been given every matching event up to the
// last revision the hub was notified of (Hub.rev); only synced watchers
// receive live events. Notify, called by the driver's loop after each
// Process with the events it applied, fans them out: one lookup per event
// in a map of single-key watchers plus a scan of the range watchers. Events
// are shared, not copied per watcher: every watcher gets the driver's
// *mvccpb.Event values, and watchers without prev_kv share one copy per
// event without PrevKv. All events a watcher gets from one Notify call go
// into one response, so a revision is never split (atomic).
//
// A watcher is unsynced when its start revision is in the past, or when it
// fell behind: its stream has not taken BufferEventsMax of its events, or
// BufferBytesMax of them, yet.
// Then live events are no longer queued for it (a slow reader never blocks
// the driver and never makes the hub drop an event); the hub's own goroutine
// catches it up from Store.History, at most CatchUpEventsMax events (whole
// revisions) at a time and only once the stream has taken everything queued
// for it, until it reaches Hub.rev and joins the synced set. Revisions are
// published in the store before Notify sees them, so history always covers
// what the live feed has not yet delivered; events at or above a watcher's
// minRev only are ever queued, so the handover has neither gap nor
// duplicate. A catch-up that finds its start revision compacted cancels the
// watcher with compact_revision set, as etcd does.
//
// Memory: per watcher, at most BufferEventsMax events and BufferBytesMax
// bytes queued plus one Notify call's worth (the batch that crossed the
// bound), and at most twice that while the stream sends what it took. The
// window of recent events shared by catch-ups holds at most RecentBytesMax
// bytes. Bytes are eventBytes: keys, values, previous keys and values, and
// a fixed overhead per event, so the bounds hold whatever the value size.
//
// Progress: RequestProgress answers (watch_id -1) at the hub's revision once
// every watcher on the stream is synced, so no event at or below it is yet
// to come; it is deferred, not dropped, while one is catching up. Watchers
// with progress_notify get one every ProgressNotifyInterval in which they
// got no event, when synced.
//
// # Concurrency
//
// One mutex (Hub.mu) guards all watcher state; Notify, stream calls and the
// catch-up goroutine hold it only for in-memory work, never for I/O.
// History reads run outside it. Notify is called from one goroutine at a
// time (the driver's loop); every other method is safe from any goroutine.
package watch
