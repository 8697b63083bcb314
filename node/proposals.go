package node

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// proposalsBytesMax bounds the encoded bytes of the proposals a leader
// keeps decoded; past it the cache is emptied and apply decodes.
const proposalsBytesMax = 64 << 20

// proposalCache keeps the decoded form of a member's own proposals until
// they apply, so the member that encoded a request never decodes it again:
// the leader's, and a follower's, which raft forwards to the leader and
// which come back in entries with the same bytes. A proposal that never
// applies (raft dropped it, or its forwarded message was lost) stays until
// the next change of leadership or role empties the cache, which is when
// such losses happen, or until proposalsBytesMax does.
// An entry is matched to its request by the request ID in its header, read
// from the encoded bytes without decoding the rest. IDs are unique across
// the cluster (ids.go), and raft appends a proposal at most once, so a
// match is the very request that was encoded.
//
// Invariant: bytes is the sum of the cached proposals' encoded sizes.
type proposalCache struct {
	byID  map[uint64]cachedProposal
	bytes int
}

type cachedProposal struct {
	req  *pb.InternalRaftRequest
	size int
}

func (c *proposalCache) remember(id uint64, size int, req *pb.InternalRaftRequest) {
	if c.bytes+size > proposalsBytesMax {
		c.forget()
	}
	if c.byID == nil {
		c.byID = map[uint64]cachedProposal{}
	}
	c.byID[id] = cachedProposal{req: req, size: size}
	c.bytes += size
}

// take returns, and forgets, the decoded request of an entry's data; nil
// if it is not a proposal the cache holds.
func (c *proposalCache) take(data []byte) *pb.InternalRaftRequest {
	if len(c.byID) == 0 {
		return nil
	}
	id, ok := requestID(data)
	if !ok {
		return nil
	}
	p, ok := c.byID[id]
	if !ok {
		return nil
	}
	delete(c.byID, id)
	c.bytes -= p.size
	return p.req
}

// forget drops every cached proposal: on a change of leadership, when the
// proposals may never apply here.
func (c *proposalCache) forget() {
	clear(c.byID)
	c.bytes = 0
}

// Field numbers of the request ID in an encoded InternalRaftRequest, taken
// from the generated descriptors.
var (
	headerField    = (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor().Fields().ByName("header").Number()
	requestIDField = (&pb.RequestHeader{}).ProtoReflect().Descriptor().Fields().ByName("ID").Number()
)

// requestID reads the request ID of an encoded InternalRaftRequest,
// skipping its other fields without decoding them.
func requestID(data []byte) (uint64, bool) {
	header, ok := findField(data, headerField, protowire.BytesType)
	if !ok {
		return 0, false
	}
	id, ok := findField(header, requestIDField, protowire.VarintType)
	if !ok {
		return 0, false
	}
	v, n := protowire.ConsumeVarint(id)
	return v, n > 0
}

// findField returns the encoded value of the last occurrence of field num
// (of wire type typ) in a message: for bytes the contents, for a varint
// its encoding.
func findField(b []byte, num protowire.Number, typ protowire.Type) ([]byte, bool) {
	var found []byte
	ok := false
	for len(b) > 0 {
		n, t, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			return nil, false
		}
		b = b[tagLen:]
		valLen := protowire.ConsumeFieldValue(n, t, b)
		if valLen < 0 {
			return nil, false
		}
		if n == num && t == typ {
			found, ok = b[:valLen], true
			if typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(b)
				found = v
			}
		}
		b = b[valLen:]
	}
	return found, ok
}
