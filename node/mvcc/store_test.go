package mvcc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

type harness struct {
	t  *testing.T
	db *pebble.DB
	s  *Store
}

func newHarness(t *testing.T) *harness {
	return newHarnessWith(t, Options{})
}

// newHarnessWith opens a store with opts; lease 7 exists unless opts says.
func newHarnessWith(t *testing.T, opts Options) *harness {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if opts.LeaseExists == nil {
		opts.LeaseExists = func(id int64) bool { return id == 7 }
	}
	s, err := Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, db: db, s: s}
}

// write applies fn in one Writer, commits and publishes.
func (h *harness) write(fn func(w *Writer)) []*mvccpb.Event {
	h.t.Helper()
	b := h.db.NewIndexedBatch()
	w := h.s.NewWriter(b)
	fn(w)
	if err := w.Flush(); err != nil {
		h.t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		h.t.Fatal(err)
	}
	w.Publish()
	return w.Events()
}

func (h *harness) put(key, value string) int64 {
	h.t.Helper()
	var rev int64
	h.write(func(w *Writer) {
		resp, err := w.Put(&pb.PutRequest{Key: []byte(key), Value: []byte(value)})
		if err != nil {
			h.t.Fatal(err)
		}
		rev = resp.Header.Revision
	})
	return rev
}

func (h *harness) del(key, end string) int64 {
	h.t.Helper()
	var n int64
	h.write(func(w *Writer) {
		resp, err := w.DeleteRange(&pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)})
		if err != nil {
			h.t.Fatal(err)
		}
		n = resp.Deleted
	})
	return n
}

func (h *harness) get(req *pb.RangeRequest) *pb.RangeResponse {
	h.t.Helper()
	resp, err := h.s.Range(req)
	if err != nil {
		h.t.Fatalf("range %v: %v", req, err)
	}
	return resp
}

func keysOf(resp *pb.RangeResponse) string {
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return string(bytes.Join(toBytes(out), []byte(",")))
}

func toBytes(ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

func TestRevisionsAndVersions(t *testing.T) {
	h := newHarness(t)
	if h.s.Rev() != 1 {
		t.Fatalf("empty store at %d, want 1", h.s.Rev())
	}
	steps := []struct {
		do                     func() int64
		rev, create, mod, vers int64 // expected store rev and key "a" after
	}{
		{func() int64 { return h.put("a", "1") }, 2, 2, 2, 1},
		{func() int64 { return h.put("a", "2") }, 3, 2, 3, 2},
		{func() int64 { return h.del("zz", "") }, 3, 2, 3, 2}, // deletes nothing: no new revision
		{func() int64 { return h.del("a", "") }, 4, 0, 0, 0},
		{func() int64 { return h.put("a", "3") }, 5, 5, 5, 1},
	}
	for i, st := range steps {
		st.do()
		if h.s.Rev() != st.rev {
			t.Fatalf("step %d: rev %d, want %d", i, h.s.Rev(), st.rev)
		}
		resp := h.get(&pb.RangeRequest{Key: []byte("a")})
		var c, m, v int64
		if len(resp.Kvs) == 1 {
			c, m, v = resp.Kvs[0].CreateRevision, resp.Kvs[0].ModRevision, resp.Kvs[0].Version
		}
		if c != st.create || m != st.mod || v != st.vers {
			t.Fatalf("step %d: a is %d/%d/%d, want %d/%d/%d", i, c, m, v, st.create, st.mod, st.vers)
		}
	}
	old := h.get(&pb.RangeRequest{Key: []byte("a"), Revision: 3})
	if len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "2" || old.Header.Revision != 5 {
		t.Fatalf("read at 3: %v", old)
	}
}

func TestRangeOptions(t *testing.T) {
	h := newHarness(t)
	for _, kv := range [][2]string{{"b", "3"}, {"a", "9"}, {"c", "1"}, {"d", "5"}} {
		h.put(kv[0], kv[1])
	}
	h.put("b", "4") // b: version 2, mod 6
	cases := []struct {
		name  string
		req   *pb.RangeRequest
		keys  string
		count int64
		more  bool
	}{
		{"single", &pb.RangeRequest{Key: []byte("b")}, "b", 1, false},
		{"missing", &pb.RangeRequest{Key: []byte("bb")}, "", 0, false},
		{"range", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}, "a,b", 2, false},
		{"from key", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte{0}}, "b,c,d", 3, false},
		{"all", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, "a,b,c,d", 4, false},
		{"end before key", &pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("a")}, "", 0, false},
		{"limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2}, "a,b", 4, true},
		{"limit exact", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 4}, "a,b,c,d", 4, false},
		{"count only", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true, Limit: 1}, "", 4, false},
		{"sort value desc", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0},
			SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE}, "a,d,b,c", 4, false},
		{"sort mod asc limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2,
			SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_MOD}, "a,c", 4, true},
		// etcd quirk: order NONE with a non-key target fetches limit+1 keys in key order first.
		{"sort target without order", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 1,
			SortTarget: pb.RangeRequest_MOD}, "a", 4, true},
		{"min mod filter", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 4}, "b,c,d", 4, false},
		{"max create filter limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxCreateRevision: 3, Limit: 1}, "a", 4, true},
		{"historical", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 3}, "a,b", 2, false},
	}
	for _, c := range cases {
		resp := h.get(c.req)
		if keysOf(resp) != c.keys || resp.Count != c.count || resp.More != c.more || resp.Header.Revision != 6 {
			t.Errorf("%s: keys %q count %d more %v rev %d; want %q %d %v 6",
				c.name, keysOf(resp), resp.Count, resp.More, resp.Header.Revision, c.keys, c.count, c.more)
		}
	}
	ko := h.get(&pb.RangeRequest{Key: []byte("a"), KeysOnly: true})
	if len(ko.Kvs) != 1 || ko.Kvs[0].Value != nil || ko.Kvs[0].Version != 1 {
		t.Errorf("keys only: %v", ko)
	}
}

func TestRangeErrors(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("a", "2")
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 3}); err != nil {
			t.Fatal(err)
		}
	})
	cases := []struct {
		req *pb.RangeRequest
		err error
	}{
		{&pb.RangeRequest{Key: []byte("a"), Revision: 4}, rpctypes.ErrGRPCFutureRev},
		{&pb.RangeRequest{Key: []byte("a"), Revision: 2}, rpctypes.ErrGRPCCompacted},
		{&pb.RangeRequest{Key: []byte("a"), Revision: 3}, nil},
		{&pb.RangeRequest{Key: []byte("a"), Revision: -1}, nil},
	}
	for _, c := range cases {
		if _, err := h.s.Range(c.req); !errors.Is(err, c.err) && err != c.err {
			t.Errorf("%v: err %v, want %v", c.req, err, c.err)
		}
	}
	checks := []struct {
		err  error
		want error
	}{
		{CheckRange(&pb.RangeRequest{}), rpctypes.ErrGRPCEmptyKey},
		{CheckRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{CheckRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: 9}), rpctypes.ErrGRPCInvalidSortOption},
		{CheckPut(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true, Value: []byte("x")}), rpctypes.ErrGRPCValueProvided},
		{CheckPut(&pb.PutRequest{Key: []byte("a"), IgnoreLease: true, Lease: 7}), rpctypes.ErrGRPCLeaseProvided},
		{CheckDeleteRange(&pb.DeleteRangeRequest{}), rpctypes.ErrGRPCEmptyKey},
	}
	for i, c := range checks {
		if c.err != c.want {
			t.Errorf("check %d: %v, want %v", i, c.err, c.want)
		}
	}
}

func putOp(key string, ignore bool) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), IgnoreValue: ignore}}}
}

func delOp(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func txnOp(success, failure []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: success, Failure: failure}}}
}

func TestCheckTxn(t *testing.T) {
	many := make([]*pb.RequestOp, 129)
	for i := range many {
		many[i] = putOp(string(rune('a'+i%26))+string(rune('a'+i/26)), false)
	}
	cases := []struct {
		name string
		ops  []*pb.RequestOp
		want error
	}{
		{"two puts", []*pb.RequestOp{putOp("a", false), putOp("a", false)}, rpctypes.ErrGRPCDuplicateKey},
		{"put in deleted range", []*pb.RequestOp{delOp("a", "c"), putOp("b", false)}, rpctypes.ErrGRPCDuplicateKey},
		{"put after range", []*pb.RequestOp{delOp("a", "c"), putOp("c", false)}, nil},
		{"nested then/else same key", []*pb.RequestOp{txnOp([]*pb.RequestOp{putOp("a", false)}, []*pb.RequestOp{putOp("a", false)})}, nil},
		{"nested vs outer", []*pb.RequestOp{putOp("a", false), txnOp([]*pb.RequestOp{putOp("a", false)}, nil)}, rpctypes.ErrGRPCDuplicateKey},
		{"nested put vs outer delete", []*pb.RequestOp{delOp("a", ""), txnOp(nil, []*pb.RequestOp{putOp("a", false)})}, rpctypes.ErrGRPCDuplicateKey},
		{"from-key delete, plain put (etcd allows)", []*pb.RequestOp{delOp("a", "\x00"), putOp("b", false)}, nil},
		{"from-key delete, ignore_value put", []*pb.RequestOp{delOp("a", "\x00"), putOp("b", true)}, rpctypes.ErrGRPCDuplicateKey},
		{"empty op", []*pb.RequestOp{{}}, rpctypes.ErrGRPCKeyNotFound},
		{"too many ops", many, rpctypes.ErrGRPCTooManyOps},
	}
	for _, c := range cases {
		if err := CheckTxn(&pb.TxnRequest{Success: c.ops}, Limits{}); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if IsReadOnlyTxn(&pb.TxnRequest{Success: []*pb.RequestOp{txnOp(nil, nil)}}) {
		t.Error("a nested txn must make a txn a write, as in etcd")
	}
}

func TestFailedWritesLeaveNoTrace(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	cases := []struct {
		name string
		do   func(w *Writer) error
		want error
	}{
		{"ignore_value on missing key", func(w *Writer) error {
			_, err := w.Put(&pb.PutRequest{Key: []byte("zz"), IgnoreValue: true})
			return err
		}, rpctypes.ErrGRPCKeyNotFound},
		{"unknown lease", func(w *Writer) error {
			_, err := w.Put(&pb.PutRequest{Key: []byte("a"), Lease: 8})
			return err
		}, rpctypes.ErrGRPCLeaseNotFound},
		{"txn fails on its last put", func(w *Writer) error {
			_, err := w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", ""), putOp("b", false), putOp("zz", true)}})
			return err
		}, rpctypes.ErrGRPCKeyNotFound},
		{"txn range in the future", func(w *Writer) error {
			_, err := w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", false),
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 3}}}}})
			return err
		}, rpctypes.ErrGRPCFutureRev},
	}
	for _, c := range cases {
		var err error
		events := h.write(func(w *Writer) { err = c.do(w) })
		if err != c.want || len(events) != 0 || h.s.Rev() != 2 {
			t.Errorf("%s: err %v events %d rev %d", c.name, err, len(events), h.s.Rev())
		}
		if resp := h.get(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}); keysOf(resp) != "a" {
			t.Errorf("%s: keys %q after failed write", c.name, keysOf(resp))
		}
	}
}

func TestTxnSemantics(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	var resp *pb.TxnResponse
	events := h.write(func(w *Writer) {
		var err error
		resp, err = w.Txn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
			Success: []*pb.RequestOp{putOp("b", false), delOp("a", ""),
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if !resp.Succeeded || resp.Header.Revision != 3 || len(resp.Responses) != 3 {
		t.Fatalf("txn: %v", resp)
	}
	inner := resp.Responses[2].GetResponseRange()
	if keysOf(inner) != "b" || inner.Header.Revision != 3 {
		t.Fatalf("range inside txn must see the txn's writes: %v", inner)
	}
	if len(events) != 2 || events[0].Kv.ModRevision != 3 || events[1].Type != mvccpb.Event_DELETE ||
		events[0].PrevKv != nil || events[1].PrevKv != nil {
		t.Fatalf("events: %v", events)
	}
}

func TestCompaction(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.put("a", "2") // 3
	h.put("b", "1") // 4
	h.del("b", "")  // 5
	h.put("c", "1") // 6
	h.put("a", "3") // 7
	if _, _, err := h.s.HashKV(8); err != rpctypes.ErrGRPCFutureRev {
		t.Fatalf("hash at 8: %v", err)
	}
	h.write(func(w *Writer) {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 6}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 6}); err != rpctypes.ErrGRPCCompacted {
			t.Fatalf("second compaction at 6: %v", err)
		}
		if _, err := w.Compact(&pb.CompactionRequest{Revision: 8}); err != rpctypes.ErrGRPCFutureRev {
			t.Fatalf("compaction at 8: %v", err)
		}
	})
	if h.s.CompactRev() != 6 || !h.s.CompactPending() {
		t.Fatalf("compact rev %d pending %v", h.s.CompactRev(), h.s.CompactPending())
	}
	hash, compactRev, err := h.s.HashKV(0)
	if err != nil || compactRev != 6 {
		t.Fatal(compactRev, err)
	}
	steps := 0
	for done := false; !done; steps++ {
		b := h.db.NewBatch()
		if done, err = h.s.CompactStep(b, 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		// Resumable: reopen between steps.
		if h.s, err = Open(h.db, h.s.opts); err != nil {
			t.Fatal(err)
		}
	}
	if steps != 3 { // keys a, b, c, one per step
		t.Errorf("compaction took %d steps of 1 key, want 3", steps)
	}
	if n, _ := countVersions(h.db); n != 3 { // a@3 (newest <= 6), a@7, c@6; b's tombstone and put gone
		t.Errorf("%d versions after compaction, want 3", n)
	}
	after, _, err := h.s.HashKV(0)
	if err != nil || after != hash {
		t.Errorf("hash %x after compaction, %x before (%v)", after, hash, err)
	}
	resp := h.get(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 6})
	if keysOf(resp) != "a,c" || string(resp.Kvs[0].Value) != "2" {
		t.Errorf("read at compacted revision: %v", resp)
	}
}

func TestReopenRecoversRevisions(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("b", "1")
	h.write(func(w *Writer) { w.Compact(&pb.CompactionRequest{Revision: 2}) })
	h.del("a", "")
	s, err := Open(h.db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 4 || s.CompactRev() != 2 || !s.CompactPending() {
		t.Fatalf("reopened at %d, compacted %d, pending %v", s.Rev(), s.CompactRev(), s.CompactPending())
	}
}

// TestBatchRecordsRevisionOnce applies several writes in one Writer: the
// batch records the revision once, at Flush, and a store reopened on the
// committed batch is at the last write's revision.
func TestBatchRecordsRevisionOnce(t *testing.T) {
	h := newHarness(t)
	b := h.db.NewIndexedBatch()
	defer b.Close()
	w := h.s.NewWriter(b)
	for _, k := range []string{"a", "b", "a"} {
		if _, err := w.Put(&pb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := getCopy(b, metaRevKey); err != nil || found {
		t.Fatalf("revision in the batch before Flush: found %v, %v", found, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if v, found, err := getCopy(b, metaRevKey); err != nil || !found || decodeRevisionMeta(t, v) != 4 {
		t.Fatalf("revision in the batch after Flush: %x found %v, %v; want 4", v, found, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	w.Publish()
	s, err := Open(h.db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 4 {
		t.Fatalf("reopened at %d, want 4", s.Rev())
	}
}

// TestPublishWithoutFlushPanics: a batch committed without Flush lacks its
// revision, and publishing it would let a restart go back in revisions.
func TestPublishWithoutFlushPanics(t *testing.T) {
	h := newHarness(t)
	b := h.db.NewIndexedBatch()
	defer b.Close()
	w := h.s.NewWriter(b)
	defer w.Close()
	if _, err := w.Put(&pb.PutRequest{Key: []byte("a"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Publish without Flush did not panic")
		}
	}()
	w.Publish()
}

func decodeRevisionMeta(t *testing.T, v []byte) int64 {
	t.Helper()
	rev, err := decodeInt64("rev", v)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestKeyEncodingOrder(t *testing.T) {
	h := newHarness(t)
	keys := []string{"\xff", "a\x00", "\x00", "a", "a\x00\x00", "a\x01", "a\xff", "\x00\xff", "\x00\x00"}
	for _, k := range keys {
		h.put(k, k)
	}
	resp := h.get(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	want := "\x00,\x00\x00,\x00\xff,a,a\x00,a\x00\x00,a\x01,a\xff,\xff"
	if keysOf(resp) != want {
		t.Fatalf("order %q, want %q", keysOf(resp), want)
	}
	sub := h.get(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("a\x01")})
	if keysOf(sub) != "a,a\x00,a\x00\x00" {
		t.Fatalf("[a, a\\x01): %q", keysOf(sub))
	}
	for _, k := range keys {
		u, _, rev := decodeVersionKey(versionKey([]byte(k), revision{5, 3}))
		if string(u) != k || rev != (revision{5, 3}) {
			t.Fatalf("round trip %q: %q %v", k, u, rev)
		}
	}
}
