// Command cairnctl is cairn's command-line client. Today it has one command,
// bench, the load generator on the official etcd Go client:
//
//	cairnctl bench [flags] put|range|txn|watch|lease|k8s
//
// It prints throughput, latency percentiles and errors (or, with -json, one
// JSON object) on stdout and progress on stderr. It exits 1 when the run had
// errors, since such figures are not a measurement, and 3 when the server
// does not support the workload (lease on a server without leases).
package main
