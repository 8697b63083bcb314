package node

import (
	"bytes"
	"io"
	"math"

	"github.com/cairn-db/cairn/node/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// RangeStream (etcd 3.7's KV.RangeStream) answers a range as a stream of
// chunks, so a client lists millions of keys without either side holding
// them all. etcd 3.7.3's semantics, which this file follows:
//
//   - The request is a RangeRequest; custom sort orders and revision
//     filters are refused with codes.Unimplemented. A learner refuses it
//     (it refuses every stream but Snapshot).
//   - A linearizable stream waits behind one ReadIndex barrier, like a
//     range; a serializable one reads at once.
//   - Every chunk is read at one revision: the one the request names, or
//     else the latest the first chunk saw. Each chunk is a fresh range at
//     that revision, so a compaction past it while the stream runs fails
//     the next chunk with "required revision has been compacted".
//   - The first chunk's limit is 10 keys (Config.RangeStreamFirstChunkKeys);
//     after each chunk, the next limit doubles if the chunk's encoded
//     range response was under half of --max-request-bytes and halves if
//     over twice it, and never exceeds the keys the request's limit still
//     allows.
//   - Only the last chunk has a header (revision: the latest revision when
//     the first chunk was read), more and count (the keys in the whole
//     range at the read revision); the others carry only kvs.
//   - count_only is answered in one chunk with the header and the count.

// defaultRangeStreamFirstChunkKeys is etcd 3.7's first chunk limit.
const defaultRangeStreamFirstChunkKeys = 10

// checkRangeStream validates a RangeStream request as etcd's gRPC layer
// does: a range's checks, then the orders and filters a stream of chunks
// cannot honour.
func checkRangeStream(r *pb.RangeRequest) error {
	if err := mvcc.CheckRange(r); err != nil {
		return err
	}
	order, target := r.GetSortOrder(), r.GetSortTarget()
	if order != pb.RangeRequest_NONE && (target != pb.RangeRequest_KEY || order != pb.RangeRequest_ASCEND) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.GetMinModRevision() != 0 || r.GetMaxModRevision() != 0 ||
		r.GetMinCreateRevision() != 0 || r.GetMaxCreateRevision() != 0 {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	return nil
}

// RangeStream hands out the chunks of one admitted RangeStream request,
// one per Next call, each read from the member's published keyspace when
// it is asked for: nothing is read ahead, so the caller's pace (gRPC's
// flow control, in the server) bounds the memory a stream holds to one
// chunk. Not safe for concurrent use; distinct streams are independent.
type RangeStream struct {
	n *Node
	// req is the next chunk's range: Key advances past each chunk, Limit
	// is the chunk's limit, Revision is pinned after the first chunk.
	req *pb.RangeRequest
	// totalLimit is the request's limit (math.MaxInt64 for none).
	totalLimit int64
	// sentKeys counts the keys of the chunks handed out so far.
	sentKeys int64
	// headerRev is the revision the last chunk's header reports; valid
	// once started.
	headerRev int64
	started   bool
	done      bool
}

// Stream returns the chunks of a RangeStream request's completion, or the
// request's error. It panics on the completion of any other request.
func (c Completion) Stream() (*RangeStream, error) {
	if c.Err != nil {
		return nil, c.Err
	}
	if c.read == nil || c.read.req.RangeStream == nil {
		panic("node: Stream of a completion that is not a RangeStream's")
	}
	n := c.read.n
	// The read permission is checked once, when the stream starts, as
	// etcd checks a range: later chunks read the revision it pinned.
	st := n.authView.Load()
	info, err := n.requestInfo(st, c.read.req)
	if err == nil {
		err = n.checkRead(st, info, c.read.req)
	}
	if err != nil {
		return nil, err
	}
	n.metrics.ranges.Add(1)
	req := proto.Clone(c.read.req.RangeStream).(*pb.RangeRequest)
	totalLimit := req.GetLimit()
	if totalLimit == 0 {
		totalLimit = math.MaxInt64
	}
	// A negative limit passes through as etcd's does: the first chunk
	// reads the whole range.
	req.Limit = min(n.cfg.RangeStreamFirstChunkKeys, totalLimit)
	return &RangeStream{n: n, req: req, totalLimit: totalLimit}, nil
}

// Next returns the next chunk, or io.EOF after the last one. An error
// ends the stream: later calls return io.EOF.
func (s *RangeStream) Next() (*pb.RangeStreamResponse, error) {
	if s.done {
		return nil, io.EOF
	}
	var out *pb.RangeResponse
	var err error
	if s.req.GetCountOnly() {
		s.done = true
		out, err = s.countOnly()
	} else {
		out, err = s.nextChunk()
	}
	if err != nil {
		s.done = true
		return nil, err
	}
	return &pb.RangeStreamResponse{RangeResponse: out}, nil
}

// countOnly answers a count_only stream with one chunk: the header and
// the count.
func (s *RangeStream) countOnly() (*pb.RangeResponse, error) {
	resp, err := s.n.view.Range(s.req)
	if err != nil {
		return nil, err
	}
	return &pb.RangeResponse{Header: s.header(resp.GetHeader().GetRevision()), Count: resp.GetCount()}, nil
}

// nextChunk reads one chunk at the stream's revision and moves past it.
func (s *RangeStream) nextChunk() (*pb.RangeResponse, error) {
	resp, err := s.n.view.RangeChunk(s.req)
	if err != nil {
		return nil, err
	}
	if !s.started {
		s.started = true
		s.headerRev = resp.GetHeader().GetRevision()
		if s.req.GetRevision() == 0 && !s.n.cfg.Knobs.RangeStreamUnpinned {
			s.req.Revision = s.headerRev
		}
	}
	kvs := resp.GetKvs()
	s.sentKeys += int64(len(kvs))
	out := &pb.RangeResponse{Kvs: kvs}
	if !resp.GetMore() || s.sentKeys == s.totalLimit {
		s.done = true
		return s.last(out, resp.GetMore(), kvs)
	}
	// The next chunk starts after the chunk's last key. Like etcd, "last"
	// is the chunk's last as sent: a sort target other than the key with
	// no order sorts each chunk by that target, ascending, and etcd
	// continues after whichever key ends up last.
	s.req.Key = nextKeyAfter(kvs[len(kvs)-1].GetKey())
	s.req.Limit = nextChunkLimit(s.req.GetLimit(), proto.Size(resp), s.n.cfg.Limits.MaxRequestBytes)
	s.req.Limit = min(s.req.GetLimit(), s.totalLimit-s.sentKeys)
	return out, nil
}

// last completes the stream's last chunk: its header, more, and the count
// of the whole range (the keys sent, plus, when the request's limit cut
// the range, the keys after the last one).
func (s *RangeStream) last(out *pb.RangeResponse, more bool, kvs []*mvccpb.KeyValue) (*pb.RangeResponse, error) {
	out.Header, out.More, out.Count = s.header(s.headerRev), more, s.sentKeys
	if !more {
		return out, nil
	}
	rest, err := s.n.view.Range(&pb.RangeRequest{Key: nextKeyAfter(kvs[len(kvs)-1].GetKey()),
		RangeEnd: s.req.GetRangeEnd(), Revision: s.req.GetRevision(), CountOnly: true})
	if err != nil {
		return nil, err
	}
	out.Count += rest.GetCount()
	return out, nil
}

// header is the last chunk's header at revision rev.
func (s *RangeStream) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.n.cfg.ClusterID, MemberId: s.n.cfg.ID, Revision: rev,
		RaftTerm: s.n.status.load().Term}
}

// nextKeyAfter is the smallest key after key.
func nextKeyAfter(key []byte) []byte {
	return append(bytes.Clone(key), 0)
}

// nextChunkLimit is the limit of the chunk after one of lastLimit keys
// whose range response encoded to lastBytes: doubled below half of
// targetBytes, halved above twice it, never below 1 (0 would read the
// whole range). The dead band between keeps a chunk near the boundary
// from flapping.
func nextChunkLimit(lastLimit int64, lastBytes, targetBytes int) int64 {
	switch {
	case lastBytes < targetBytes/2:
		lastLimit *= 2
	case lastBytes > 2*targetBytes:
		lastLimit /= 2
	}
	return max(lastLimit, 1)
}

// RangeChunk serves one chunk of a RangeStream (mvcc.Store.RangeChunk).
func (v *StoreView) RangeChunk(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return read(v, func(s *mvcc.Store) (*pb.RangeResponse, error) { return s.RangeChunk(req) })
}
