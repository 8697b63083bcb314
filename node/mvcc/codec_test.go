package mvcc

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// TestAppendPutMatchesProto pins the hand-written encoding of a version to
// proto.Marshal's, and the hand-written decoding to proto.Unmarshal's.
func TestAppendPutMatchesProto(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ints := rapid.OneOf(rapid.Int64(), rapid.Int64Range(-2, 300))
		kv := &mvccpb.KeyValue{Key: rapid.SliceOf(rapid.Byte()).Draw(t, "key"),
			CreateRevision: ints.Draw(t, "create"), ModRevision: ints.Draw(t, "mod"),
			Version: ints.Draw(t, "version"), Value: rapid.SliceOf(rapid.Byte()).Draw(t, "value"),
			Lease: ints.Draw(t, "lease")}
		stored := proto.Clone(kv).(*mvccpb.KeyValue)
		stored.Key = nil
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(stored)
		if err != nil {
			t.Fatal(err)
		}
		got := appendPut(nil, kv)
		if got[0] != kindPut || !bytes.Equal(got[1:], want) {
			t.Fatalf("appendPut %x, proto %x", got, want)
		}
		if dec := decodeValue(kv.Key, got); !proto.Equal(dec, kv) {
			t.Fatalf("decoded %v, want %v", dec, kv)
		}
		if n := putBytes(kv); n != len(got) {
			t.Fatalf("putBytes %d, appendPut wrote %d", n, len(got))
		}
		wantMeta := versionMeta{exists: true, createRevision: kv.CreateRevision, modRevision: kv.ModRevision, version: kv.Version, lease: kv.Lease}
		if meta := decodeMeta(kv.Key, got); meta != wantMeta {
			t.Fatalf("decodeMeta %+v, want %+v", meta, wantMeta)
		}
	})
}

// TestDecodeMetaFallsBack: metadata of an encoding that appendPut does not
// write (an unknown field, fields out of order) comes from the full decode;
// a tombstone is a key that does not exist.
func TestDecodeMetaFallsBack(t *testing.T) {
	data, err := proto.Marshal(&mvccpb.KeyValue{Key: []byte("stored"), CreateRevision: 2, Version: 5, Lease: 9, Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := scanMeta(data); ok {
		t.Fatal("scanMeta accepted a value with a key field")
	}
	want := versionMeta{exists: true, createRevision: 2, version: 5, lease: 9}
	if meta := decodeMeta([]byte("k"), append([]byte{kindPut}, data...)); meta != want {
		t.Fatalf("decodeMeta %+v, want %+v", meta, want)
	}
	if meta := decodeMeta([]byte("k"), []byte{kindTombstone}); meta.exists {
		t.Fatalf("tombstone decoded as %+v", meta)
	}
}

// TestDecodeValueFallsBack checks that a value with a field appendPut
// does not write still decodes, through proto.Unmarshal.
func TestDecodeValueFallsBack(t *testing.T) {
	data, err := proto.Marshal(&mvccpb.KeyValue{Key: []byte("stored"), ModRevision: 3, Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	kv := decodeValue([]byte("k"), append([]byte{kindPut}, data...))
	if kv.ModRevision != 3 || string(kv.Value) != "v" || string(kv.Key) != "k" {
		t.Fatalf("decoded %v", kv)
	}
}

// TestWriterReadsOwnWrites checks that the Writer's one iterator sees the
// writes of earlier requests and of the request itself.
func TestWriterReadsOwnWrites(t *testing.T) {
	h := newHarness(t)
	h.put("a", "0")
	h.write(func(w *Writer) {
		for i, v := range []string{"1", "2", "3"} {
			resp, err := w.Put(&pb.PutRequest{Key: []byte("a"), Value: []byte(v), PrevKv: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"0", "1", "2"}[i]; string(resp.PrevKv.Value) != want {
				t.Fatalf("put %d: prev %q, want %q", i, resp.PrevKv.Value, want)
			}
		}
		resp, err := w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("4")}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if n := resp.Responses[0].GetResponseDeleteRange().Deleted; n != 1 {
			t.Fatalf("deleted %d", n)
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) != 0 {
			t.Fatalf("deleted key still read: %v", kvs)
		}
		if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "4" {
			t.Fatalf("txn's own put not read: %v", kvs)
		}
	})
}

// TestWriterClose checks that a closed Writer leaves nothing open: the
// store takes a new Writer and the DB closes without leaked iterators.
func TestWriterClose(t *testing.T) {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, s: s}
	b := h.db.NewIndexedBatch()
	w := h.s.NewWriter(b)
	if _, err := w.Put(&pb.PutRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	h.put("b", "1")
	if rev := h.s.Rev(); rev != 2 {
		t.Fatalf("rev %d after a discarded Writer and one put, want 2", rev)
	}
	b = h.db.NewIndexedBatch()
	w = h.s.NewWriter(b)
	if _, err := w.Put(&pb.PutRequest{Key: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	w.Publish()
	w.Close()
	if err := h.db.Close(); err != nil {
		t.Fatalf("close db: %v", err)
	}
}
