// Package load drives a workload: Clients workers each run the workload's
// operation in a loop until Duration has passed or Total operations have been
// issued, optionally held to Rate operations per second over all workers.
//
// Each worker owns its Op and its latency histogram, so the hot loop takes no
// lock; the driver merges the histograms when every worker has stopped. Latency
// is measured around each call, from send to answer; with a rate limit it is
// not corrected for coordinated omission. Only successful operations count
// towards throughput and latency; failed ones are counted, and up to
// maxErrorKinds distinct messages are kept as samples.
//
// A Result with errors, with no operations, or from a workload the server does
// not support is not a valid measurement: Valid says why, and callers must not
// print a throughput or a ratio from it as if it were one.
package load
