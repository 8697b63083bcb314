//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// migrateWorkload is what the etcd under migration holds: the revision it
// compacted at and the one it ended at.
type migrateWorkload struct {
	compactRev, rev int64
}

// writeMigrateWorkload writes, into etcd, puts (plain, binary, with a
// lease, overwritten, in txns), deletes of keys and ranges, a delete at
// exactly the revision then compacted, a revoked lease, and more writes
// after the compaction.
func writeMigrateWorkload(t *testing.T, cli *clientv3.Client) migrateWorkload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	kept, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := cli.Grant(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		opts := []clientv3.OpOption{}
		switch i % 5 {
		case 1:
			opts = append(opts, clientv3.WithLease(kept.ID))
		case 3:
			opts = append(opts, clientv3.WithLease(revoked.ID))
		}
		must(cli.Put(ctx, fmt.Sprintf("key/%02d", i), fmt.Sprintf("value-%d\x00\xff", i), opts...))
	}
	for i := 0; i < 40; i += 3 {
		must(cli.Put(ctx, fmt.Sprintf("key/%02d", i), fmt.Sprint("again-", i)))
	}
	must(cli.Txn(ctx).Then(clientv3.OpPut("txn/a", "1"), clientv3.OpPut("txn/b", "2"), clientv3.OpDelete("key/05")).Commit())
	must(cli.Delete(ctx, "key/1", clientv3.WithPrefix()))
	must(cli.Put(ctx, "gone", "soon"))
	del, err := cli.Delete(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	compactRev := del.Header.Revision
	for i := 20; i < 30; i++ {
		must(cli.Put(ctx, fmt.Sprintf("key/%02d", i), fmt.Sprint("after-compaction-", i)))
	}
	must(cli.Compact(ctx, compactRev, clientv3.WithCompactPhysical()))
	must(cli.Revoke(ctx, revoked.ID))
	must(cli.Put(ctx, "key/00", "last", clientv3.WithLease(kept.ID)))
	last, err := cli.Delete(ctx, "txn/b")
	if err != nil {
		t.Fatal(err)
	}
	return migrateWorkload{compactRev: compactRev, rev: last.Header.Revision}
}

// describeKVs writes every field a client sees of each key-value.
func describeMigratedKVs(kvs []*mvccpb.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%q=%q create=%d mod=%d version=%d lease=%x\n", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return b.String()
}

// sameKeysAt checks both systems answer a range over every key at rev
// alike (nothing but the header's IDs and term may differ).
func sameKeysAt(t *testing.T, etcd, cairn *clientv3.Client, rev int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want, werr := etcd.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
	got, gerr := cairn.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev))
	if werr != nil || gerr != nil {
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Fatalf("range at %d: etcd error %v, cairn error %v", rev, werr, gerr)
		}
		return
	}
	if w, g := describeMigratedKVs(want.Kvs), describeMigratedKVs(got.Kvs); w != g || want.Count != got.Count || want.Header.Revision != got.Header.Revision {
		t.Fatalf("range at %d:\netcd (count %d, revision %d):\n%scairn (count %d, revision %d):\n%s",
			rev, want.Count, want.Header.Revision, w, got.Count, got.Header.Revision, g)
	}
}

// sameLeases checks both systems hold the same leases, with the same
// granted TTL and attached keys.
func sameLeases(t *testing.T, etcd, cairn *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	describe := func(cli *clientv3.Client) string {
		leases, err := cli.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range leases.Leases {
			ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
			if err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 0, len(ttl.Keys))
			for _, k := range ttl.Keys {
				keys = append(keys, string(k))
			}
			slices.Sort(keys)
			out = append(out, fmt.Sprintf("%x ttl=%d keys=%q", l.ID, ttl.GrantedTTL, keys))
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	if w, g := describe(etcd), describe(cairn); w != g {
		t.Fatalf("leases:\netcd:\n%s\ncairn:\n%s", w, g)
	}
}

// startMigrated starts a cairn member on the data directory that migrate
// writes with args (the member's name and peer URL added).
func startMigrated(t *testing.T, args ...string) (*Member, string) {
	t.Helper()
	tool := requireBin(t, "CAIRNUTL_BIN")
	m := StartMember(t, KindCairn)
	m.Kill()
	m.DataDir = filepath.Join(t.TempDir(), "migrated")
	args = append([]string{"migrate"}, args...)
	args = append(args, "--data-dir", m.DataDir, "--name", m.Name,
		"--initial-cluster", m.Name+"="+m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL)
	ctx, cancel := context.WithTimeout(context.Background(), restoreToolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("cairnutl %q: %v\n%s", args, err, out)
	}
	m.Start()
	return m, string(out)
}

// TestMigrateFromEtcdSnapshot: an etcd snapshot (etcdctl snapshot save)
// migrated into cairn answers every range at every revision from the
// compacted one on, every watch from there, and every lease question as
// the etcd it came from; older revisions are compacted in both; and the
// member takes writes at the next revision.
func TestMigrateFromEtcdSnapshot(t *testing.T) {
	ctl := requireBin(t, "ETCDCTL_BIN")
	etcd := StartMember(t, KindEtcd)
	ecli := etcd.Client()
	w := writeMigrateWorkload(t, ecli)
	file := filepath.Join(t.TempDir(), "etcd.snapshot")
	runTool(t, ctl, "--endpoints="+etcd.ClientURL, "snapshot", "save", file)

	cairn, out := startMigrated(t, file)
	t.Logf("cairnutl: %s", out)
	ccli := cairn.Client()
	for rev := w.compactRev - 1; rev <= w.rev+1; rev++ {
		sameKeysAt(t, ecli, ccli, rev)
	}
	sameLeases(t, ecli, ccli)
	sameWatch(t, ecli, ccli, w.compactRev+1, w.rev)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ccli.Get(ctx, "key/", clientv3.WithRev(w.compactRev-1)); err == nil || !strings.Contains(err.Error(), rpctypes.ErrCompacted.Error()) {
		t.Fatalf("cairn read below the compacted revision: %v, want %v", err, rpctypes.ErrCompacted)
	}
	put, err := ccli.Put(ctx, "after", "migration")
	if err != nil || put.Header.Revision != w.rev+1 {
		t.Fatalf("put after migration: revision %v, %v; want %d", put, err, w.rev+1)
	}
}

// sameWatch checks a watch of every key from rev to the last revision
// sees the same events (with prev_kv) in both systems.
func sameWatch(t *testing.T, etcd, cairn *clientv3.Client, from, to int64) {
	t.Helper()
	collect := func(cli *clientv3.Client) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var b strings.Builder
		for resp := range cli.Watch(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(from), clientv3.WithPrevKV()) {
			if err := resp.Err(); err != nil {
				t.Fatalf("watch from %d: %v", from, err)
			}
			for _, ev := range resp.Events {
				fmt.Fprintf(&b, "%v %s prev: %s", ev.Type, describeMigratedKVs([]*mvccpb.KeyValue{ev.Kv}), describeMigratedKVs([]*mvccpb.KeyValue{ev.PrevKv}))
				if ev.Kv.ModRevision >= to {
					return b.String()
				}
			}
		}
		t.Fatalf("watch from %d ended before revision %d", from, to)
		return ""
	}
	if w, g := collect(etcd), collect(cairn); w != g {
		t.Fatalf("watch from %d:\netcd:\n%s\ncairn:\n%s", from, w, g)
	}
}

// TestMigrateFromLiveEtcd: a copy through the client API holds the newest
// version of every key at the copied revision, with its revisions, version
// and lease, and the leases; it is compacted at that revision.
func TestMigrateFromLiveEtcd(t *testing.T) {
	etcd := StartMember(t, KindEtcd)
	ecli := etcd.Client()
	w := writeMigrateWorkload(t, ecli)
	cairn, out := startMigrated(t, "--endpoints", etcd.ClientURL, "--page-keys", "7")
	t.Logf("cairnutl: %s", out)
	ccli := cairn.Client()
	sameKeysAt(t, ecli, ccli, w.rev)
	sameLeases(t, ecli, ccli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ccli.Get(ctx, "key/", clientv3.WithRev(w.rev-1)); err == nil || !strings.Contains(err.Error(), rpctypes.ErrCompacted.Error()) {
		t.Fatalf("cairn read below the copied revision: %v, want %v", err, rpctypes.ErrCompacted)
	}
}

// TestMigrateRefusesDamagedSnapshot: a snapshot whose bytes no longer
// match its hash is refused and leaves no data directory.
func TestMigrateRefusesDamagedSnapshot(t *testing.T) {
	ctl := requireBin(t, "ETCDCTL_BIN")
	tool := requireBin(t, "CAIRNUTL_BIN")
	etcd := StartMember(t, KindEtcd)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := etcd.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "etcd.snapshot")
	runTool(t, ctl, "--endpoints="+etcd.ClientURL, "snapshot", "save", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "migrated")
	out, err := exec.CommandContext(ctx, tool, "migrate", file, "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sha256 mismatch") {
		t.Fatalf("migrate of a damaged snapshot: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "member")); !os.IsNotExist(err) {
		t.Fatalf("a failed migration left %s/member: %v", dir, err)
	}
}
