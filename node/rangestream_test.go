package node

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// startStream starts a RangeStream on node 1, settles, and returns its
// chunks.
func (h *harness) startStream(req *pb.RangeRequest) (*RangeStream, error) {
	h.t.Helper()
	rid := h.node(1).Start(Request{RangeStream: req})
	h.settle()
	return h.mustComplete(1, rid).Stream()
}

// readAll reads every chunk of s.
func readAll(s *RangeStream) ([]*pb.RangeResponse, error) {
	var chunks []*pb.RangeResponse
	for {
		c, err := s.Next()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		chunks = append(chunks, c.GetRangeResponse())
	}
}

// joined is the stream's chunks put together as one range response, after
// checking their framing: only the last has a header, more and count.
func joined(t *testing.T, chunks []*pb.RangeResponse) *pb.RangeResponse {
	t.Helper()
	out := &pb.RangeResponse{}
	for i, c := range chunks {
		last := i == len(chunks)-1
		if !last && (c.GetHeader() != nil || c.GetMore() || c.GetCount() != 0) {
			t.Fatalf("chunk %d of %d has header %v, more %v, count %d", i, len(chunks), c.GetHeader(), c.GetMore(), c.GetCount())
		}
		if last && c.GetHeader() == nil {
			t.Fatalf("last chunk %d has no header", i)
		}
		out.Kvs = append(out.Kvs, c.GetKvs()...)
		out.Header, out.More, out.Count = c.GetHeader(), c.GetMore(), c.GetCount()
	}
	return out
}

func chunkSizes(chunks []*pb.RangeResponse) []int {
	sizes := make([]int, len(chunks))
	for i, c := range chunks {
		sizes[i] = len(c.GetKvs())
	}
	return sizes
}

func putKeys(h *harness, n int) {
	for i := range n {
		h.put(1, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i))
	}
}

// TestRangeStreamChunks: chunks of 10, then doubled, each read when asked
// for; a limit cuts the last chunk and the count is the whole range's.
func TestRangeStreamChunks(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.ClusterID = 7 })
	h.leader()
	putKeys(h, 45) // revisions 2..46
	all := &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")}
	for name, tc := range map[string]struct {
		limit      int64
		wantSizes  []int
		wantMore   bool
		wantLength int
	}{
		"no limit":      {0, []int{10, 20, 15}, false, 45},
		"limit 12":      {12, []int{10, 2}, true, 12},
		"limit 10":      {10, []int{10}, true, 10},
		"limit 45":      {45, []int{10, 20, 15}, false, 45},
		"limit 100":     {100, []int{10, 20, 15}, false, 45},
		"limit 3":       {3, []int{3}, true, 3},
		"negative":      {-1, []int{45}, false, 45},
		"first two all": {30, []int{10, 20}, true, 30},
	} {
		req := proto.Clone(all).(*pb.RangeRequest)
		req.Limit = tc.limit
		s, err := h.startStream(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		chunks, err := readAll(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		whole := joined(t, chunks)
		if fmt.Sprint(chunkSizes(chunks)) != fmt.Sprint(tc.wantSizes) || whole.GetMore() != tc.wantMore ||
			len(whole.GetKvs()) != tc.wantLength || whole.GetCount() != 45 {
			t.Errorf("%s: chunks %v more %v keys %d count %d, want %v %v %d 45", name, chunkSizes(chunks),
				whole.GetMore(), len(whole.GetKvs()), whole.GetCount(), tc.wantSizes, tc.wantMore, tc.wantLength)
		}
		if hd := whole.GetHeader(); hd.GetRevision() != 46 || hd.GetClusterId() != 7 || hd.GetMemberId() != 1 || hd.GetRaftTerm() == 0 {
			t.Errorf("%s: header %v", name, hd)
		}
	}
}

// TestRangeStreamPinsRevision: writes between chunks do not show; the
// header reports the revision the first chunk read.
func TestRangeStreamPinsRevision(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.leader()
	putKeys(h, 25) // revisions 2..26
	s, err := h.startStream(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	h.put(1, "k020", "changed")
	h.put(1, "k100", "new")
	h.write(1, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k015")}})
	rest, err := readAll(s)
	if err != nil {
		t.Fatal(err)
	}
	whole := joined(t, append([]*pb.RangeResponse{first.GetRangeResponse()}, rest...))
	if len(whole.GetKvs()) != 25 || whole.GetCount() != 25 || whole.GetHeader().GetRevision() != 26 {
		t.Fatalf("keys %d count %d revision %d, want 25 25 26", len(whole.GetKvs()), whole.GetCount(), whole.GetHeader().GetRevision())
	}
	for i, kv := range whole.GetKvs() {
		if want := fmt.Sprintf("v%d", i); string(kv.GetValue()) != want || kv.GetModRevision() > 26 {
			t.Fatalf("key %s = %s at revision %d, want %s at or below 26", kv.GetKey(), kv.GetValue(), kv.GetModRevision(), want)
		}
	}
}

// TestRangeStreamUnpinnedIsCaught: the planted bug reads later chunks at
// the latest revision, which this test's own check sees.
func TestRangeStreamUnpinnedIsCaught(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.Knobs.RangeStreamUnpinned = true })
	h.leader()
	putKeys(h, 25)
	s, err := h.startStream(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	h.put(1, "k020", "changed")
	rest, err := readAll(s)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rest {
		for _, kv := range c.GetKvs() {
			found = found || string(kv.GetValue()) == "changed"
		}
	}
	if !found {
		t.Fatal("the unpinned stream did not read the later write: the planted bug is not planted")
	}
}

// TestRangeStreamErrors: etcd's refusals and revision errors, before the
// first chunk and, for a compaction past the pinned revision, between
// chunks.
func TestRangeStreamErrors(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.leader()
	putKeys(h, 25)
	key := []byte("k")
	end := []byte("l")
	unimplemented := func(msg string) error { return status.Error(codes.Unimplemented, msg) }
	for name, tc := range map[string]struct {
		req  *pb.RangeRequest
		want error
	}{
		"empty key":       {&pb.RangeRequest{}, rpctypes.ErrGRPCEmptyKey},
		"bad sort":        {&pb.RangeRequest{Key: key, SortOrder: 7}, rpctypes.ErrGRPCInvalidSortOption},
		"descend":         {&pb.RangeRequest{Key: key, RangeEnd: end, SortOrder: pb.RangeRequest_DESCEND}, unimplemented("RangeStream does not support custom sort orders")},
		"ascend by mod":   {&pb.RangeRequest{Key: key, RangeEnd: end, SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_MOD}, unimplemented("RangeStream does not support custom sort orders")},
		"min mod filter":  {&pb.RangeRequest{Key: key, RangeEnd: end, MinModRevision: 3}, unimplemented("RangeStream does not support revision filters")},
		"max create":      {&pb.RangeRequest{Key: key, RangeEnd: end, MaxCreateRevision: 3}, unimplemented("RangeStream does not support revision filters")},
		"future revision": {&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 100}, rpctypes.ErrGRPCFutureRev},
	} {
		s, err := h.startStream(tc.req)
		if err == nil {
			_, err = s.Next()
		}
		if err == nil || err.Error() != tc.want.Error() || status.Code(err) != status.Code(tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	// 19 keys at revision 20: a first chunk of 10, then a compaction.
	s, err := h.startStream(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	h.write(1, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 25}})
	if _, err := s.Next(); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("chunk after a compaction past the stream's revision: %v, want %v", err, rpctypes.ErrGRPCCompacted)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the error: %v, want EOF", err)
	}
	s, err = h.startStream(&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("stream at a compacted revision: %v, want %v", err, rpctypes.ErrGRPCCompacted)
	}
}

// TestRangeStreamMatchesRange checks the streamed range against the plain
// one, the dumb reference: for random requests over random data, the
// chunks put together equal Range's kvs, more, count and revision.
func TestRangeStreamMatchesRange(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) { c.RangeStreamFirstChunkKeys = 2 })
	h.leader()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 120 {
		key := fmt.Sprintf("k%02d", rng.IntN(40))
		if rng.IntN(5) == 0 {
			h.write(1, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(key)}})
			continue
		}
		h.put(1, key, fmt.Sprintf("v%d", i))
	}
	h.write(1, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 30}})
	rev := h.node(1).Store().Rev()
	for i := range 300 {
		req := &pb.RangeRequest{
			Key:          fmt.Appendf(nil, "k%02d", rng.IntN(40)),
			Limit:        int64(rng.IntN(30)) - 2,
			KeysOnly:     rng.IntN(4) == 0,
			Serializable: rng.IntN(2) == 0,
		}
		switch rng.IntN(4) {
		case 0: // a single key
		case 1:
			req.RangeEnd = []byte{0}
		default:
			req.RangeEnd = fmt.Appendf(nil, "k%02d", rng.IntN(45))
		}
		if rng.IntN(3) == 0 {
			req.Revision = 25 + rng.Int64N(rev-20)
		}
		if rng.IntN(6) == 0 {
			req.SortTarget = pb.RangeRequest_SortTarget(rng.IntN(5))
		}
		want, wantErr := h.node(1).Store().Range(req)
		var got *pb.RangeResponse
		s, err := h.startStream(req)
		if err == nil {
			var chunks []*pb.RangeResponse
			if chunks, err = readAll(s); err == nil {
				got = joined(t, chunks)
			}
		}
		if wantErr != nil || err != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("request %d %v: stream error %v, range error %v", i, req, err, wantErr)
			}
			continue
		}
		if req.SortTarget != pb.RangeRequest_KEY {
			continue // each chunk is sorted on its own, as in etcd: only errors compare
		}
		want.Header.ClusterId, want.Header.MemberId, want.Header.RaftTerm = 0, 0, 0
		got.Header.ClusterId, got.Header.MemberId, got.Header.RaftTerm = 0, 0, 0
		if !proto.Equal(want, got) {
			t.Fatalf("request %d %v:\nstream %v\nrange  %v", i, req, got, want)
		}
	}
}

// TestNextChunkLimit: double below half the target, halve above twice
// it, never below 1.
func TestNextChunkLimit(t *testing.T) {
	for _, tc := range []struct {
		limit             int64
		bytes, limitBytes int
		want              int64
	}{
		{10, 100, 1000, 20},
		{10, 499, 1000, 20},
		{10, 500, 1000, 10},
		{10, 2000, 1000, 10},
		{10, 2001, 1000, 5},
		{1, 5000, 1000, 1},
	} {
		if got := nextChunkLimit(tc.limit, tc.bytes, tc.limitBytes); got != tc.want {
			t.Errorf("nextChunkLimit(%d, %d, %d) = %d, want %d", tc.limit, tc.bytes, tc.limitBytes, got, tc.want)
		}
	}
}

// TestRangeStreamCountOnly: one chunk with the header and the count of
// the whole range, whatever the limit.
func TestRangeStreamCountOnly(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.leader()
	putKeys(h, 25)
	s, err := h.startStream(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), CountOnly: true, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := readAll(s)
	if err != nil || len(chunks) != 1 || chunks[0].GetCount() != 25 || len(chunks[0].GetKvs()) != 0 ||
		chunks[0].GetMore() || chunks[0].GetHeader().GetRevision() != 26 {
		t.Fatalf("count_only: %v, %v", chunks, err)
	}
}
