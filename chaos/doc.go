// Package chaos runs a cluster of real cairn processes (or of the reference
// etcd, with the same flags) under a seeded schedule of faults while the
// workload records a history, then checks the history and the cluster.
//
// One run (Run):
//  1. starts the cluster behind the fault-injecting proxies (package
//     cluster) and the workload (package workload);
//  2. injects faults one at a time, chosen and timed by the seed: SIGKILL
//     and restart of one member, a minority, the leader or every member at
//     once; SIGSTOP pauses of a member or the leader for longer than the
//     election timeout; partitions that isolate a member or the leader, or
//     cut one direction; added latency and jitter; bandwidth caps;
//     connection resets; blackholed client connections; leader transfer.
//     After each fault heals, the cluster must commit a write within
//     Config.LivenessBound;
//  3. heals everything, stops the workload, and checks: porcupine
//     linearizability of the whole history; serializable reads against the
//     committed history; no acknowledged write lost (each must be in the
//     store's own history, read back through a watch from the first
//     revision); every member's keyspace equal at one revision, and its
//     HashKV at that revision and at revisions spread over the history;
//     lock fencing and election leadership replayed from the store's
//     history; that no lease call contradicts another and every abandoned
//     lease expired (CheckLeases), and that a lease's keys go when it goes,
//     all at one revision; liveness; and that no member exited unless a
//     fault killed it;
//  4. writes a report folder: the history, porcupine's HTML, the fault
//     timeline, every member's log and the summary line.
//
// The seed fixes the schedule of faults and the workload's choices, not what
// real processes do with them: timing, elections and the interleaving of
// requests differ between runs, so a real-process run is not exactly
// reproducible. The command a failing run prints reruns its schedule.
package chaos
