package member

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cockroachdb/pebble/v2/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestSnapshotRestoreStatusDefrag: a backup streamed by Maintenance.Snapshot
// describes itself (revision, keys), restores into a data directory a
// member starts from with the same keys, and a stopped member's database
// defragments offline.
func TestSnapshotRestoreStatusDefrag(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	for i := range 30 {
		if _, err := c.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := io.ReadAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	st, err := node.StatBackup(backup, false)
	if err != nil || st.Revision != 31 || st.TotalKey != 30 || st.TotalSize != int64(len(backup)) {
		t.Fatalf("backup status %+v, %v", st, err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	cfg := testConfig(dir, etcdapi.Limits{})
	if err := Restore(cfg, backup, false); err != nil {
		t.Fatal(err)
	}
	if err := Restore(cfg, backup, false); err == nil {
		t.Fatal("a restore over an existing member's data directory was accepted")
	}
	damaged := bytes.Clone(backup)
	damaged[100] ^= 1
	if err := Restore(testConfig(filepath.Join(t.TempDir(), "damaged"), etcdapi.Limits{}), damaged, false); err == nil {
		t.Fatal("a damaged backup was restored")
	}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientv3.New(clientv3.Config{Endpoints: []string{m.listeners[0].Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		m.Stop(time.Second)
		t.Fatal(err)
	}
	resp, err := rc.Get(ctx, "k", clientv3.WithPrefix())
	rc.Close()
	if stopErr := m.Stop(time.Second); stopErr != nil {
		t.Fatal(stopErr)
	}
	if err != nil || len(resp.Kvs) != 30 || string(resp.Kvs[29].Value) != "29" || resp.Header.Revision < 31 {
		t.Fatalf("restored member: %v %v", resp, err)
	}
	if err := node.DefragmentOffline(vfs.Default, filepath.Join(dir, "member")); err != nil {
		t.Fatal(err)
	}
}
