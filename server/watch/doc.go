// Package watch runs a member's watch hub in the production server: it
// wraps the deterministic hub of node/watch, which decides everything a
// watcher sees (fan-out, catch-up, the slow-watcher policy, compaction
// cancels, progress), with the goroutines, the lock and the clock the
// server needs, and carries nothing else.
//
// # Concurrency
//
// One mutex (Hub.mu) serializes every call into the core hub: Notify and
// Resync from the driver's loop, stream calls from each gRPC stream's
// goroutines. One goroutine per hub runs the catch-up steps (reading
// history outside the lock, between StartCatchUp and FinishCatchUp) when a
// call left one due, and advances the core's clock every tick interval
// (the smaller of its ResyncInterval and ProgressNotifyInterval). Every
// method is safe from any goroutine.
package watch
