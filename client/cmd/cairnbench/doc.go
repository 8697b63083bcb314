// Command cairnbench compares cairn with the real etcd side by side; make
// bench, make bench-large, make bench-soak and make bench-defrag run it.
//
//	cairnbench compare [flags]   every case against fresh etcd and cairn clusters
//	cairnbench large -n N        the large-data scenario
//	cairnbench defrag -keys N    read and write latency during a defragment
//	cairnbench render            rewrite docs/benchmarks.md from docs/bench/*.json
//
// compare and large write their results as JSON under -results and rewrite
// -doc and the SVG chart. compare exits 1 when a case has no figure because a
// run failed (an unsupported workload is not a failure); the table and doc are
// written either way, saying why.
package main
