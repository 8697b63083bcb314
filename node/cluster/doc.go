// Package cluster derives a cluster's identity from its configuration the
// way etcd does, so a member's ID and the cluster's ID are the same numbers
// an etcd cluster with the same flags would have: a member ID is a hash of
// its sorted peer URLs and the cluster token; the cluster ID is a hash of
// the sorted member IDs.
package cluster
