//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactEdgeLastRevision is the store revision after compactEdgeWrites.
const compactEdgeLastRevision = 7

// compactEdgeWrites lays down a history whose revisions are of every kind a
// compaction can land on: 4 is only a delete, 5 only a put, 6 a put and a
// delete in one transaction.
func compactEdgeWrites(t *testing.T, c *clientv3.Client) {
	ctx := ctxTimeout(t, 30*time.Second)
	steps := []func() error{
		func() error { _, err := c.Put(ctx, "a", "1"); return err }, // 2
		func() error { _, err := c.Put(ctx, "b", "1"); return err }, // 3
		func() error { _, err := c.Delete(ctx, "a"); return err },   // 4
		func() error { _, err := c.Put(ctx, "b", "2"); return err }, // 5
		func() error { // 6
			_, err := c.Txn(ctx).Then(clientv3.OpPut("c", "1"), clientv3.OpDelete("b")).Commit()
			return err
		},
		func() error { _, err := c.Put(ctx, "a", "2"); return err }, // 7
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// watchFromCompactScript compacts at a revision with only a delete, then only
// a put, then both, and after each watches every key from exactly the compact
// revision, with and without prev_kv. The transcript lists the events received
// up to the last revision, whatever responses carried them.
func watchFromCompactScript(t *testing.T, m *Member) []string {
	c := m.Client()
	compactEdgeWrites(t, c)
	ctx := ctxTimeout(t, 60*time.Second)
	var out []string
	for _, compactRevision := range []int64{4, 5, 6} {
		if _, err := c.Compact(ctx, compactRevision, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		for _, prevKV := range []bool{false, true} {
			opts := []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithRev(compactRevision)}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			ch := c.Watch(ctx, "", opts...)
			line := fmt.Sprintf("compact=%d prev_kv=%v:", compactRevision, prevKV)
			line += collectThrough(t, ch, compactEdgeLastRevision)
			out = append(out, line)
		}
	}
	return out
}

// collectThrough reads ch until it has delivered an event at lastRevision and
// returns the events as text.
func collectThrough(t *testing.T, ch clientv3.WatchChan, lastRevision int64) string {
	var line strings.Builder
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if r.Canceled || r.Err() != nil {
				fmt.Fprintf(&line, " canceled compact=%d err=%v", r.CompactRevision, r.Err())
				return line.String()
			}
			done := false
			for _, ev := range r.Events {
				fmt.Fprintf(&line, " | %s %s=%s@%d/%d/%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.CreateRevision, ev.Kv.ModRevision, ev.Kv.Version)
				if ev.PrevKv != nil {
					fmt.Fprintf(&line, " prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
				}
				done = done || ev.Kv.ModRevision >= lastRevision
			}
			if done {
				return line.String()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event at revision %d; so far:%s", lastRevision, line.String())
		}
	}
}

// TestWatchFromCompactRevisionSameAsEtcd pins what a watch from exactly the
// compact revision delivers (issue 15) against etcd.
func TestWatchFromCompactRevisionSameAsEtcd(t *testing.T) {
	got := map[Kind][]string{}
	forEachKind(t, func(t *testing.T, kind Kind) {
		got[kind] = watchFromCompactScript(t, StartMember(t, kind))
	})
	etcd, cairn := got[KindEtcd], got[KindCairn]
	if len(etcd) == 0 || len(cairn) == 0 {
		return
	}
	t.Logf("etcd:\n%s", strings.Join(etcd, "\n"))
	if strings.Join(etcd, "\n") != strings.Join(cairn, "\n") {
		t.Errorf("transcripts differ\n--- etcd\n%s\n--- cairn\n%s", strings.Join(etcd, "\n"), strings.Join(cairn, "\n"))
	}
}
