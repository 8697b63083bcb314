package etcdapi

import (
	"context"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Limits are the request limits a member enforces; the core enforces them
// (node.Limits).
type Limits = node.Limits

// DefaultLimits are etcd's defaults.
var DefaultLimits = node.DefaultLimits

// GRPCOverheadBytes is the slack the gRPC receive limit allows above
// MaxRequestBytes, as in etcd, so an oversized request reaches the size check
// and gets etcd's error instead of a transport error.
const GRPCOverheadBytes = 512 * 1024

// Identity is what a response header says about who answered.
type Identity struct {
	ClusterID uint64
	MemberID  uint64
}

// KV implements etcdserverpb.KVServer by carrying each request to the core
// (node.Request) and its response back.
type KV struct {
	pb.UnimplementedKVServer
	d *driver.Driver
}

// NewKV returns the KV service of the member d drives.
func NewKV(d *driver.Driver) *KV { return &KV{d: d} }

// serve carries one request and asserts its response's type.
func serve[R any](ctx context.Context, d *driver.Driver, req node.Request) (R, error) {
	var zero R
	req.Credentials = credentialsOf(ctx)
	resp, err := d.Serve(ctx, req)
	if err != nil {
		return zero, err
	}
	return resp.(R), nil
}

// Range implements etcdserverpb.KVServer.
func (s *KV) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return serve[*pb.RangeResponse](ctx, s.d, node.Request{Range: req})
}

// Put implements etcdserverpb.KVServer.
func (s *KV) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	return serve[*pb.PutResponse](ctx, s.d, node.Request{Put: req})
}

// DeleteRange implements etcdserverpb.KVServer.
func (s *KV) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return serve[*pb.DeleteRangeResponse](ctx, s.d, node.Request{DeleteRange: req})
}

// Txn implements etcdserverpb.KVServer.
func (s *KV) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	return serve[*pb.TxnResponse](ctx, s.d, node.Request{Txn: req})
}

// Compact implements etcdserverpb.KVServer.
func (s *KV) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	return serve[*pb.CompactionResponse](ctx, s.d, node.Request{Compaction: req})
}
