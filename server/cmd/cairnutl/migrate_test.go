package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"
)

// boltRev encodes an etcd revision key, with the tombstone mark if asked.
func boltRev(main, sub int64, tombstone bool) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(main))
	k = append(k, boltRevisionSeparator)
	k = binary.BigEndian.AppendUint64(k, uint64(sub))
	if tombstone {
		k = append(k, boltTombstoneMark)
	}
	return k
}

// writeEtcdDB writes a small database in etcd's layout (the end-to-end
// tests read real ones): a@2, a@3, b@4 with lease 0x55, a deleted at 5,
// compacted at 4, and returns its path; with a hash appended when asked,
// as etcdctl snapshot save writes it.
func writeEtcdDB(t *testing.T, withHash bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "etcd.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		keys, err := tx.CreateBucket(boltKeyBucket)
		if err != nil {
			return err
		}
		for _, e := range []struct {
			k  []byte
			kv *mvccpb.KeyValue
		}{
			{boltRev(2, 0, false), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}},
			{boltRev(3, 0, false), &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("2"), CreateRevision: 2, ModRevision: 3, Version: 2}},
			{boltRev(4, 0, false), &mvccpb.KeyValue{Key: []byte("b"), Value: []byte("3"), CreateRevision: 4, ModRevision: 4, Version: 1, Lease: 0x55}},
			{boltRev(5, 0, true), &mvccpb.KeyValue{Key: []byte("a")}},
		} {
			if err := keys.Put(e.k, marshal(e.kv)); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucket(boltMetaBucket)
		if err != nil {
			return err
		}
		if err := meta.Put(boltFinishedCompact, boltRev(4, 0, false)); err != nil {
			return err
		}
		leases, err := tx.CreateBucket(boltLeaseBucket)
		if err != nil {
			return err
		}
		return leases.Put(binary.BigEndian.AppendUint64(nil, 0x55), marshal(&leasepb.Lease{ID: 0x55, TTL: 60}))
	})
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if !withHash {
		return path
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data)%boltHashAlignBytes != 0 {
		t.Fatalf("bbolt file of %d bytes, not a multiple of %d", len(data), boltHashAlignBytes)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(path, append(data, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runMigrate(args ...string) (stdout, stderr string, status int) {
	var out, errOut bytes.Buffer
	status = run(append([]string{"migrate"}, args...), &out, &errOut)
	return out.String(), errOut.String(), status
}

// TestMigrateEtcdDatabase: a database with and without the snapshot hash
// migrates, with its revision, compaction, puts, deletes and leases.
func TestMigrateEtcdDatabase(t *testing.T) {
	for _, withHash := range []bool{false, true} {
		file := writeEtcdDB(t, withHash)
		dir := filepath.Join(t.TempDir(), "m.cairn")
		out, errOut, status := runMigrate(file, "--data-dir", dir)
		if status != 0 {
			t.Fatalf("hash %v: status %d: %s", withHash, status, errOut)
		}
		want := "revision 5, compacted at 4, 3 puts, 1 deletes, 1 leases\n"
		if !strings.HasSuffix(out, want) {
			t.Fatalf("hash %v: printed %q, want it to end with %q", withHash, out, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "member")); err != nil {
			t.Fatalf("no member directory: %v", err)
		}
		if _, errOut, status := runMigrate(file, "--data-dir", dir); status == 0 || !strings.Contains(errOut, "exists") {
			t.Fatalf("second migrate into the same directory: status %d, %s", status, errOut)
		}
	}
}

// TestMigrateRefusals: a damaged hash, a cairn backup, a file that is not
// an etcd database, and two sources at once are refused, and a failed
// migration leaves no member directory.
func TestMigrateRefusals(t *testing.T) {
	damaged := writeEtcdDB(t, true)
	data, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(damaged, data, 0o600); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "cairn.backup")
	if err := os.WriteFile(backup, append([]byte(cairnBackupMagic), make([]byte, 512)...), 0o600); err != nil {
		t.Fatal(err)
	}
	notEtcd := filepath.Join(t.TempDir(), "empty.db")
	db, err := bbolt.Open(notEtcd, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{damaged}, "sha256 mismatch"},
		{[]string{backup}, "cairn backup"},
		{[]string{notEtcd}, "not an etcd database"},
		{[]string{damaged, "--endpoints", "http://127.0.0.1:1"}, "one etcd database file or --endpoints"},
		{[]string{}, "one etcd database file or --endpoints"},
	} {
		dir := filepath.Join(t.TempDir(), "m.cairn")
		_, errOut, status := runMigrate(append(tc.args, "--data-dir", dir)...)
		if status == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("migrate %q: status %d, %q; want an error with %q", tc.args, status, errOut, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "member")); !os.IsNotExist(err) {
			t.Errorf("migrate %q left %s/member: %v", tc.args, dir, err)
		}
	}
	if _, errOut, status := runMigrate(damaged, "--skip-hash-check", "--data-dir", filepath.Join(t.TempDir(), "m")); status != 0 {
		t.Errorf("--skip-hash-check: status %d, %s", status, errOut)
	}
}
