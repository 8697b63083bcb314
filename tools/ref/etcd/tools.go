//go:build tools

// Package tools pins the reference etcd binaries that cairn is compared
// against. It is built by `make ref` into .ref/bin and never shipped.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
