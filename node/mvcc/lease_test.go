package mvcc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestLeaseIndexMatchesKeyspace runs random puts (plain, in txns, with
// ignore_lease), deletes and revocations, and checks the attachment index
// against a full scan after every request: a key is attached to lease L
// exactly when its current version has Lease L. Revocations delete every
// attached key at one revision.
func TestLeaseIndexMatchesKeyspace(t *testing.T) {
	leases := []int64{0, 1, -5, 1 << 40, 255, 256}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(db, Options{LeaseExists: func(int64) bool { return true }})
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, db: db, s: s}
		key := func() []byte { return []byte{'k', byte(rng.IntN(8)), 0} }
		for step := range 300 {
			var revokeEvents []*mvccpb.Event
			before := s.Rev()
			lease := leases[rng.IntN(len(leases))]
			h.write(func(w *Writer) {
				var err error
				switch rng.IntN(5) {
				case 0, 1:
					_, err = w.Put(&pb.PutRequest{Key: key(), Lease: lease})
				case 2:
					_, err = w.Put(&pb.PutRequest{Key: key(), IgnoreLease: true})
					if err != nil {
						err = nil // the key did not exist
					}
				case 3:
					_, err = w.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
						{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte{'k', 3}, RangeEnd: []byte{'k', 5}}}},
						{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte{'k', 4, 0}, Lease: lease}}},
					}})
				case 4:
					var n int64
					n, err = w.RevokeLease(lease)
					revokeEvents = w.Events()
					if n > 0 && w.Rev() != before+1 {
						err = fmt.Errorf("revoke of %d keys moved the revision from %d to %d", n, before, w.Rev())
					}
				}
				if err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
			})
			for _, ev := range revokeEvents {
				prev, err := s.VersionBefore(ev.Kv.Key, ev.Kv.ModRevision)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Type != mvccpb.DELETE || ev.PrevKv != nil || prev.GetLease() != lease {
					t.Fatalf("seed %d step %d: revoke of %d made event %v over %v", seed, step, lease, ev, prev)
				}
			}
			checkLeaseIndex(t, s, leases, fmt.Sprintf("seed %d step %d", seed, step))
		}
		db.Close()
	}
}

func checkLeaseIndex(t *testing.T, s *Store, leases []int64, where string) {
	t.Helper()
	resp, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64][]string{}
	for _, kv := range resp.Kvs {
		if kv.Lease != 0 {
			want[kv.Lease] = append(want[kv.Lease], string(kv.Key))
		}
	}
	for _, id := range leases {
		keys, err := s.LeaseKeys(id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, string(k))
		}
		if !slices.Equal(got, want[id]) {
			t.Fatalf("%s: lease %d index %q, keyspace %q", where, id, got, want[id])
		}
	}
}
