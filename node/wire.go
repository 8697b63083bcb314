package node

import (
	"unsafe"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A put's value is the bulk of what a member copies per write. Decoded
// and encoded again, it is copied out of the received bytes to decode the
// request, then into the encoded InternalRaftRequest (a buffer the runtime
// clears first), before raft copies the entry once more. A WirePut keeps
// the received encoding instead: its buffer is laid out as the start
// of the raft entry (the put field's tag and length, then the client's
// bytes), the decoded request's value points into those bytes, and Start
// appends the request header after them. The entry so built decodes, on
// every member, to the very InternalRaftRequest the encoding path would
// produce: a message's fields may come in any order.

// Field numbers of the entry's parts, from the generated descriptors.
var (
	putField       = (&pb.InternalRaftRequest{}).ProtoReflect().Descriptor().Fields().ByName("put").Number()
	putKeyField    = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("key").Number()
	putValueField  = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("value").Number()
	putLeaseField  = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("lease").Number()
	putPrevKVField = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("prev_kv").Number()
	putIgnoreValue = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("ignore_value").Number()
	putIgnoreLease = (&pb.PutRequest{}).ProtoReflect().Descriptor().Fields().ByName("ignore_lease").Number()
)

// wireHeaderRoom is the spare capacity a WirePut's buffer keeps for the
// request header Start appends: the field's tag and length, a request ID,
// an auth revision and a user name of up to 30 bytes. A longer header is
// appended all the same, by copying the entry once more.
const wireHeaderRoom = 64

// WirePut is a PutRequest as a client encoded it, on its way to becoming a
// raft entry. A driver allocates it for the received message's size, fills
// Bytes, and takes the decoded Request (Request). The bytes must not change
// after that.
type WirePut struct {
	entry []byte // the put field's tag and length, then the encoded request
	at    int    // where the encoded request starts in entry
}

// NewWirePut returns a WirePut for a PutRequest of size encoded bytes.
func NewWirePut(size int) *WirePut {
	at := protowire.SizeTag(putField) + protowire.SizeVarint(uint64(size))
	entry := make([]byte, at, at+size+wireHeaderRoom)
	entry = protowire.AppendTag(entry[:0], putField, protowire.BytesType)
	entry = protowire.AppendVarint(entry, uint64(size))
	return &WirePut{entry: entry[:at+size], at: at}
}

// Bytes is where the encoded PutRequest goes.
func (w *WirePut) Bytes() []byte { return w.entry[w.at:] }

// Request decodes the put. Its error, for bytes that are not a
// PutRequest, is proto.Unmarshal's, as gRPC's own codec would return.
func (w *WirePut) Request() (Request, error) {
	put, ok := decodePutAliased(w.Bytes())
	if !ok {
		// Anything the fast decoder does not take (unknown fields, a
		// field of the wrong wire type, malformed bytes) gets the
		// protobuf library's full treatment, copying the value.
		put = &pb.PutRequest{}
		if err := proto.Unmarshal(w.Bytes(), put); err != nil {
			return Request{}, err
		}
	}
	return Request{Put: put, wire: &wireEntry{data: w.entry, put: put, decoded: fieldsOf(put)}}, nil
}

// wireEntry is the start of a put's raft entry, made from its wire
// encoding. One Start takes it (claimed); a Request started again is
// encoded afresh, because the first entry's bytes may already be in raft.
// So is a put changed since it was decoded (decoded keeps what it was).
type wireEntry struct {
	data    []byte
	put     *pb.PutRequest
	decoded putFields
	claimed bool
}

// putFields are a PutRequest's fields as decoded: the value by identity
// (where its bytes are), the rest by value.
type putFields struct {
	key                              string
	value                            *byte
	valueLen                         int
	lease                            int64
	prevKV, ignoreValue, ignoreLease bool
}

func fieldsOf(p *pb.PutRequest) putFields {
	return putFields{key: string(p.GetKey()), value: unsafe.SliceData(p.GetValue()), valueLen: len(p.GetValue()),
		lease: p.GetLease(), prevKV: p.GetPrevKv(), ignoreValue: p.GetIgnoreValue(), ignoreLease: p.GetIgnoreLease()}
}

// matches reports whether p still has the fields f recorded, without
// allocating (the comparison of the key converts nothing).
func (f *putFields) matches(p *pb.PutRequest) bool {
	v := p.GetValue()
	return string(p.GetKey()) == f.key && unsafe.SliceData(v) == f.value && len(v) == f.valueLen &&
		p.GetLease() == f.lease && p.GetPrevKv() == f.prevKV && p.GetIgnoreValue() == f.ignoreValue &&
		p.GetIgnoreLease() == f.ignoreLease
}

// take returns the entry of put with header appended, or nil if there is
// none (a nil e: the request did not arrive encoded), an earlier Start
// took it, or put is not the request as decoded.
func (e *wireEntry) take(put *pb.PutRequest, header *pb.RequestHeader) ([]byte, error) {
	if e == nil || e.claimed || put != e.put || !e.decoded.matches(put) {
		return nil, nil
	}
	e.claimed = true
	size := proto.Size(header)
	b := protowire.AppendTag(e.data, headerField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, header)
}

// decodePutAliased decodes an encoded PutRequest whose value is left
// pointing into b (its key is copied: caches keep keys, and a key that
// pinned a large entry would hold far more memory than it counts). It
// takes only what it decodes exactly as proto.Unmarshal would: known
// fields of their declared wire type, in any order and repeated (the last
// wins). It reports false for anything else, unknown fields included, so
// that the caller falls back to proto.Unmarshal.
func decodePutAliased(b []byte) (*pb.PutRequest, bool) {
	put := &pb.PutRequest{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == putKeyField || num == putValueField):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			if num == putKeyField {
				put.Key = cloneOrNil(v)
			} else {
				put.Value = v[:len(v):len(v)]
				if len(v) == 0 {
					put.Value = nil
				}
			}
		case typ == protowire.VarintType && (num == putLeaseField || num == putPrevKVField || num == putIgnoreValue || num == putIgnoreLease):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			switch num {
			case putLeaseField:
				put.Lease = int64(v)
			case putPrevKVField:
				put.PrevKv = protowire.DecodeBool(v)
			case putIgnoreValue:
				put.IgnoreValue = protowire.DecodeBool(v)
			default:
				put.IgnoreLease = protowire.DecodeBool(v)
			}
		default:
			return nil, false
		}
	}
	return put, true
}

// cloneOrNil copies b, and is nil for an empty b, as proto.Unmarshal
// leaves a proto3 bytes field.
func cloneOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// Encoded reports whether r carries its wire encoding (a WirePut's) for
// its raft entry to begin with.
func (r Request) Encoded() bool { return r.wire != nil }
