// Package keys generates the keys and values a workload writes and reads.
//
// A key is Prefix followed by a zero-padded decimal index, padded so every key
// is exactly the configured size; index i always names the same key, so a
// workload that reads keys written by another (range after a preload) agrees
// with it. A Generator is deterministic from its seed and not safe for
// concurrent use: each load worker owns one.
package keys
