package sim

import (
	"github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
)

// client issues one operation at a time to a random live member, waits for
// it with a timeout, and records it. An operation whose outcome it cannot
// know (timeout, crash of the member) is recorded as unknown, never guessed.
type client struct {
	w       *world
	id      int
	counter int
	// seenModRevision is the mod_revision of each key as this client last
	// read it; its compare-and-swap txns guess with it.
	seenModRevision map[string]int64
}

// pendingOp is an operation in flight.
type pendingOp struct {
	c   *client
	rec linearizability.OpID
	req linearizability.Request
	// recorded is false for operations left out of the history.
	recorded bool
	// stream is set for a range sent as a RangeStream (rangestream.go).
	stream bool
	done   bool
	acked  bool
}

// keys is the simulated keyspace: few keys, so operations contend.
var keys = []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}

const keyPrefix = "k"

func (c *client) schedule() {
	think := 10*millisecond + c.w.rng.Int64N(140*millisecond)
	c.w.sched.after(think, c.issue)
}

func (c *client) issue() {
	if c.w.sched.nowMicros >= c.w.opts.DurationMicros || c.w.failed() {
		return
	}
	m := c.w.randomLiveMember()
	if m == nil {
		c.schedule()
		return
	}
	c.counter++
	req := c.w.workload.next(c)
	if req.Serializable {
		c.readSerializable(m, req)
		return
	}
	c.start(m, req)
}

func (c *client) start(m *member, req linearizability.Request) {
	op := &pendingOp{c: c, req: req, recorded: true}
	op.rec = c.w.rec.Invoke(c.id, req)
	c.w.inflight++
	c.w.trace.printf("c%d → %s %s", c.id, m.name(), describeRequest(req))
	nreq := toNodeRequest(req)
	if op.stream = c.streamed(req); op.stream {
		nreq = node.Request{RangeStream: nreq.Range}
	}
	id, local := startOn(m, nreq)
	if local != nil {
		op.complete(m, *local)
		return
	}
	m.waiting[id] = op
	epoch := m.epoch
	c.w.sched.after(requestTimeoutMicros, func() {
		if !op.done {
			c.w.trace.printf("c%d ? timeout", c.id)
			if m.epoch == epoch && m.waiting != nil {
				delete(m.waiting, id)
			}
			op.unknown()
		}
	})
	m.kick()
}

func (op *pendingOp) finish() bool {
	if op.done {
		return false
	}
	op.done = true
	op.c.w.inflight--
	op.c.schedule()
	return true
}

func (op *pendingOp) unknown() {
	if op.finish() {
		op.c.w.unknown++
		op.c.w.rec.Unknown(op.rec)
	}
}

func (op *pendingOp) fail() {
	if op.finish() {
		op.c.w.failedOps++
		op.c.w.rec.Fail(op.rec)
	}
}

func (op *pendingOp) complete(m *member, c node.Completion) {
	if op.done {
		return
	}
	if op.stream {
		op.readStream(m, c)
		return
	}
	resp, err := op.response(c)
	op.conclude(m, resp, err)
}

// conclude ends the operation with the response the client saw, or its
// error.
func (op *pendingOp) conclude(m *member, resp linearizability.Response, err error) {
	if err != nil {
		op.c.w.trace.printf("c%d ✗ %v", op.c.id, err)
		op.fail()
		op.c.w.refused(m, err)
		return
	}
	op.c.w.trace.printf("c%d ← %s", op.c.id, linearizability.DescribeOperation(op.req, resp))
	op.c.remember(op.req, resp)
	if op.finish() {
		op.acked = true
		op.c.w.acknowledged++
		op.c.w.rec.Return(op.rec, resp)
		op.c.w.rememberPuts(op.req, resp)
	}
}

// response turns a completion into what the client saw: a read is served
// from the member's keyspace now, as the server serves it.
func (op *pendingOp) response(c node.Completion) (linearizability.Response, error) {
	resp, err := c.Result()
	if err != nil {
		return linearizability.Response{}, err
	}
	return fromResponse(op.req, resp)
}

// remember keeps the mod_revision of every key a get (alone or in the
// branch of a txn that ran) returned.
func (c *client) remember(req linearizability.Request, resp linearizability.Response) {
	switch req.Kind {
	case linearizability.OpGet:
		c.seenModRevision[req.Key] = resp.KV.ModRevision
	case linearizability.OpTxn:
		branch := req.Else
		if resp.Succeeded {
			branch = req.Then
		}
		for i, op := range branch {
			if op.Kind == linearizability.OpGet && i < len(resp.Results) {
				c.seenModRevision[op.Key] = resp.Results[i].KV.ModRevision
			}
		}
	}
}
