// Package testserver stands in for k8s.io/apiserver's
// pkg/storage/etcd3/testserver when Kubernetes' storage tests run against
// an external server: `go test -overlay` compiles this file in place of the
// upstream test_server.go, so the tests' calls to NewTestConfig and RunEtcd
// land here. It keeps the upstream API (the same names, arguments and
// results); instead of an embedded etcd, RunEtcd starts a fresh process of
// the binary named by $K8S_STORAGE_SERVER_BIN (bin/cairn or the reference
// etcd, which take the same flags) for each call, on its own free loopback
// ports and data directory, and kills it when the test ends. A fresh
// server per call gives every test what the embedded one gave it: an empty
// keyspace at revision 1, never compacted.
//
// $K8S_STORAGE_FEATURE_GATES, if set, is applied to the apiserver's feature
// gates before any test runs (for example "EtcdRangeStream=false"): it sets
// the default that the tests which do not set a gate themselves run with.
//
// The embed.Config that tests may change before RunEtcd is carried as
// flags: name, data directory, URLs, UnsafeNoFsync,
// WatchProgressNotifyInterval, MaxRequestBytes, MaxTxnOps and
// QuotaBackendBytes. A test that sets anything else gets the server's
// default for it.
package testserver
