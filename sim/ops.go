package sim

import (
	"errors"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
)

// A member's callbacks are requests of the lease workload waiting for their
// completion: c is nil when the member crashed first.
type completionCallback func(m *member, c *node.Completion)

// await registers cb for request id on m and gives up after the request
// timeout: cb runs exactly once, with nil if the member crashed or the
// request timed out.
func (w *world) await(m *member, id uint64, cb completionCallback) {
	done := false
	once := func(m *member, c *node.Completion) {
		if !done {
			done = true
			cb(m, c)
		}
	}
	m.callbacks[id] = once
	epoch := m.epoch
	w.sched.after(requestTimeoutMicros, func() {
		if m.epoch == epoch && m.callbacks != nil {
			delete(m.callbacks, id)
		}
		once(m, nil)
	})
	m.kick()
}

// recordedOp sends a KV request of the lease workload to m and records it
// in the client history like any KV client's: done receives the response
// and whether it was acknowledged. A put carries lease leaseID.
func (w *world) recordedOp(clientID int, m *member, req lin.Request, leaseID int64, done func(lin.Response, bool)) {
	op := w.rec.Invoke(clientID, req)
	w.inflight++
	w.trace.printf("c%d → %s %s", clientID, m.name(), describeRequest(req))
	finish := func(resp lin.Response, outcome string) {
		w.inflight--
		switch outcome {
		case "ok":
			w.acknowledged++
			w.rec.Return(op, resp)
			w.trace.printf("c%d ← %s", clientID, lin.DescribeOperation(req, resp))
		case "failed":
			w.failedOps++
			w.rec.Fail(op)
		default:
			w.unknown++
			w.rec.Unknown(op)
			w.trace.printf("c%d ? %s", clientID, outcome)
		}
		done(resp, outcome == "ok")
	}
	var id uint64
	var err error
	var read *pb.RangeRequest
	if isRead(req) {
		read = toRangeRequest(req)
		id = m.node.ReadIndex()
	} else {
		ir := toInternalRequest(req)
		if ir.Put != nil {
			ir.Put.Lease = leaseID
		}
		id, err = m.node.Propose(ir)
	}
	if errors.Is(err, raft.ErrProposalDropped) {
		w.trace.printf("c%d ✗ %s: no leader", clientID, m.name())
		finish(lin.Response{}, "failed")
		return
	}
	if err != nil {
		w.fail("c%d: propose on %s: %v", clientID, m.name(), err)
		return
	}
	w.await(m, id, func(m *member, c *node.Completion) {
		if c == nil {
			finish(lin.Response{}, "timeout or crash")
			return
		}
		resp, err := completionResponse(m, req, read, c)
		if err != nil {
			w.trace.printf("c%d ✗ %v", clientID, err)
			finish(lin.Response{}, "failed")
			return
		}
		finish(resp, "ok")
	})
}

// completionResponse is what a client sees of a completed request.
func completionResponse(m *member, req lin.Request, read *pb.RangeRequest, c *node.Completion) (lin.Response, error) {
	if c.Err != nil {
		return lin.Response{}, c.Err
	}
	if read != nil {
		rr, err := m.node.Store().Range(read)
		if err != nil {
			return lin.Response{}, err
		}
		return fromRangeResponse(req, rr), nil
	}
	return fromWriteResponse(req, c.Response)
}
