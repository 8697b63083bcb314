// Package bench is the root of cairn's load generator and of the harness that
// compares cairn with the real etcd side by side. It holds no code; its
// subpackages do one job each:
//
//   - hist: a fixed-size latency histogram with percentiles (no allocation per sample)
//   - keys: deterministic key and value generators (sequential or random keys)
//   - load: the driver: clients, connections, duration or total, rate limit,
//     progress, and the result every workload reports
//   - workload: put, range, txn, watch, lease and the kubernetes-like mix, all on
//     the official go.etcd.io/etcd/client/v3
//   - chart: the SVG chart of a comparison, drawn without external tools
//   - compare: starts fresh etcd and cairn clusters, runs the same load against
//     each in alternating rounds, and writes the table and docs/benchmarks.md
//
// Benchmarks are programs, never timed unit tests: the unit tests here check the
// arithmetic and the generators and run without a server.
package bench
