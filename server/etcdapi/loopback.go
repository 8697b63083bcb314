package etcdapi

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// loopbackFirstKeepAliveTimeout is how long the loopback client's lessor
// waits for the first keep-alive answer. etcd's in-process client passes
// one second, which clientv3 reads as "use the default" (5 s); cairn passes
// the same, so the two behave alike.
const loopbackFirstKeepAliveTimeout = time.Second

// NewLoopbackClient returns an etcd client of this member's own KV, Lease
// and Watch services for the Lock and Election services, which are built
// like etcd's from the client library's concurrency package.
//
// The client calls the services in-process, through etcd's server-to-client
// adapters, exactly as etcd's own v3client does: no socket, no TLS or
// listen-address concerns, and no stream of its own on the member's gRPC
// server. (Dialling the member's client listener, or serving the gRPC
// server on an in-memory bufconn listener, would both leave the client's
// lease keep-alive stream, which clientv3 keeps open for the client's whole
// life, on the member's gRPC server, so that every graceful stop waited out
// its full grace period.) Requests from this client have passed the gRPC
// server's interceptors already, as the Lock or Election request that
// caused them.
//
// Only KV, Lease and Watch are set; the rest of the client is nil. The
// caller closes the client after the gRPC server has stopped and before the
// driver and watch hub stop, so in-flight loopback requests end first.
func NewLoopbackClient(kv pb.KVServer, lease pb.LeaseServer, watch pb.WatchServer) *clientv3.Client {
	c := clientv3.NewCtxClient(context.Background())
	c.KV = clientv3.NewKVFromKVClient(adapter.KvServerToKvClient(kv), c)
	c.Lease = clientv3.NewLeaseFromLeaseClient(adapter.LeaseServerToLeaseClient(lease), c, loopbackFirstKeepAliveTimeout)
	c.Watcher = clientv3.NewWatchFromWatchClient(adapter.WatchServerToWatchClient(watch), c)
	return c
}
