package sim

import (
	"fmt"

	lin "github.com/cairn-db/cairn/linearizability"
)

// Serializable reads: etcd serves a range with serializable set, and a
// read-only txn whose ranges all are, from the member's local state without
// a ReadIndex barrier (node.Node.ServeLocal, what etcdapi calls on the
// gRPC goroutine). Such a read may be stale, so it stays out of the
// linearizable history; instead every one is checked at the end against
// the committed history (lin.CheckSerializableRead): what it returned must
// be exactly the keyspace at the revision its header reports, and that
// revision must not be ahead of what its member had applied when it
// answered.

// serializableRead is one acknowledged serializable read, kept for the
// end-of-run check.
type serializableRead struct {
	client int
	member string
	req    lin.Request
	resp   lin.Response
	// appliedRev is the member's published revision right after it served
	// the read: the header revision may not be above it.
	appliedRev int64
	atMicros   int64
}

// readSerializable serves req on m as etcdapi does: ServeLocal, on the
// caller's goroutine, at once. A member frozen by a pause cannot answer:
// the client gives up after the request timeout, as a gRPC client would,
// and nothing is recorded.
func (c *client) readSerializable(m *member, req lin.Request) {
	w := c.w
	w.trace.printf("c%d → %s %s", c.id, m.name(), describeRequest(req))
	if m.paused {
		w.sched.after(requestTimeoutMicros, func() {
			w.trace.printf("c%d ? timeout (paused)", c.id)
			c.schedule()
		})
		return
	}
	id, local := startOn(m, toNodeRequest(req))
	if local == nil {
		panic(fmt.Sprintf("sim: serializable read %s started on the loop as request %d", describeRequest(req), id))
	}
	defer c.schedule()
	resp, err := (&pendingOp{req: req}).response(*local)
	if err != nil {
		w.trace.printf("c%d ✗ %v", c.id, err)
		return
	}
	w.trace.printf("c%d ← %s", c.id, lin.DescribeOperation(req, resp))
	c.remember(req, resp)
	w.serializableReads = append(w.serializableReads, serializableRead{
		client: c.id, member: m.name(), req: req, resp: resp,
		appliedRev: m.node.Store().Rev(), atMicros: w.sched.nowMicros,
	})
}

// checkSerializableReads checks every acknowledged serializable read against
// the committed history (the log of what members applied, watch.go).
func (w *world) checkSerializableReads(committed []lin.Event) {
	for _, r := range w.serializableReads {
		if err := checkSerializableRead(committed, r); err != nil {
			w.failAs(FailSerializableRead, "c%d on %s (t=%dms): %v", r.client, r.member, r.atMicros/millisecond, err)
			return
		}
	}
	w.trace.printf("serializable reads: %d ok", len(w.serializableReads))
}

func checkSerializableRead(committed []lin.Event, r serializableRead) error {
	if r.resp.HeaderRevision > r.appliedRev {
		return fmt.Errorf("header revision %d is ahead of the member's applied revision %d", r.resp.HeaderRevision, r.appliedRev)
	}
	return lin.CheckSerializableRead(1, committed, r.req, r.resp)
}
