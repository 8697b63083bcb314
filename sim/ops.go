package sim

import (
	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
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
	w.recordedOpAs(node.Credentials{}, clientID, m, req, leaseID, func(resp lin.Response, ok bool, _ error) { done(resp, ok) })
}

// recordedOpAs is recordedOp with the client's credentials; done also
// receives the request's error.
func (w *world) recordedOpAs(creds node.Credentials, clientID int, m *member, req lin.Request, leaseID int64, done func(lin.Response, bool, error)) {
	op := w.rec.Invoke(clientID, req)
	w.inflight++
	w.trace.printf("c%d → %s %s", clientID, m.name(), describeRequest(req))
	finish := func(resp lin.Response, outcome string, err error) {
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
		done(resp, outcome == "ok", err)
	}
	var nreq node.Request
	if req.Kind == lin.OpPut {
		put := toPut(req)
		put.Lease = leaseID // before encoding: the entry is the encoded put
		nreq = wirePut(put)
	} else {
		nreq = toNodeRequest(req)
	}
	nreq.Credentials = creds
	outcome := func(c *node.Completion) {
		if c == nil {
			finish(lin.Response{}, "timeout or crash", nil)
			return
		}
		resp, err := c.Result()
		if err == nil {
			var r lin.Response
			if r, err = fromResponse(req, resp); err == nil {
				finish(r, "ok", nil)
				return
			}
		}
		w.trace.printf("c%d ✗ %v", clientID, err)
		finish(lin.Response{}, "failed", err)
	}
	id, local := startOn(m, nreq)
	if local != nil {
		outcome(local)
		return
	}
	w.await(m, id, func(_ *member, c *node.Completion) { outcome(c) })
}

// startOn starts a client request on m as the server's driver does: a
// request the core serves at once (a serializable read) completes here,
// any other starts on the member's loop and completes later under the
// returned ID.
func startOn(m *member, req node.Request) (uint64, *node.Completion) {
	req = m.w.withRoot(req)
	if c, ok := m.node.ServeLocal(req); ok {
		return 0, &c
	}
	return m.node.Start(req), nil
}
