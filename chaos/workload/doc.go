// Package workload is the chaos tests' traffic generator: clients of the
// official Go client go.etcd.io/etcd/client/v3 that issue KV calls at a
// bounded rate and record every one in a linearizability.Recorder.
//
// The mix, over a small set of keys so that operations contend:
// puts of unique values, linearizable gets, prefix ranges with a limit,
// deletes, and Kubernetes-style compare-and-swap (read a key, then a txn
// that writes it only if its mod_revision is still the one read, else reads
// it back). Serializable gets are issued too; they are not linearizable, so
// they are kept apart and checked afterwards against the committed history
// (linearizability.CheckSerializableRead).
//
// Outcomes: a response is recorded as returned; any error is recorded as
// unknown (the request may or may not have taken effect), since a client
// cannot tell a request that never reached the leader from one whose answer
// was lost; the client then continues under a fresh client ID, as the
// recorder requires. Every request has a deadline (Config.RequestTimeout).
//
// Some clients are pinned to one member each, so a member that serves stale
// reads keeps being asked; the others balance over every endpoint.
//
// Every acknowledged write is also kept (key, value, revision) for the
// lost-write check, which looks for each in the store's own history after the
// run.
//
// LeaseWorkload runs beside the KV clients: it grants bare leases (no key
// attached, so the KV history stays the store's only writer), keeps them
// alive for a while, then revokes or abandons them, and keeps every call
// with the times it was sent and answered, for the lease check.
package workload
