package sim

import (
	"errors"
	"fmt"
	"io"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Streamed ranges: every other linearizable prefix range a client sends
// goes as a RangeStream (etcd 3.7's KV.RangeStream), which the core answers
// in chunks (node.RangeStream). The client reads one chunk, waits
// streamChunkGapMicros of virtual time, as a slow gRPC client would, then
// reads the next, so writes, compactions, snapshot installs and crashes
// fall between the chunks; the chunks, put together, are recorded as the
// range's response and checked by porcupine like any range: keys of
// several revisions under one header make the history non-linearizable.
// The framing is checked as the chunks arrive (only the last carries a
// header, more and count).

// streamChunkGapMicros is the virtual time between two chunk reads: long
// enough for writes of other clients to land between them.
const streamChunkGapMicros = 15 * millisecond

// streamChunksMax bounds the chunks one streamed range may take; the
// simulated keyspace takes a few.
const streamChunksMax = 64

// errStreamBroken fails a stream whose member crashed between two chunks,
// as the client of a killed process sees its stream end.
var errStreamBroken = errors.New("sim: range stream broken by a crash of its member")

// streamed reports whether the client sends req as a RangeStream: every
// other linearizable prefix range, chosen by the client's counter rather
// than drawn, so the workload's draws are the same with streams or
// without.
func (c *client) streamed(req lin.Request) bool {
	return req.Kind == lin.OpRange && !req.Serializable && c.counter%2 == 0
}

// rangeStreamFirstChunkKeys is the members' first chunk limit: 1 to 3 keys
// by the seed (not drawn, for the same reason), so the eight simulated keys
// take several chunks (etcd's 10 would take one).
func rangeStreamFirstChunkKeys(seed uint64) int64 { return 1 + int64(seed%3) }

// readStream reads a streamed range's chunks, streamChunkGapMicros apart,
// and concludes the operation with their sum.
func (op *pendingOp) readStream(m *member, c node.Completion) {
	chunks, err := c.Stream()
	if err != nil {
		op.conclude(m, lin.Response{}, err)
		return
	}
	w, epoch := op.c.w, m.epoch
	whole := &pb.RangeResponse{}
	read := 0
	var next func()
	next = func() {
		if op.done {
			return // timed out
		}
		if m.epoch != epoch {
			op.conclude(m, lin.Response{}, errStreamBroken)
			return
		}
		chunk, err := chunks.Next()
		read++
		switch {
		case errors.Is(err, io.EOF):
			err = checkStreamEnd(whole)
		case err == nil && read > streamChunksMax:
			err = fmt.Errorf("more than %d chunks", streamChunksMax)
		case err == nil:
			if err = addChunk(whole, chunk.GetRangeResponse()); err == nil {
				w.sched.after(streamChunkGapMicros, next)
				return
			}
		default:
			op.conclude(m, lin.Response{}, err)
			return
		}
		if err != nil {
			w.failAs(FailRangeStream, "c%d on %s: %s: %v", op.c.id, m.name(), describeRequest(op.req), err)
			op.conclude(m, lin.Response{}, err)
			return
		}
		w.trace.printf("c%d ⇠ %s: %d chunks", op.c.id, m.name(), read-1)
		resp, err := fromResponse(op.req, whole)
		op.conclude(m, resp, err)
	}
	next()
}

// addChunk adds one chunk to the range put together so far, checking
// etcd's framing: a chunk after the last is an error, and only the last
// has a header, more and count.
func addChunk(whole, chunk *pb.RangeResponse) error {
	if whole.GetHeader() != nil {
		return errors.New("a chunk after the one with the header")
	}
	if chunk.GetHeader() == nil && (chunk.GetMore() || chunk.GetCount() != 0) {
		return fmt.Errorf("a chunk without a header has more=%v count=%d", chunk.GetMore(), chunk.GetCount())
	}
	whole.Kvs = append(whole.Kvs, chunk.GetKvs()...)
	whole.Header, whole.More, whole.Count = chunk.GetHeader(), chunk.GetMore(), chunk.GetCount()
	return nil
}

// checkStreamEnd checks a stream that ended cleanly delivered its last
// chunk.
func checkStreamEnd(whole *pb.RangeResponse) error {
	if whole.GetHeader() == nil {
		return errors.New("the stream ended without a chunk with the header")
	}
	return nil
}
