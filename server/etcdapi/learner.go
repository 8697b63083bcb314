package etcdapi

import (
	"context"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// A learner replicates but does not vote, and may be far behind: like etcd,
// it serves only Status and serializable reads, and refuses the rest with
// "etcdserver: rpc not supported for learner".

// LearnerUnaryInterceptor refuses unary requests a learner must not serve.
func LearnerUnaryInterceptor(isLearner func() bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if isLearner() && !node.ServedByLearner(req) {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(ctx, req)
	}
}

// LearnerStreamInterceptor refuses every stream on a learner.
func LearnerStreamInterceptor(isLearner func() bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if isLearner() {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(srv, ss)
	}
}
