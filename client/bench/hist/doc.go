// Package hist records latencies in a log-linear histogram of fixed size and
// answers percentiles with a relative error below 1 %.
//
// A Histogram is not safe for concurrent use: each load worker owns one and the
// driver merges them at the end (Merge). Record never allocates. Min, max, count
// and sum are exact; a percentile is the upper bound of the bucket holding the
// sample of that rank, clamped to the exact max, so it never under-reports.
package hist
