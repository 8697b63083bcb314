package etcdapi

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func rangeOp(serializable bool) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Serializable: serializable}}}
}

func txnOp(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

// TestIsSerializableTxn: a read-only txn skips the ReadIndex barrier only
// if every range in either branch, nested txns included, is serializable.
func TestIsSerializableTxn(t *testing.T) {
	for name, tc := range map[string]struct {
		req  *pb.TxnRequest
		want bool
	}{
		"empty":                   {&pb.TxnRequest{}, true},
		"serializable success":    {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true), rangeOp(true)}}, true},
		"one linearizable":        {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true), rangeOp(false)}}, false},
		"linearizable in failure": {&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp(true)}, Failure: []*pb.RequestOp{rangeOp(false)}}, false},
		"nested serializable": {&pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(true)}})}}, true},
		"nested linearizable": {&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(true),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(&pb.TxnRequest{Failure: []*pb.RequestOp{rangeOp(false)}})}})}}, false},
	} {
		if got := isSerializableTxn(tc.req); got != tc.want {
			t.Errorf("%s: isSerializableTxn = %v, want %v", name, got, tc.want)
		}
	}
}
