package node

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// TestBackupRestore: a backup taken from a member of one cluster restores
// into a new one-member cluster with the same keyspace (same revision,
// same HashKV, same values) and none of the old cluster's members or
// alarms; a damaged backup is refused unless the hash check is skipped.
func TestBackupRestore(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	for i := range 20 {
		h.put(leader, fmt.Sprint("k", i%7), fmt.Sprint(i))
	}
	if _, err := h.serve(leader, Request{Compaction: &pb.CompactionRequest{Revision: 10}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.serve(leader, alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_CORRUPT)); err != nil {
		t.Fatal(err)
	}
	b, err := h.node(2).Backup()
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	n, err := b.WriteTo(&stream)
	if err != nil || n != b.Size() || int64(stream.Len()) != n || n%512 != 32 {
		t.Fatalf("backup of %d bytes (size %d, buffer %d): %v", n, b.Size(), stream.Len(), err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want, err := h.node(2).HashKV(&pb.HashKVRequest{})
	if err != nil {
		t.Fatal(err)
	}

	fs := vfs.NewMem()
	cfg := testConfig(9, []uint64{9}, fs)
	cfg.InitialMembers = []*membershippb.Member{{ID: 9}}
	if err := RestoreBackup(stream.Bytes(), fs, fs.PathJoin(cfg.Dir, firstDBName), false); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRestoredDB(fs, fs.PathJoin(cfg.Dir, firstDBName)); err != nil {
		t.Fatal(err)
	}
	restored, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	got, err := restored.HashKV(&pb.HashKVRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetHash() != want.GetHash() || got.GetHashRevision() != want.GetHashRevision() || got.GetCompactRevision() != 10 {
		t.Fatalf("restored HashKV %v, backed up %v", got, want)
	}
	if ids := sortedIDs(restored.members.current()); len(ids) != 1 || ids[0] != 9 {
		t.Fatalf("restored members %x, want only the new member 9", ids)
	}
	if a := restored.Alarms(); len(a) != 0 {
		t.Fatalf("restored alarms %v", a)
	}
	resp, err := restored.Store().Range(&pb.RangeRequest{Key: []byte("k5")})
	if err != nil || len(resp.GetKvs()) != 1 || string(resp.GetKvs()[0].GetValue()) != "19" {
		t.Fatalf("restored k5: %v %v", resp, err)
	}

	damaged := bytes.Clone(stream.Bytes())
	damaged[len(backupMagic)+10] ^= 1
	if err := RestoreBackup(damaged, vfs.NewMem(), "db", false); !errors.Is(err, ErrBackupCorrupt) {
		t.Fatalf("damaged backup: %v, want %v", err, ErrBackupCorrupt)
	}
	if err := RestoreBackup(stream.Bytes()[:stream.Len()-1], vfs.NewMem(), "db", true); !errors.Is(err, ErrBackupCorrupt) {
		t.Fatalf("truncated backup: %v, want %v", err, ErrBackupCorrupt)
	}
}
