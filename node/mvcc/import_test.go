package mvcc

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// storedChange is one version as the store holds it, as an etcd database
// holds it: its revision, and the key-value or a tombstone.
type storedChange struct {
	rev revision
	ev  *mvccpb.Event
}

// storedChanges lists every version the store holds, in revision order:
// what an etcd database holds after the same history and compaction.
func storedChanges(t interface{ Fatal(...any) }, db *pebble.DB) []storedChange {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []storedChange
	for valid := it.First(); valid; valid = it.Next() {
		userKey, _, rev := decodeVersionKey(it.Key())
		kv := decodeValue(userKey, it.Value())
		ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
		if kv == nil {
			ev = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: userKey}}
		}
		out = append(out, storedChange{rev: rev, ev: ev})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b storedChange) int {
		if a.rev.main != b.rev.main {
			return int(a.rev.main - b.rev.main)
		}
		return int(a.rev.sub - b.rev.sub)
	})
	return out
}

func openImportTarget(t interface{ Fatal(...any) }, chunkBits int) (*pebble.DB, *Store) {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{chunkBits: chunkBits})
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

// importInto imports changes, in batches of batchChanges, then moves to rev
// (if above) and compacts at compactRev (if not negative), physically. It
// returns the number of deletes skipped.
func importInto(db *pebble.DB, s *Store, changes []storedChange, rev, compactRev int64, batchChanges int) (skipped int, err error) {
	for len(changes) > 0 {
		n := min(batchChanges, len(changes))
		b := db.NewIndexedBatch()
		w := s.NewWriter(b)
		for _, c := range changes[:n] {
			skip, err := w.Import(c.rev.main, c.rev.sub, c.ev)
			if err != nil {
				w.Close()
				return 0, err
			}
			if skip {
				skipped++
			}
		}
		if err := w.Flush(); err != nil {
			return 0, err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return 0, err
		}
		w.Publish()
		changes = changes[n:]
	}
	b := db.NewIndexedBatch()
	w := s.NewWriter(b)
	defer w.Close()
	if err := w.ImportRevision(max(rev, w.Rev())); err != nil {
		return 0, err
	}
	if compactRev >= 0 {
		if _, err := w.Compact(&pb.CompactionRequest{Revision: compactRev}); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, err
	}
	w.Publish()
	for s.CompactPending() {
		b := db.NewBatch()
		if _, err := s.CompactStep(b, 3); err != nil {
			return 0, err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return 0, err
		}
	}
	return skipped, nil
}

// importProbes are the reads compared at every revision: whole keyspace,
// with counts and limits (which use the key index and its chunks), and
// prefixes.
func importProbes(rev int64) []*pb.RangeRequest {
	return []*pb.RangeRequest{
		{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev},
		{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev, Limit: 2},
		{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev, CountOnly: true},
		{Key: []byte("a"), RangeEnd: []byte("b"), Revision: rev, Limit: 1},
		{Key: []byte("a\x00"), RangeEnd: []byte("\xff"), Revision: rev, CountOnly: true},
	}
}

// compareStores checks that two stores answer the same at every revision
// from the compacted one up, and hold the same history from just after it.
func compareStores(a, b *Store) error {
	if a.Rev() != b.Rev() || a.CompactRev() != b.CompactRev() {
		return fmt.Errorf("revision %d compacted %d, imported %d compacted %d", a.Rev(), a.CompactRev(), b.Rev(), b.CompactRev())
	}
	for rev := max(a.CompactRev(), 1); rev <= a.Rev(); rev++ {
		for _, req := range importProbes(rev) {
			want, werr := a.Range(req)
			got, gerr := b.Range(req)
			if !errors.Is(gerr, werr) || !proto.Equal(want, got) {
				return fmt.Errorf("range %v:\n original %v %v\n imported %v %v", req, want, werr, got, gerr)
			}
		}
	}
	from := a.CompactRev() + 1
	want, _, werr := a.History([]byte{0}, []byte{0}, from, a.Rev(), 1<<20)
	got, _, gerr := b.History([]byte{0}, []byte{0}, from, b.Rev(), 1<<20)
	if !errors.Is(gerr, werr) || len(want) != len(got) {
		return fmt.Errorf("history from %d: original %d events (%v), imported %d (%v)", from, len(want), werr, len(got), gerr)
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			return fmt.Errorf("history event %d: original %v, imported %v", i, want[i], got[i])
		}
	}
	return nil
}

// TestImportReadsLikeTheOriginal: a random history of puts (with and
// without a lease), deletes and txns, compacted at a random revision, is
// imported version by version, as cairnutl migrate imports an etcd
// database, into a store with other batch boundaries. Every read at every
// revision from the compacted one on, and the history after it, must be
// the original's, and so must the lease attachments.
func TestImportReadsLikeTheOriginal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r, err := newRunner("")
		if err != nil {
			t.Fatal(err)
		}
		defer r.db.Close()
		for range rapid.IntRange(1, 40).Draw(t, "requests") {
			a := action{compactBack: -1, readBack: -1}
			for range rapid.IntRange(1, 3).Draw(t, "writes") {
				a.writes = append(a.writes, genOp(t, 0, false))
			}
			if err := r.apply(a); err != nil {
				t.Fatal(err)
			}
		}
		compactRev := int64(-1)
		if rapid.Bool().Draw(t, "compacted") {
			compactRev = rapid.Int64Range(1, r.s.Rev()).Draw(t, "compactRev")
			if err := r.apply(action{compactBack: r.s.Rev() - compactRev, readBack: -1}); err != nil {
				t.Fatal(err)
			}
			for r.s.CompactPending() {
				if err := r.apply(action{compactBack: -1, readBack: -1, compactSteps: 2}); err != nil {
					t.Fatal(err)
				}
			}
		}
		db, s := openImportTarget(t, 1)
		defer db.Close()
		batch := rapid.IntRange(1, 8).Draw(t, "batchChanges")
		skipped, err := importInto(db, s, storedChanges(t, r.db), r.s.Rev(), compactRev, batch)
		if err != nil {
			t.Fatal(err)
		}
		if err := compareStores(r.s, s); err != nil {
			t.Fatal(err)
		}
		// Only the tombstones kept at the compacted revision without their
		// key's versions are not carried; without them the two stores hold
		// the same versions.
		if skipped == 0 {
			want, _, werr := r.s.HashKV(0)
			got, _, gerr := s.HashKV(0)
			if werr != nil || gerr != nil || want != got {
				t.Fatalf("HashKV: original %x (%v), imported %x (%v)", want, werr, got, gerr)
			}
		}
		want, err := leaseKeys(r.db, 7)
		if err != nil {
			t.Fatal(err)
		}
		got, err := leaseKeys(db, 7)
		if err != nil || !slices.EqualFunc(want, got, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("keys of lease 7: original %q, imported %q (%v)", want, got, err)
		}
	})
}

// TestImportLatestVersions: the newest version of every key, all imported
// at one revision as a live copy does, then compacted there, reads like
// the original at that revision.
func TestImportLatestVersions(t *testing.T) {
	h := newHarnessWith(t, Options{chunkBits: 1})
	for i := range 30 {
		h.put(fmt.Sprintf("k%02d", i%17), fmt.Sprint("v", i))
		if i%7 == 3 {
			h.del(fmt.Sprintf("k%02d", i%5), "")
		}
	}
	rev := h.s.Rev()
	latest := h.get(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	db, s := openImportTarget(t, 1)
	defer db.Close()
	var changes []storedChange
	for i, kv := range latest.Kvs {
		changes = append(changes, storedChange{rev: revision{rev, int64(i)}, ev: &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}})
	}
	if _, err := importInto(db, s, changes, rev, rev, 4); err != nil {
		t.Fatal(err)
	}
	for _, req := range importProbes(rev) {
		want := h.get(req)
		got, err := s.Range(req)
		if err != nil || !proto.Equal(want, got) {
			t.Fatalf("range %v: original %v, imported %v (%v)", req, want, got, err)
		}
	}
	if _, err := s.Range(&pb.RangeRequest{Key: []byte("k"), Revision: rev - 1}); err == nil {
		t.Fatal("a read below the copied revision succeeded; want compacted")
	}
}

// TestImportRejectsInconsistentChanges: changes no etcd history has are
// refused, not written.
func TestImportRejectsInconsistentChanges(t *testing.T) {
	put := func(key string, create, mod, version int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, ModRevision: mod, Version: version}}
	}
	for _, tc := range []struct {
		name   string
		before []storedChange
		main   int64
		ev     *mvccpb.Event
	}{
		{"version 1 after create", nil, 3, put("a", 2, 3, 1)},
		{"mod above its revision", nil, 3, put("a", 4, 4, 1)},
		{"version gap", []storedChange{{revision{2, 0}, put("a", 2, 2, 1)}}, 3, put("a", 2, 3, 3)},
		{"other create revision", []storedChange{{revision{2, 0}, put("a", 2, 2, 1)}}, 3, put("a", 3, 3, 2)},
		{"revision going back", []storedChange{{revision{5, 0}, put("a", 5, 5, 1)}}, 4, put("b", 4, 4, 1)},
		{"no key", nil, 2, put("", 2, 2, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, s := openImportTarget(t, 0)
			defer db.Close()
			if _, err := importInto(db, s, tc.before, 1, -1, 10); err != nil {
				t.Fatal(err)
			}
			b := db.NewIndexedBatch()
			defer b.Close()
			w := s.NewWriter(b)
			defer w.Close()
			if _, err := w.Import(tc.main, 0, tc.ev); !errors.Is(err, ErrImportInconsistent) {
				t.Fatalf("Import: %v, want ErrImportInconsistent", err)
			}
		})
	}
}

// TestImportSkipsDeleteOfUnknownKey: the tombstone an etcd compaction keeps
// at its revision, without the versions it deleted, is skipped.
func TestImportSkipsDeleteOfUnknownKey(t *testing.T) {
	db, s := openImportTarget(t, 0)
	defer db.Close()
	b := db.NewIndexedBatch()
	w := s.NewWriter(b)
	skipped, err := w.Import(4, 0, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("gone")}})
	if err != nil || !skipped {
		t.Fatalf("Import: skipped %v, %v; want skipped", skipped, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	w.Publish()
	if s.Rev() != 4 {
		t.Fatalf("revision %d, want 4", s.Rev())
	}
}
