package node

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/node/lease"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestImporterBootstrapsAMember: an etcd history imported with an Importer
// opens as a member's database: the keys with their revisions and
// versions, the leases, the revision and the compaction, and the new
// member's own membership.
func TestImporterBootstrapsAMember(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(9, []uint64{9}, fs)
	cfg.InitialMembers = []*membershippb.Member{{ID: 9}}
	im, err := NewImporter(fs, fs.PathJoin(cfg.Dir, firstDBName))
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string, create, mod, version, lease int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value),
			CreateRevision: create, ModRevision: mod, Version: version, Lease: lease}}
	}
	// As an etcd database holds it after a compaction at 6: a@3 (its
	// version 1 at 2 compacted away), b with a lease, c deleted at 7 and
	// d's tombstone at 6 whose put was compacted away.
	changes := []struct {
		main, sub int64
		ev        *mvccpb.Event
	}{
		{3, 0, put("a", "a2", 2, 3, 2, 0)},
		{4, 0, put("b", "b1", 4, 4, 1, 0x77)},
		{5, 0, put("c", "c1", 5, 5, 1, 0)},
		{6, 0, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("d")}}},
		{7, 0, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("c")}}},
		{7, 1, put("a", "a3", 2, 7, 3, 0)},
	}
	for _, c := range changes {
		if err := im.Change(c.main, c.sub, c.ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Lease(0x77, 30); err != nil {
		t.Fatal(err)
	}
	stats, err := im.Finish(8, 6)
	if err != nil {
		t.Fatal(err)
	}
	want := ImportStats{Puts: 4, Deletes: 1, SkippedDeletes: 1, Leases: 1, Revision: 8, CompactRevision: 6}
	if stats != want {
		t.Fatalf("stats %+v, want %+v", stats, want)
	}

	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	s := n.Store()
	if s.Rev() != 8 || s.CompactRev() != 6 {
		t.Fatalf("revision %d compacted %d, want 8 and 6", s.Rev(), s.CompactRev())
	}
	resp, err := s.Range(&etcdserverpb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range resp.Kvs {
		got = append(got, fmt.Sprintf("%s=%s@%d/%d/v%d/l%x", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease))
	}
	if fmt.Sprint(got) != "[a=a3@2/7/v3/l0 b=b1@4/4/v1/l77]" {
		t.Fatalf("keys %v", got)
	}
	old, err := s.Range(&etcdserverpb.RangeRequest{Key: []byte("c"), Revision: 6})
	if err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "c1" {
		t.Fatalf("c at revision 6: %v %v", old, err)
	}
	if l := n.Leases(); len(l) != 1 || l[0] != (lease.Lease{ID: 0x77, TTLSeconds: 30}) {
		t.Fatalf("leases %+v", l)
	}
	if ids := sortedIDs(n.members.current()); len(ids) != 1 || ids[0] != 9 {
		t.Fatalf("members %x, want only 9", ids)
	}
	if _, err := NewImporter(fs, fs.PathJoin(cfg.Dir, firstDBName)); err == nil {
		t.Fatal("an import into an existing database succeeded")
	}
}

// TestImporterRefusesBadLeases: leases etcd never grants are refused.
func TestImporterRefusesBadLeases(t *testing.T) {
	im, err := NewImporter(vfs.NewMem(), "db")
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	for _, l := range [][2]int64{{0, 10}, {5, 0}, {5, lease.MaxTTLSeconds + 1}} {
		if err := im.Lease(l[0], l[1]); err == nil {
			t.Errorf("lease %x TTL %d accepted", l[0], l[1])
		}
	}
}
