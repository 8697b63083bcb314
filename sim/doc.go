// Package sim is cairn's deterministic simulator: it runs whole clusters of
// real node.Node state machines in one goroutine on virtual time, injects
// faults from a seed, records every client operation and checks the run.
//
// # One seed, one run
//
// Everything a run does comes from its seed through one PRNG: the cluster
// size, the client workload, every message's delay, loss and duplication,
// and the fault schedule. Raft draws its election jitter from crypto/rand,
// so Run replaces crypto/rand.Reader with a stream seeded from the run's seed
// for its duration: only one run may execute in a process at a time, and
// sweeps run in parallel across worker processes (cmd/cairnsim). The same
// seed produces the same trace, byte for byte; TestDeterminism asserts it.
//
// # The world
//
// An event queue ordered by (virtual time, insertion order) holds ticks,
// message deliveries, disk completions, client requests and faults. Each
// member's Pebble runs on a crashable in-memory filesystem; a crash keeps
// exactly the data that was synced (CrashClone with no unsynced data), which
// is deterministic because Pebble's background work is configured away in
// the simulator (large memtables, no automatic compactions): what a crash
// keeps depends only on the order of commits.
//
// # Checks
//
// Every run ends by healing all faults, requiring the cluster to commit a
// write within a bounded time (liveness), letting the members converge, and
// then checking: the client history is linearizable (porcupine, through
// package linearizability); every member that applied up to the same
// revision has the same keyspace hash there (convergence); and every
// acknowledged write's revision holds that write in the final store (no
// acknowledged write lost). Every member runs the real watch hub
// (node/watch); simulated watchers are streams on it and must have received
// every committed event of their range in order, once, with the right
// prev_kv, and all of it before each progress notification (watch.go);
// leases must not lose
// their keys before their TTL passed since the last acknowledged
// keep-alive, revoked leases' keys must be gone on every member, and a
// fenced lock has one holder at a time (lease.go, lease_check.go).
package sim
