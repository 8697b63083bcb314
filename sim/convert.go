package sim

import (
	"fmt"
	"strings"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// This file translates between the checker's operations and the etcd
// protocol messages the node takes and returns.

// toNodeRequest is the request a client of the etcd API sends for r, as
// the core takes it.
func toNodeRequest(r lin.Request) node.Request {
	switch r.Kind {
	case lin.OpGet, lin.OpRange:
		return node.Request{Range: toRangeRequest(r)}
	case lin.OpPut:
		return wirePut(toPut(r))
	case lin.OpDelete:
		return node.Request{DeleteRange: toDelete(r)}
	case lin.OpTxn:
		return node.Request{Txn: toTxn(r)}
	}
	panic(fmt.Sprintf("sim: no request for %v", r.Kind))
}

func toRangeRequest(r lin.Request) *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte(r.Key), RangeEnd: []byte(r.End), Limit: r.Limit, Serializable: r.Serializable}
}

// wirePut is put as a member's server takes it from a client: encoded,
// then decoded by the core around the received bytes (node.WirePut).
func wirePut(put *pb.PutRequest) node.Request {
	b, err := proto.Marshal(put)
	if err != nil {
		panic(fmt.Sprintf("sim: encode put: %v", err))
	}
	w := node.NewWirePut(len(b))
	copy(w.Bytes(), b)
	req, err := w.Request()
	if err != nil {
		panic(fmt.Sprintf("sim: decode put: %v", err))
	}
	return req
}

func toPut(r lin.Request) *pb.PutRequest {
	return &pb.PutRequest{Key: []byte(r.Key), Value: []byte(r.Value)}
}

func toDelete(r lin.Request) *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: []byte(r.Key), RangeEnd: []byte(r.End)}
}

func toTxn(r lin.Request) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for _, c := range r.Compares {
		t.Compare = append(t.Compare, toCompare(c))
	}
	t.Success = toRequestOps(r.Then)
	t.Failure = toRequestOps(r.Else)
	return t
}

func toCompare(c lin.Compare) *pb.Compare {
	pc := &pb.Compare{Key: []byte(c.Key), RangeEnd: []byte(c.End), Result: compareResults[c.Result]}
	switch c.Target {
	case lin.CompareVersion:
		pc.Target, pc.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: c.Version}
	case lin.CompareCreateRevision:
		pc.Target, pc.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: c.CreateRevision}
	case lin.CompareModRevision:
		pc.Target, pc.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: c.ModRevision}
	case lin.CompareValue:
		pc.Target, pc.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(c.Value)}
	}
	return pc
}

var compareResults = map[lin.CompareResult]pb.Compare_CompareResult{
	lin.CompareEqual:    pb.Compare_EQUAL,
	lin.CompareNotEqual: pb.Compare_NOT_EQUAL,
	lin.CompareLess:     pb.Compare_LESS,
	lin.CompareGreater:  pb.Compare_GREATER,
}

func toRequestOps(ops []lin.Request) []*pb.RequestOp {
	out := make([]*pb.RequestOp, 0, len(ops))
	for _, op := range ops {
		switch op.Kind {
		case lin.OpPut:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: toPut(op)}})
		case lin.OpDelete:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: toDelete(op)}})
		case lin.OpGet, lin.OpRange:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: toRangeRequest(op)}})
		default:
			panic(fmt.Sprintf("sim: %v inside a txn", op.Kind))
		}
	}
	return out
}

func fromKV(kv *mvccpb.KeyValue) lin.KeyValue {
	return lin.KeyValue{
		Key:            string(kv.GetKey()),
		Value:          string(kv.GetValue()),
		CreateRevision: kv.GetCreateRevision(),
		ModRevision:    kv.GetModRevision(),
		Version:        kv.GetVersion(),
	}
}

func fromRangeResponse(req lin.Request, rr *pb.RangeResponse) lin.Response {
	resp := lin.Response{HeaderRevision: rr.GetHeader().GetRevision()}
	if req.Kind == lin.OpGet {
		if len(rr.GetKvs()) > 0 {
			resp.Found, resp.KV = true, fromKV(rr.GetKvs()[0])
		}
		return resp
	}
	for _, kv := range rr.GetKvs() {
		resp.KVs = append(resp.KVs, fromKV(kv))
	}
	resp.Count, resp.More = rr.GetCount(), rr.GetMore()
	return resp
}

// fromResponse is what the checker records of the core's response to req.
func fromResponse(req lin.Request, m proto.Message) (lin.Response, error) {
	switch r := m.(type) {
	case *pb.RangeResponse:
		return fromRangeResponse(req, r), nil
	case *pb.PutResponse:
		return lin.Response{HeaderRevision: r.GetHeader().GetRevision()}, nil
	case *pb.DeleteRangeResponse:
		return lin.Response{HeaderRevision: r.GetHeader().GetRevision(), Deleted: r.GetDeleted()}, nil
	case *pb.TxnResponse:
		return fromTxnResponse(req, r), nil
	}
	return lin.Response{}, fmt.Errorf("sim: unexpected response %T to %v", m, req.Kind)
}

func fromTxnResponse(req lin.Request, r *pb.TxnResponse) lin.Response {
	resp := lin.Response{HeaderRevision: r.GetHeader().GetRevision(), Succeeded: r.GetSucceeded()}
	branch := req.Else
	if r.GetSucceeded() {
		branch = req.Then
	}
	for i, op := range r.GetResponses() {
		var sub lin.Response
		switch {
		case op.GetResponseRange() != nil:
			sub = fromRangeResponse(branch[i], op.GetResponseRange())
		case op.GetResponseDeleteRange() != nil:
			sub = lin.Response{Deleted: op.GetResponseDeleteRange().GetDeleted()}
		}
		sub.HeaderRevision = 0
		resp.Results = append(resp.Results, sub)
	}
	return resp
}

func describeRequest(r lin.Request) string {
	s := lin.DescribeOperation(r, lin.Response{Unknown: true})
	if i := strings.Index(s, " → "); i >= 0 {
		return s[:i]
	}
	return s
}

func describeMessage(m *raftpb.Message) string {
	s := fmt.Sprintf("%s t%d", strings.TrimPrefix(m.GetType().String(), "Msg"), m.GetTerm())
	switch m.GetType() {
	case raftpb.MsgApp, raftpb.MsgAppResp:
		s += fmt.Sprintf(" i%d lt%d c%d n%d", m.GetIndex(), m.GetLogTerm(), m.GetCommit(), len(m.GetEntries()))
		if m.GetReject() {
			s += " reject"
		}
	case raftpb.MsgSnap:
		s += fmt.Sprintf(" index %d", m.GetSnapshot().GetMetadata().GetIndex())
	case raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
		if m.GetReject() {
			s += " reject"
		}
	}
	return s
}
