// Package cluster launches clusters of real cairn processes, or of the
// reference etcd with the same flags, on loopback, behind the fault-injecting
// proxies of package proxy, and drives their lifecycle: start and wait for
// readiness, SIGKILL and restart on the same data directory, SIGSTOP and
// SIGCONT, and a clean stop.
//
// Every member listens on its own loopback ports and advertises the
// addresses of two proxies instead: its client URL and its peer URL. The
// --initial-cluster every member gets names the peer proxies, so members dial
// one another through them, and the workload's clients dial the client
// proxies. Probes of the harness itself (readiness, leader, convergence) use
// the members' own ports, so a fault never hides the state being checked.
//
// Each member's stdout and stderr, across every restart, are appended to one
// log file with a "=== start #N" line before each run. A process that exits
// without the harness having killed or stopped it is recorded as an
// unexpected exit, with its exit status; the chaos run fails on any.
//
// Members run in their own process group (a terminal's Ctrl-C reaches only
// the harness, which stops them) with a parent-death signal of SIGKILL, so a
// crashed harness leaves no process behind.
//
// It is the one launcher of cairn and etcd processes in the repository:
// StartProcess (a process in its own group, its log, its exit, SIGKILL and
// SIGTERM, readiness, peak RSS) is what Member runs on, and what the e2e
// tests start their members with; a Direct cluster (no proxies, fixed ports
// if wanted, TLS) is what the benchmark and `make cluster` start; FreePort
// hands out loopback ports below the ephemeral range, never twice in one
// process.
//
// A Cluster is safe for concurrent use: faults and probes may run from
// different goroutines.
package cluster
