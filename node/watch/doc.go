// Package watch is a member's watch hub as a deterministic state machine:
// it fans the keyspace changes the member applies out to the watchers of
// every client stream, catches watchers up from the MVCC history, cancels
// those whose start was compacted, applies the slow-watcher policy and
// sends progress notifications, with etcd v3's guarantees.
//
// It is to server/watch what raft's RawNode is to its Node: no goroutines,
// no locks, no wall clock, no map-order dependence. Its inputs are calls
// from one driver goroutine (the server's wrapper under its lock, or the
// simulator): Notify (events applied), Resync (snapshot installed),
// Stream.Create, Stream.Cancel, Stream.RequestProgress, Stream.Close,
// Stream.Take (the stream's acknowledgement that it sent everything it took
// before), Tick (the driver's monotonic clock) and CatchUp. Its outputs are
// the responses each stream takes, in the order they must be sent: the
// contents of etcd's WatchResponse, without the header's cluster, member
// and term, which the server adds.
//
// # Design (etcd's synced/unsynced split)
//
// A watcher is synced when it has been given every matching event up to
// the last revision the hub was notified of (Hub.rev); only synced
// watchers receive live events. Notify fans them out: one lookup per event
// in a map of single-key watchers plus a scan of the range watchers.
// Events are shared, not copied per watcher: every watcher gets the
// driver's *mvccpb.Event values. They come without PrevKv (but deletes
// whose request decoded it anyway), so that neither the apply path nor the
// window of recent events holds a second copy of every value; for the
// watchers with prev_kv the hub reads the version each event replaced
// (Store.VersionBefore, at mod_revision-1 as etcd does: none for a create,
// none once that revision is compacted) once per event per Notify call or
// catch-up round, and they share that copy. A read that fails moves the
// watcher to catch-up. All events a watcher gets from one Notify call go
// into one response, so a revision is never split (atomic), and while a
// stream has not yet taken a watcher's last response, the next ones of
// that watcher join it (up to 32 KiB of events, never past a created,
// canceled or progress response): a stream that falls behind sends fewer,
// larger responses rather than one per Notify call. A stream that took
// many responses at once is asked to pause before it takes again
// (Stream.Pause), so that its watchers' next events merge the same way.
//
// A watcher is unsynced when its start revision is in the past, or when it
// fell behind: its stream has not taken BufferEventsMax of its events, or
// BufferBytesMax of them, yet. Then live events are no longer queued for
// it (a slow reader never blocks the driver and never makes the hub drop
// an event); catch-up steps bring it back, at most CatchUpWatchersMax
// watchers per step and CatchUpEventsMax events (whole revisions) per
// watcher, in responses of at most ResponseBytesMax, only once its stream
// has taken everything queued for it, from the window of recent events
// when it covers the start and from Store.History otherwise, until the
// watcher reaches Hub.rev and joins the synced set. Revisions are
// published in the store before Notify sees them, so history always covers
// what the live feed has not yet delivered; events at or above a watcher's
// minRev only are ever queued, so the handover has neither gap nor
// duplicate. A catch-up that finds its start revision compacted cancels
// the watcher with compact_revision set, as etcd does.
//
// A catch-up step is three calls so that a driver with concurrent readers
// can read history without holding its lock: StartCatchUp picks the
// watchers, CatchUpRound.Read reads (it touches no hub state), and
// FinishCatchUp queues what was read, discarding reads a concurrent change
// made stale. CatchUp does all three.
//
// Memory: per watcher, at most BufferEventsMax events and BufferBytesMax
// bytes queued plus one Notify call's worth (the batch that crossed the
// bound), and at most twice that while the stream sends what it took. The
// window of recent events shared by catch-ups holds at most RecentBytesMax
// bytes: the events from the oldest revision a watcher being caught up
// needs, and at most a sixteenth of the bound beyond them; nothing while
// the hub has no watcher. Bytes are eventBytes: keys, values, previous keys and values
// where an event carries them, and a fixed overhead per event, so the
// bounds hold whatever the value size. A catch-up from the window reads
// previous versions for at most about BufferBytesMax of one watcher's
// events.
//
// Progress: RequestProgress answers (watch_id -1) at the hub's revision
// once every watcher on the stream is synced, so no event at or below it
// is yet to come; it is deferred, not dropped, while one is catching up.
// Watchers with progress_notify get one every ProgressNotifyInterval of
// the driver's clock in which they got no event, when synced.
//
// Order: every set the hub walks is a slice (removal swaps with the last
// element), so the order of responses depends only on the sequence of
// calls.
package watch
