// Package linearizability checks histories of etcd KV calls against a
// sequential model of the etcd keyspace, with porcupine, and checks the
// guarantees of watch streams.
//
// It serves two drivers: the deterministic simulator (virtual time, one
// goroutine) and the chaos tests (real time, many goroutines). It imports no
// cairn or etcd package: operations are described by this package's own
// Request and Response types, which mirror the etcd v3 protocol's fields.
//
// # Recording
//
// A Recorder collects operations: Invoke before a request is sent, then
// exactly one of Return (response received), Unknown (timeout, lost
// connection, crash: the request may or may not have taken effect, at any
// time after its invocation) or Fail (the request definitely had no effect,
// e.g. rejected before being proposed; it is left out of the history). An
// operation never finished counts as Unknown. Time comes from a clock
// function in any monotonic unit; call intervals are closed, so equal
// timestamps mean "concurrent". A Recorder is safe for concurrent use.
//
// # The model
//
// The state is a revision and the live keys, each with value,
// create_revision, mod_revision and version. The store starts empty at a
// start revision given by the caller (1 for a fresh etcd or cairn store, whose
// first write creates revision 2); the recorded workload must be the only
// writer from then on, except for writers on keys no recorded operation
// reads, whose revisions the Recorder is told after the run (SetForeign,
// from the store's own history). Those foreign revisions may happen at any
// point between recorded operations: a write creates the first revision
// after its state that is not foreign, and an operation that changes
// nothing may report any revision of the foreign run that follows its state. Every request that changes something increments the
// revision by exactly one (all the ops of a txn share it); a put always
// changes something, a delete of nothing does not. Acknowledged operations
// must have returned exactly what etcd would in the state where they are
// linearized: header revision, values, mod/create revisions, versions, range
// count and more, delete counts, txn success and the results of the txn's
// ops. Txn compares follow etcd's applyCompare: over a missing key they see
// version, create and mod revision 0, and a value compare fails. Puts with
// prev_kv, leases, sort orders other than by key, revision-pinned reads and
// nested txns are not modelled.
//
// Unknown-outcome writes may take effect at any point after invocation, or
// never. Because revisions are global, the history is not partitioned by
// key. To keep the search small, Prepare drops unknown-outcome reads and the
// unknown-outcome writes that cannot have created any revision an
// acknowledged operation observed, and the model lets an unknown write take
// effect only where it would create a revision that no acknowledged write
// claims and that some acknowledged operation observed; elsewhere it is
// linearized as taking no effect, which no recorded operation can tell from
// taking effect after all of them. Both rules only remove orders that cannot
// be valid. A caller that knows the committed write history (a simulator
// can read it back from a converged member) passes it to CheckCommitted,
// which narrows each unknown write to what that history says it did
// (NarrowUnknownWrites): the revision it created, or no effect.
//
// # Reads
//
// Only linearizable reads belong in a checked history. A serializable read
// may be stale, so recording it would report false violations; check it
// instead with CheckSerializableRead, which requires its result to equal the
// store at the header revision it reports, rebuilt from the committed write
// history (from CommittedEvents, which replays the linearization Check found,
// or from the simulator's own record).
//
// # Watches
//
// CheckWatch compares the events one watcher received with the committed
// write history: ordered, no duplicates, no gaps up to the last revision
// received, atomic per revision, and prev_kv equal to the key's previous
// value when requested.
//
// # Reports
//
// WriteReport writes history.txt (one operation per line, stable order) and
// porcupine's HTML visualisation, in which operations read like
// put("k1","v3") → rev 7, to a directory.
//
// Check runs porcupine, which starts goroutines and waits for them before it
// returns; call it outside the simulator's deterministic step loop.
package linearizability
