package node

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// wirePut is the Request a driver makes of the encoded put b.
func wirePut(b []byte) (Request, error) {
	w := NewWirePut(len(b))
	copy(w.Bytes(), b)
	return w.Request()
}

// encodedPut draws the bytes a client might send as a PutRequest: a
// canonical encoding, or one with fields repeated, reordered, of the wrong
// wire type, unknown, or cut short, or plain noise.
func encodedPut(t *rapid.T) []byte {
	put := &pb.PutRequest{
		Key:         rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "key"),
		Value:       rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "value"),
		Lease:       rapid.Int64().Draw(t, "lease"),
		PrevKv:      rapid.Bool().Draw(t, "prevKV"),
		IgnoreValue: rapid.Bool().Draw(t, "ignoreValue"),
		IgnoreLease: rapid.Bool().Draw(t, "ignoreLease"),
	}
	b, err := proto.Marshal(put)
	if err != nil {
		t.Fatal(err)
	}
	for range rapid.IntRange(0, 4).Draw(t, "extra fields") {
		num := protowire.Number(rapid.IntRange(1, 9).Draw(t, "field"))
		extra := protowire.AppendTag(nil, num, protowire.Type(rapid.SampledFrom([]int{0, 1, 2, 5}).Draw(t, "wire type")))
		switch protowire.Type(extra[len(extra)-1] & 7) {
		case protowire.VarintType:
			extra = protowire.AppendVarint(extra, rapid.Uint64().Draw(t, "varint"))
		case protowire.Fixed64Type:
			extra = protowire.AppendFixed64(extra, rapid.Uint64().Draw(t, "fixed64"))
		case protowire.Fixed32Type:
			extra = protowire.AppendFixed32(extra, rapid.Uint32().Draw(t, "fixed32"))
		default:
			extra = protowire.AppendBytes(extra, rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "bytes"))
		}
		if rapid.Bool().Draw(t, "in front") {
			b = append(extra, b...)
		} else {
			b = append(b, extra...)
		}
	}
	switch rapid.IntRange(0, 4).Draw(t, "damage") {
	case 3:
		// An explicit empty key or value decodes to nil, not to empty.
		b = protowire.AppendBytes(protowire.AppendTag(b, protowire.Number(rapid.IntRange(1, 2).Draw(t, "empty field")), protowire.BytesType), nil)
	case 1:
		b = b[:rapid.IntRange(0, len(b)).Draw(t, "cut at")]
	case 2:
		b = rapid.SliceOfN(rapid.Byte(), 0, 32).Draw(t, "noise")
	}
	return b
}

// TestWirePutDecodesAsProtoUnmarshal: whatever the bytes, a WirePut's
// request is what proto.Unmarshal makes of them (nil and empty bytes
// fields alike), or its error is proto.Unmarshal's.
func TestWirePutDecodesAsProtoUnmarshal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := encodedPut(t)
		want := &pb.PutRequest{}
		wantErr := proto.Unmarshal(b, want)
		got, err := wirePut(b)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("error %v, proto.Unmarshal's %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if !proto.Equal(got.Put, want) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", got.Put, want)
		}
		if (got.Put.Key == nil) != (want.Key == nil) || (got.Put.Value == nil) != (want.Value == nil) {
			t.Fatalf("nil key or value differs: %q/%q against %q/%q", got.Put.Key, got.Put.Value, want.Key, want.Value)
		}
	})
}

// TestWirePutEntryIsTheEncodedRequest: the raft entry built around a
// put's wire bytes decodes to the InternalRaftRequest the encoding path
// proposes, header and all, and the decoded value shares the entry's
// bytes instead of copying them.
func TestWirePutEntryIsTheEncodedRequest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		put := &pb.PutRequest{
			Key:   rapid.SliceOfN(rapid.Byte(), 1, 8).Draw(t, "key"),
			Value: rapid.SliceOfN(rapid.Byte(), 1, 4096).Draw(t, "value"),
			Lease: rapid.Int64().Draw(t, "lease"),
		}
		header := &pb.RequestHeader{
			ID:           rapid.Uint64().Draw(t, "id"),
			Username:     rapid.StringN(0, 80, -1).Draw(t, "user"),
			AuthRevision: rapid.Uint64().Draw(t, "auth revision"),
		}
		b, err := proto.Marshal(put)
		if err != nil {
			t.Fatal(err)
		}
		req, err := wirePut(b)
		if err != nil {
			t.Fatal(err)
		}
		if !aliases(req.wire.data, req.Put.Value) {
			t.Fatalf("decoded value is a copy, not the entry's bytes")
		}
		entry, err := req.wire.take(req.Put, header)
		if err != nil {
			t.Fatal(err)
		}
		got := &pb.InternalRaftRequest{}
		if err := proto.Unmarshal(entry, got); err != nil {
			t.Fatal(err)
		}
		if want := (&pb.InternalRaftRequest{Header: header, Put: put}); !proto.Equal(got, want) {
			t.Fatalf("entry decodes to %v, want %v", got, want)
		}
		if again, _ := req.wire.take(req.Put, header); again != nil {
			t.Fatalf("a wire entry was taken twice")
		}
	})
}

// aliases reports whether v lies within b's memory.
func aliases(b, v []byte) bool {
	for i := range b {
		if &b[i] == &v[0] {
			return len(b)-i >= len(v)
		}
	}
	return false
}

// TestWirePutAppliesOnEveryMember: a put proposed from its wire bytes, by
// the leader or by a follower, applies on every member; a Request started
// twice is encoded afresh the second time and both writes apply.
func TestWirePutAppliesOnEveryMember(t *testing.T) {
	for _, proposer := range []string{"leader", "follower"} {
		t.Run(proposer, func(t *testing.T) {
			h := newHarness(t, []uint64{1, 2, 3}, nil)
			id := h.inRole(proposer)
			b, err := proto.Marshal(&pb.PutRequest{Key: []byte("a"), Value: bytes.Repeat([]byte("v"), 1000), PrevKv: true})
			if err != nil {
				t.Fatal(err)
			}
			req, err := wirePut(b)
			if err != nil {
				t.Fatal(err)
			}
			first := h.node(id).Start(req)
			second := h.node(id).Start(req)
			h.settle()
			r1, err := h.mustComplete(id, first).Result()
			if err != nil {
				t.Fatal(err)
			}
			r2, err := h.mustComplete(id, second).Result()
			if err != nil {
				t.Fatal(err)
			}
			prev := r2.(*pb.PutResponse).GetPrevKv()
			if rev := r1.(*pb.PutResponse).GetHeader().GetRevision(); prev.GetModRevision() != rev || prev.GetVersion() != 1 {
				t.Fatalf("second put's previous version %v, want the first's (revision %d)", prev, rev)
			}
			for _, m := range h.ids {
				if v, _ := h.get(m, "a"); v != string(bytes.Repeat([]byte("v"), 1000)) {
					t.Fatalf("member %d: a=%q", m, v)
				}
			}
		})
	}
}

// TestWirePutChangedIsEncodedAfresh: a put changed after it was decoded
// no longer matches its wire bytes, so its entry is not taken from them.
func TestWirePutChangedIsEncodedAfresh(t *testing.T) {
	header := &pb.RequestHeader{ID: 1}
	for name, change := range map[string]func(p *pb.PutRequest){
		"lease":        func(p *pb.PutRequest) { p.Lease = 7 },
		"key":          func(p *pb.PutRequest) { p.Key[0] = 'b' },
		"value":        func(p *pb.PutRequest) { p.Value = []byte("other") },
		"prev kv":      func(p *pb.PutRequest) { p.PrevKv = true },
		"ignore value": func(p *pb.PutRequest) { p.IgnoreValue = true },
		"ignore lease": func(p *pb.PutRequest) { p.IgnoreLease = true },
	} {
		b, err := proto.Marshal(&pb.PutRequest{Key: []byte("a"), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		req, err := wirePut(b)
		if err != nil {
			t.Fatal(err)
		}
		change(req.Put)
		if entry, err := req.wire.take(req.Put, header); entry != nil || err != nil {
			t.Errorf("%s changed: the wire entry was taken (%v)", name, err)
		}
	}
}
