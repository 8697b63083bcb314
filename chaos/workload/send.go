package workload

import (
	"context"
	"fmt"

	lin "github.com/cairn-db/cairn/linearizability"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Send issues req through cli and converts the answer into what the
// linearizability model reads. Reads are linearizable.
func Send(ctx context.Context, cli *clientv3.Client, req lin.Request) (lin.Response, error) {
	if req.Kind == lin.OpTxn {
		return sendTxn(ctx, cli, req)
	}
	op, err := toOp(req)
	if err != nil {
		return lin.Response{}, err
	}
	resp, err := cli.Do(ctx, op)
	if err != nil {
		return lin.Response{}, err
	}
	switch req.Kind {
	case lin.OpPut:
		return lin.Response{HeaderRevision: resp.Put().Header.Revision}, nil
	case lin.OpGet:
		return getResponse(resp.Get()), nil
	case lin.OpRange:
		return rangeResponse(resp.Get()), nil
	case lin.OpDelete:
		del := resp.Del()
		return lin.Response{HeaderRevision: del.Header.Revision, Deleted: del.Deleted}, nil
	}
	return lin.Response{}, fmt.Errorf("workload: cannot send %v", req.Kind)
}

// toOp converts a non-txn request into a clientv3 operation.
func toOp(req lin.Request) (clientv3.Op, error) {
	switch req.Kind {
	case lin.OpPut:
		return clientv3.OpPut(req.Key, req.Value), nil
	case lin.OpGet:
		return clientv3.OpGet(req.Key), nil
	case lin.OpRange:
		opts := []clientv3.OpOption{clientv3.WithRange(req.End)}
		if req.Limit > 0 {
			opts = append(opts, clientv3.WithLimit(req.Limit))
		}
		return clientv3.OpGet(req.Key, opts...), nil
	case lin.OpDelete:
		if req.End != "" {
			return clientv3.OpDelete(req.Key, clientv3.WithRange(req.End)), nil
		}
		return clientv3.OpDelete(req.Key), nil
	}
	return clientv3.Op{}, fmt.Errorf("workload: no clientv3 op for %v", req.Kind)
}

func sendTxn(ctx context.Context, cli *clientv3.Client, req lin.Request) (lin.Response, error) {
	cmps := make([]clientv3.Cmp, len(req.Compares))
	for i, c := range req.Compares {
		cmp, err := toCmp(c)
		if err != nil {
			return lin.Response{}, err
		}
		cmps[i] = cmp
	}
	then, err := toOps(req.Then)
	if err != nil {
		return lin.Response{}, err
	}
	els, err := toOps(req.Else)
	if err != nil {
		return lin.Response{}, err
	}
	resp, err := cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return lin.Response{}, err
	}
	out := lin.Response{HeaderRevision: resp.Header.Revision, Succeeded: resp.Succeeded}
	branch := req.Else
	if resp.Succeeded {
		branch = req.Then
	}
	if len(resp.Responses) != len(branch) {
		return lin.Response{}, fmt.Errorf("workload: txn answered %d results for %d ops", len(resp.Responses), len(branch))
	}
	for i, op := range branch {
		out.Results = append(out.Results, txnResult(op, resp.Responses[i]))
	}
	return out, nil
}

func toOps(reqs []lin.Request) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, len(reqs))
	for i, r := range reqs {
		op, err := toOp(r)
		if err != nil {
			return nil, err
		}
		ops[i] = op
	}
	return ops, nil
}

func toCmp(c lin.Compare) (clientv3.Cmp, error) {
	relation := map[lin.CompareResult]string{lin.CompareEqual: "=", lin.CompareNotEqual: "!=",
		lin.CompareLess: "<", lin.CompareGreater: ">"}[c.Result]
	if relation == "" {
		return clientv3.Cmp{}, fmt.Errorf("workload: compare result %d", c.Result)
	}
	var cmp clientv3.Cmp
	switch c.Target {
	case lin.CompareModRevision:
		cmp = clientv3.Compare(clientv3.ModRevision(c.Key), relation, c.ModRevision)
	case lin.CompareCreateRevision:
		cmp = clientv3.Compare(clientv3.CreateRevision(c.Key), relation, c.CreateRevision)
	case lin.CompareVersion:
		cmp = clientv3.Compare(clientv3.Version(c.Key), relation, c.Version)
	case lin.CompareValue:
		cmp = clientv3.Compare(clientv3.Value(c.Key), relation, c.Value)
	default:
		return clientv3.Cmp{}, fmt.Errorf("workload: compare target %d", c.Target)
	}
	if c.End != "" {
		cmp = cmp.WithRange(c.End)
	}
	return cmp, nil
}

// txnResult converts one result of a txn's branch; puts carry nothing the
// model checks.
func txnResult(op lin.Request, r *pb.ResponseOp) lin.Response {
	switch op.Kind {
	case lin.OpGet:
		if rr := r.GetResponseRange(); rr != nil {
			return getResponse((*clientv3.GetResponse)(rr))
		}
	case lin.OpRange:
		if rr := r.GetResponseRange(); rr != nil {
			return rangeResponse((*clientv3.GetResponse)(rr))
		}
	case lin.OpDelete:
		if dr := r.GetResponseDeleteRange(); dr != nil {
			return lin.Response{HeaderRevision: dr.Header.GetRevision(), Deleted: dr.Deleted}
		}
	}
	return lin.Response{}
}

func getResponse(resp *clientv3.GetResponse) lin.Response {
	out := lin.Response{HeaderRevision: resp.Header.GetRevision()}
	if len(resp.Kvs) > 0 {
		out.Found, out.KV = true, kv(resp.Kvs[0])
	}
	return out
}

func rangeResponse(resp *clientv3.GetResponse) lin.Response {
	out := lin.Response{HeaderRevision: resp.Header.GetRevision(), Count: resp.Count, More: resp.More}
	for _, k := range resp.Kvs {
		out.KVs = append(out.KVs, kv(k))
	}
	return out
}
