package node

import (
	"cmp"
	"encoding/binary"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"
)

// readBatch is a group of linearizable reads that share one ReadIndex
// round: every read queued between two Process calls rides the same one.
type readBatch struct {
	ctx        uint64
	reads      []pendingRead
	sentAtTick uint64
	// index is the commit index raft confirmed; valid once confirmed.
	index     uint64
	confirmed bool
}

// readQueue tracks reads from ReadIndex to completion.
// Invariant: every batch in sent is unconfirmed; every batch in confirmed
// has confirmed set, and confirmed is ordered by index.
type readQueue struct {
	unsent    []pendingRead
	sent      []*readBatch
	confirmed []*readBatch
	nextCtx   uint64
}

// pendingRead is a request waiting for its ReadIndex barrier: a
// linearizable read, a lease request only the leader serves, or (req
// empty) a bare barrier.
type pendingRead struct {
	id  uint64
	req Request
}

func (q *readQueue) add(r pendingRead) { q.unsent = append(q.unsent, r) }

// hasUnsent reports whether reads wait for a round that can start now.
func (q *readQueue) hasUnsent() bool { return len(q.unsent) > 0 && len(q.sent) == 0 }

func (q *readQueue) hasReleasable(applied uint64) bool {
	return len(q.confirmed) > 0 && q.confirmed[0].index <= applied
}

// resendDue reports whether a round raft has not confirmed is due to be
// asked again.
func (q *readQueue) resendDue(now uint64, retryTicks int) bool {
	for _, b := range q.sent {
		if now-b.sentAtTick >= uint64(retryTicks) {
			return true
		}
	}
	return false
}

// send starts a ReadIndex round for the queued reads, and repeats rounds
// that raft has not confirmed within retryTicks: raft drops read requests
// silently when it knows no leader.
func (q *readQueue) send(rn *raft.RawNode, now uint64, retryTicks int) {
	// One round at a time: reads that arrive while a round is out wait for
	// the next, so a burst of reads costs one quorum round, not one each.
	if len(q.unsent) > 0 && len(q.sent) == 0 {
		q.nextCtx++
		q.sent = append(q.sent, &readBatch{ctx: q.nextCtx, reads: q.unsent, sentAtTick: now})
		q.unsent = nil
		rn.ReadIndex(encodeReadCtx(q.nextCtx))
		return
	}
	for _, b := range q.sent {
		if now-b.sentAtTick >= uint64(retryTicks) {
			b.sentAtTick = now
			rn.ReadIndex(encodeReadCtx(b.ctx))
		}
	}
}

func encodeReadCtx(ctx uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, ctx)
}

// confirm records the read indexes raft has confirmed.
func (q *readQueue) confirm(states []raft.ReadState) {
	for _, rs := range states {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		ctx := binary.BigEndian.Uint64(rs.RequestCtx)
		i := slices.IndexFunc(q.sent, func(b *readBatch) bool { return b.ctx == ctx })
		if i < 0 {
			continue // a repeated round answered twice
		}
		b := q.sent[i]
		q.sent = slices.Delete(q.sent, i, i+1)
		b.index, b.confirmed = rs.Index, true
		q.insertConfirmed(b)
	}
}

func (q *readQueue) insertConfirmed(b *readBatch) {
	i, _ := slices.BinarySearchFunc(q.confirmed, b.index, func(c *readBatch, index uint64) int {
		return cmp.Compare(c.index, index)
	})
	q.confirmed = slices.Insert(q.confirmed, i, b)
}

// release returns the reads whose index has been applied, in order.
func (q *readQueue) release(applied uint64) []pendingRead {
	var released []pendingRead
	n := 0
	for _, b := range q.confirmed {
		if b.index > applied {
			break
		}
		released = append(released, b.reads...)
		n++
	}
	q.confirmed = q.confirmed[n:]
	return released
}

// rangeRequest is the range a deferred read serves: its own, unless the
// planted bug ServeLocalStaleView makes a local read of the latest
// revision read the one before.
func (r *deferredRead) rangeRequest() *pb.RangeRequest {
	if !r.local || !r.n.cfg.Knobs.ServeLocalStaleView || r.req.Range.GetRevision() != 0 {
		return r.req.Range
	}
	rev := r.n.view.Rev()
	if rev <= 1 {
		return r.req.Range
	}
	stale := proto.Clone(r.req.Range).(*pb.RangeRequest)
	stale.Revision = rev - 1
	return stale
}
