// Package workload holds the operations cairnctl bench runs, all through the
// official go.etcd.io/etcd/client/v3, so they measure what real clients see:
//
//   - put: Put of KeyCount keys of KeySize bytes (sequential or random) with ValueSize values
//   - range: Get of one key, or a scan from a random key with Limit, linearizable or serializable
//   - txn: Kubernetes' compare-and-swap: If(mod_revision == cached) Then(Put) Else(Get)
//   - watch: Watchers watching one key while clients put to it; event throughput and
//     put-to-event latency (the put's send time travels in the value)
//   - lease: Grant, KeepAliveOnce, Revoke; a server answering Unimplemented gets a
//     Result marked NotSupported instead of a failure
//   - k8s: a kubernetes-like mix over /registry/pods/<ns>/<pod>: Get, CAS update,
//     namespace list with limit and continue, full list, and Watchers on the prefix
//
// Run dials Conns clients (each one gRPC connection to all Endpoints), sets the
// workload up (preloading keys where it reads them), drives it with package load
// spread round-robin over the clients, and adds the workload's own figures.
package workload
