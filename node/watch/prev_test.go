package watch

import (
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestPrevKVOfOverwrite: a watcher with prev_kv gets, for a put over an
// existing key and for a delete, exactly the version the event replaced
// (value, revisions, version), and none for a create, whether the event
// reaches it live, from the window of recent events or from history,
// although the writers' events carry no PrevKv. A watcher without prev_kv
// gets none.
func TestPrevKVOfOverwrite(t *testing.T) {
	for _, source := range []string{"live", "recent", "history"} {
		t.Run(source, func(t *testing.T) {
			cfg := Config{}
			if source == "history" {
				cfg.RecentBytesMax = 1 // the window keeps nothing
			}
			e := newEnv(t, cfg)
			c := newClient(t, e.hub)
			var withPrev, without int64
			watch := func(startRev int64) {
				withPrev = c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true, StartRevision: startRev}).WatchId
				without = c.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: startRev}).WatchId
			}
			if source == "live" {
				watch(0)
			}
			e.put("k", "1") // 2
			e.put("k", "2") // 3
			e.del("k", "")  // 4
			e.put("k", "3") // 5
			if source != "live" {
				watch(2)
			}
			c.drainUntil("every event", func() bool { return len(c.events[withPrev]) == 4 && len(c.events[without]) == 4 })
			at := func(rev int64) *mvccpb.KeyValue {
				resp, err := e.store.Range(&pb.RangeRequest{Key: []byte("k"), Revision: rev})
				if err != nil || len(resp.Kvs) != 1 {
					t.Fatalf("range at %d: %v %v", rev, resp, err)
				}
				return resp.Kvs[0]
			}
			wantPrevs := []*mvccpb.KeyValue{nil, at(2), at(3), nil}
			for i, ev := range c.events[withPrev] {
				if !proto.Equal(ev.PrevKv, wantPrevs[i]) {
					t.Errorf("event %d (%v %q@%d): prev_kv %v, want %v", i, ev.Type, ev.Kv.Key, ev.Kv.ModRevision, ev.PrevKv, wantPrevs[i])
				}
			}
			for i, ev := range c.events[without] {
				if ev.PrevKv != nil {
					t.Errorf("event %d of the watcher without prev_kv carries %v", i, ev.PrevKv)
				}
			}
		})
	}
}

// TestPrevKVAfterCompaction: an event fanned out after a compaction at its
// revision comes without PrevKv, as etcd sends it when its read at
// mod_revision-1 fails as compacted, whether or not the compaction has
// removed the version yet. An event above the compacted revision still
// gets it.
func TestPrevKVAfterCompaction(t *testing.T) {
	for _, removed := range []bool{true, false} {
		e := newEnv(t, Config{})
		c := newClient(t, e.hub)
		id := c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true}).WatchId
		e.put("k", "1") // 2
		// Revisions 3 and 4, fanned out only after the compaction.
		evs := e.write(func(w *mvcc.Writer) error {
			for _, v := range []string{"2", "3"} {
				if _, err := w.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte(v)}); err != nil {
					return err
				}
			}
			return nil
		})
		e.compact(3)
		for removed && e.store.CompactPending() {
			b := e.db.NewBatch()
			if _, err := e.store.CompactStep(b, 10); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		e.hub.Notify(evs)
		c.take()
		got := c.events[id]
		if len(got) != 3 || got[1].Kv.ModRevision != 3 {
			t.Fatalf("removed=%v: events %s", removed, eventsString(got))
		}
		if got[1].PrevKv != nil {
			t.Errorf("removed=%v: prev_kv at the compacted revision %v, want none", removed, got[1].PrevKv)
		}
		if string(got[2].PrevKv.GetValue()) != "2" {
			t.Errorf("removed=%v: prev_kv above the compacted revision %v, want the version at 3", removed, got[2].PrevKv)
		}
	}
}

// flakyStore fails every VersionBefore while fail is set.
type flakyStore struct {
	*mvcc.Store
	fail bool
}

var errFlaky = errors.New("flaky store: read failed")

func (s *flakyStore) VersionBefore(key []byte, rev int64) (*mvccpb.KeyValue, error) {
	if s.fail {
		return nil, errFlaky
	}
	return s.Store.VersionBefore(key, rev)
}

// TestPrevKVReadFailure: when the store cannot read a PrevKv, the watcher
// with prev_kv gets nothing without it: it moves to catch-up, whose steps
// report the error, and gets the event with its PrevKv once the store
// reads again. The watcher without prev_kv is not held back.
func TestPrevKVReadFailure(t *testing.T) {
	e := newEnv(t, Config{ResyncInterval: time.Millisecond})
	store := &flakyStore{Store: e.store}
	e.hub = New(store, e.hub.Config())
	e.hub.Tick(0)
	c := newClient(t, e.hub)
	withPrev := c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true}).WatchId
	without := c.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	e.put("k", "1") // 2
	store.fail = true
	e.put("k", "2") // 3
	c.take()
	if n, m := len(c.events[withPrev]), len(c.events[without]); n != 1 || m != 2 {
		t.Fatalf("while reads fail: %d events with prev_kv (want 1), %d without (want 2)", n, m)
	}
	if _, err := e.hub.CatchUp(); !errors.Is(err, errFlaky) {
		t.Fatalf("catch-up while reads fail: %v, want %v", err, errFlaky)
	}
	store.fail = false
	e.hub.Tick(time.Second) // the resync retries the failed catch-up
	c.drainUntil("the event with its prev_kv", func() bool { return len(c.events[withPrev]) == 2 })
	if got := c.events[withPrev][1]; got.Kv.ModRevision != 3 || string(got.PrevKv.GetValue()) != "1" {
		t.Fatalf("got %v", got)
	}
}

// TestRecentWindowHoldsNoPrevValues: overwriting puts leave in the window
// of recent events only their own values, not a copy of each value they
// replaced, whether or not a watcher with prev_kv is synced.
func TestRecentWindowHoldsNoPrevValues(t *testing.T) {
	const valueBytes, puts = 10 << 10, 20
	e := newEnv(t, Config{})
	c := newClient(t, e.hub)
	c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true})
	value := string(make([]byte, valueBytes))
	for range puts {
		e.put("k", value)
	}
	if got, most := e.hub.RecentBytes(), puts*(valueBytes+len("k")+eventOverheadBytes); got > most {
		t.Fatalf("window holds %d bytes for %d puts of %d bytes; at most %d without previous values", got, puts, valueBytes, most)
	}
}

// TestDeletePrevKVCounted: a delete whose request asked for prev_kv hands
// the hub the version it decoded; the window keeps it and counts it, a
// watcher with prev_kv gets it without a read, and one without gets the
// event without it.
func TestDeletePrevKVCounted(t *testing.T) {
	const valueBytes = 10 << 10
	e := newEnv(t, Config{})
	store := &flakyStore{Store: e.store, fail: true} // no read may be needed
	e.hub = New(store, e.hub.Config())
	c := newClient(t, e.hub)
	e.put("k", string(make([]byte, valueBytes))) // 2
	withPrev := c.create(&pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true}).WatchId
	without := c.create(&pb.WatchCreateRequest{Key: []byte("k")}).WatchId
	before := e.hub.RecentBytes()
	e.hub.Notify(e.write(func(w *mvcc.Writer) error { // 3
		_, err := w.DeleteRange(&pb.DeleteRangeRequest{Key: []byte("k"), PrevKv: true})
		return err
	}))
	if grew := e.hub.RecentBytes() - before; grew < valueBytes+eventOverheadBytes {
		t.Fatalf("the window grew by %d bytes for a delete carrying a %d-byte previous value", grew, valueBytes)
	}
	c.take()
	if got := c.events[withPrev]; len(got) != 1 || len(got[0].PrevKv.GetValue()) != valueBytes {
		t.Fatalf("with prev_kv: %s", eventsString(got))
	}
	if got := c.events[without]; len(got) != 1 || got[0].PrevKv != nil {
		t.Fatalf("without prev_kv: %s", eventsString(got))
	}
}
