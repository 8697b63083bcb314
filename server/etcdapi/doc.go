// Package etcdapi serves the etcd v3 gRPC API on top of a driven node: it
// validates requests as etcd's gRPC layer does (same limits, codes and
// messages), sends writes through raft, serves linearizable reads after a
// ReadIndex barrier and serializable reads straight from the local store,
// and fills response headers with the cluster ID, member ID and raft term.
package etcdapi
