package mvcc

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestOpenSourceRetriesAfterPublishInBetween publishes a compaction, and
// removes every version it makes obsolete, between a reader's load of the
// published state and its Pebble iterator. The reader must notice and try
// again: paired with the state it loaded, the iterator would let a read at
// a revision the old state still allowed find the removed versions gone and
// answer wrongly instead of failing with "required revision has been
// compacted".
func TestOpenSourceRetriesAfterPublishInBetween(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.put("a", "2") // 3
	h.put("a", "3") // 4
	var loads int
	var stale *publishedState
	h.s.afterStateLoad = func() {
		loads++
		if loads > 1 {
			return
		}
		stale = h.s.state.Load()
		h.compactAll() // compacts at 4 and removes a@2, a@3
	}
	_, err := h.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 2})
	h.s.afterStateLoad = nil
	if loads != 2 {
		t.Fatalf("reader loaded the published state %d times; want 2 (one retry after the Publish in between)", loads)
	}
	if !errors.Is(err, rpctypes.ErrGRPCCompacted) {
		t.Fatalf("range at 2 after a compaction at 4 published during the read: %v; want ErrCompacted", err)
	}

	// Without the retry, the stale state and the new snapshot would answer
	// the read at 2 from a keyspace where a@2 no longer exists: the check
	// above is what stops that answer.
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(it, false, h.s.chunkBits)
	defer closeSource(src, &err)
	resp, err := rangeAt(src, stale.rev, stale.compactRev, &pb.RangeRequest{Key: []byte("a"), Revision: 2})
	if err != nil {
		t.Fatalf("stale view: %v", err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("stale view found %q at revision 2; the removal should have taken it", resp.Kvs[0].Value)
	}
}

// TestOpenSourceKeepsStateUnchanged is the other side: a Publish that
// comes after the iterator was opened does not make the reader try again,
// and the reader reads at the revision it loaded, from a view that does
// not see the later write (the iterator alone is the point-in-time view).
func TestOpenSourceKeepsStateUnchanged(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1") // 2
	loads := 0
	h.s.afterStateLoad = func() { loads++ }
	src, st, err := h.s.openSource()
	h.s.afterStateLoad = nil
	if err != nil {
		t.Fatal(err)
	}
	defer closeSource(src, &err)
	h.put("a", "2") // 3, published after the iterator was opened
	if loads != 1 || st.rev != 2 {
		t.Fatalf("loads %d, source at %d; want 1 load at revision 2", loads, st.rev)
	}
	resp, err := rangeAt(src, st.rev, st.compactRev, &pb.RangeRequest{Key: []byte("a")})
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" || resp.Header.Revision != 2 {
		t.Fatalf("view read: %v %v; want a=1 at revision 2", resp, err)
	}
}
