package etcdapi

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Limits are the request limits a member enforces, with etcd's defaults.
type Limits struct {
	// MaxRequestBytes bounds one request as proposed to raft
	// (--max-request-bytes). Default 1.5 MiB.
	MaxRequestBytes int
	// MaxTxnOps bounds the operations in one txn, counted per branch
	// (--max-txn-ops). Default 128.
	MaxTxnOps int
	// QuotaBackendBytes bounds the database's size on disk
	// (--quota-backend-bytes): beyond it, requests that write keys fail with
	// "etcdserver: mvcc: database space exceeded" (deletes and compactions,
	// which free space, still pass). Default 2 GiB.
	QuotaBackendBytes int64
}

// DefaultLimits are etcd's defaults.
var DefaultLimits = Limits{MaxRequestBytes: 1536 * 1024, MaxTxnOps: 128, QuotaBackendBytes: 2 << 30}

// GRPCOverheadBytes is the slack the gRPC receive limit allows above
// MaxRequestBytes, as in etcd, so an oversized request reaches the size check
// and gets etcd's error instead of a transport error.
const GRPCOverheadBytes = 512 * 1024

// Identity is what a response header says about who answered.
type Identity struct {
	ClusterID uint64
	MemberID  uint64
}

// KV implements etcdserverpb.KVServer.
type KV struct {
	pb.UnimplementedKVServer
	d      *driver.Driver
	store  *node.StoreView
	id     Identity
	limits Limits
	// dbSize reports the database's size on disk, for the quota; reading
	// Pebble's metrics is expensive, so the size is sampled at most every
	// dbSizeSampleInterval.
	dbSize dbSizeSampler
}

// dbSizeSampleInterval bounds how stale the quota check's size may be.
const dbSizeSampleInterval = time.Second

// dbSizeSampler caches a size function's value for dbSizeSampleInterval.
type dbSizeSampler struct {
	read func() int64
	// sampledAtNanos and bytes are the last sample; a race between two
	// refreshes only wastes one read.
	sampledAtNanos atomic.Int64
	bytes          atomic.Int64
}

func (s *dbSizeSampler) get() int64 {
	now := time.Now().UnixNano()
	if now-s.sampledAtNanos.Load() > int64(dbSizeSampleInterval) {
		s.bytes.Store(s.read())
		s.sampledAtNanos.Store(now)
	}
	return s.bytes.Load()
}

// NewKV returns the KV service of the member d drives.
func NewKV(d *driver.Driver, id Identity, limits Limits) *KV {
	return &KV{d: d, store: d.Node().Store(), id: id, limits: limits, dbSize: dbSizeSampler{read: d.Node().DiskSpaceUsage}}
}

// overQuota reports whether a write that adds data must be refused.
func (s *KV) overQuota() bool {
	return s.limits.QuotaBackendBytes > 0 && s.dbSize.get() > s.limits.QuotaBackendBytes
}

// Range implements etcdserverpb.KVServer.
func (s *KV) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := mvcc.CheckRange(req); err != nil {
		return nil, err
	}
	if !req.GetSerializable() {
		if err := s.d.ReadIndex(ctx); err != nil {
			return nil, err
		}
	}
	resp, err := s.store.Range(req)
	if err != nil {
		return nil, err
	}
	s.fillHeader(&resp.Header)
	return resp, nil
}

// Put implements etcdserverpb.KVServer.
func (s *KV) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	if err := mvcc.CheckPut(req); err != nil {
		return nil, err
	}
	if s.overQuota() {
		return nil, rpctypes.ErrGRPCNoSpace
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Put: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.PutResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

// DeleteRange implements etcdserverpb.KVServer.
func (s *KV) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := mvcc.CheckDeleteRange(req); err != nil {
		return nil, err
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.DeleteRangeResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

// Txn implements etcdserverpb.KVServer. A txn without writes is a read: it
// is served locally, after a ReadIndex barrier unless all its ranges are
// serializable.
func (s *KV) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := mvcc.CheckTxn(req, mvcc.Limits{MaxTxnOps: s.limits.MaxTxnOps}); err != nil {
		return nil, err
	}
	if mvcc.IsReadOnlyTxn(req) {
		return s.readTxn(ctx, req)
	}
	if s.overQuota() {
		return nil, rpctypes.ErrGRPCNoSpace
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Txn: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.TxnResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

func (s *KV) readTxn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !isSerializableTxn(req) {
		if err := s.d.ReadIndex(ctx); err != nil {
			return nil, err
		}
	}
	resp, err := s.store.ReadTxn(req)
	if err != nil {
		return nil, err
	}
	s.fillHeader(&resp.Header)
	return resp, nil
}

// isSerializableTxn reports whether every range of a read-only txn, in
// either branch, asked for a serializable read.
func isSerializableTxn(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if r := op.GetRequestRange(); r != nil && !r.GetSerializable() {
				return false
			}
			if t := op.GetRequestTxn(); t != nil && !isSerializableTxn(t) {
				return false
			}
		}
	}
	return true
}

// Compact implements etcdserverpb.KVServer.
func (s *KV) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.CompactionResponse)
	s.fillHeader(&r.Header)
	return r, nil
}

func (s *KV) propose(ctx context.Context, req *pb.InternalRaftRequest) (proto.Message, error) {
	if size := proto.Size(req); size > s.limits.MaxRequestBytes {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	resp, err := s.d.Propose(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, fmt.Errorf("etcdapi: request applied without a response")
	}
	return resp, nil
}

// fillHeader completes a header the store started (it sets the revision).
func (s *KV) fillHeader(h **pb.ResponseHeader) {
	if *h == nil {
		*h = &pb.ResponseHeader{}
	}
	(*h).ClusterId = s.id.ClusterID
	(*h).MemberId = s.id.MemberID
	(*h).RaftTerm = s.d.Node().Status().Term
}
