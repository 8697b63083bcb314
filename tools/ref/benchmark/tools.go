//go:build tools

// Package tools pins etcd's benchmark tool, the load generator cairn and the
// reference etcd are measured with. It is built by `make ref` into .ref/bin
// and never shipped. The root module go.etcd.io/etcd/v3 is served by the
// module proxy only up to v3.6.8, so it lives apart from the 3.7 binaries.
package tools

import (
	_ "go.etcd.io/etcd/v3/tools/benchmark"
)
