//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// restoreKeys is how many keys the restored cluster holds.
	restoreKeys = 200
	// restoreToolTimeout bounds one save or restore command.
	restoreToolTimeout = 60 * time.Second
)

// restoreToolEnv names the offline tool of each kind: cairnutl restores
// cairn's backups, etcdutl etcd's (the harness self-check).
var restoreToolEnv = map[Kind]string{KindCairn: "CAIRNUTL_BIN", KindEtcd: "ETCDUTL_BIN"}

// TestRestoreThreeMembers: a snapshot saved from one member of a 3-member
// cluster restores, with the offline tool, into a new 3-member cluster
// (each member restored from the same file) that holds the same keys and
// values, answers the same HashKV on every member at the saved revision,
// and takes writes.
func TestRestoreThreeMembers(t *testing.T) {
	kind := subjectKind(t)
	ctl := requireBin(t, "ETCDCTL_BIN")
	tool := requireBin(t, restoreToolEnv[kind])
	c := StartCluster(t, kind, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range restoreKeys {
		if _, err := cli.Put(ctx, fmt.Sprintf("key/%03d", i), fmt.Sprint("value-", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < restoreKeys; i += 10 {
		if _, err := cli.Put(ctx, fmt.Sprintf("key/%03d", i), fmt.Sprint("again-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "key/001"); err != nil {
		t.Fatal(err)
	}
	want, err := cli.Get(ctx, "key/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	rev := want.Header.Revision
	saved, err := cli.HashKV(ctx, c.Members[0].Endpoint(), rev)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snapshot.db")
	runTool(t, ctl, "--endpoints="+c.Members[0].ClientURL, "snapshot", "save", file)

	for _, m := range c.Members {
		m.Kill()
	}
	for _, m := range c.Members {
		m.DataDir = filepath.Join(t.TempDir(), "restored")
		runTool(t, tool, "snapshot", "restore", file, "--data-dir", m.DataDir, "--name", m.Name,
			"--initial-cluster", c.initialCluster(c.Members), "--initial-cluster-token", c.Token,
			"--initial-advertise-peer-urls", m.PeerURL)
	}
	for _, m := range c.Members {
		m.Launch()
	}
	for _, m := range c.Members {
		m.WaitReady()
	}
	cli = c.Client()
	got, err := cli.Get(ctx, "key/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != len(want.Kvs) || got.Header.Revision < rev {
		t.Fatalf("restored %d keys at revision %d, saved %d at %d", len(got.Kvs), got.Header.Revision, len(want.Kvs), rev)
	}
	for i, kv := range got.Kvs {
		if w := want.Kvs[i]; !bytes.Equal(kv.Key, w.Key) || !bytes.Equal(kv.Value, w.Value) || kv.ModRevision != w.ModRevision {
			t.Fatalf("restored %s=%s (mod %d), saved %s=%s (mod %d)", kv.Key, kv.Value, kv.ModRevision, w.Key, w.Value, w.ModRevision)
		}
	}
	for _, m := range c.Members {
		h, err := cli.HashKV(ctx, m.Endpoint(), rev)
		if err != nil {
			t.Fatalf("%s: hashkv: %v", m.Name, err)
		}
		if h.Hash != saved.Hash {
			t.Fatalf("%s: hashkv at %d after restore %x, saved %x", m.Name, rev, h.Hash, saved.Hash)
		}
	}
	if _, err := cli.Put(ctx, "after", "restore"); err != nil {
		t.Fatalf("put after restore: %v", err)
	}
}

func runTool(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), restoreToolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(bin), args, err, out)
	}
}
