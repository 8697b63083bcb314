//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchScript runs the same writes and watches against one member and
// returns a transcript of what the watchers received, with member-specific
// ids left out, so etcd's and cairn's can be compared line by line.
func watchScript(t *testing.T, m *Member) []string {
	c := m.Client()
	ctx := ctxTimeout(t, 30*time.Second)
	var out []string
	record := func(name string, r clientv3.WatchResponse) {
		line := fmt.Sprintf("%s: rev=%d canceled=%v compact=%d progress=%v err=%v", name, r.Header.Revision,
			r.Canceled, r.CompactRevision, r.IsProgressNotify(), r.Err())
		for _, ev := range r.Events {
			line += fmt.Sprintf(" | %s %s=%s@%d/%d/%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.CreateRevision, ev.Kv.ModRevision, ev.Kv.Version)
			if ev.PrevKv != nil {
				line += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
			}
		}
		out = append(out, line)
	}
	put := func(k, v string) {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	nextResp := func(ch clientv3.WatchChan) clientv3.WatchResponse {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no watch response")
		}
		return clientv3.WatchResponse{}
	}
	put("a/1", "1")
	put("a/2", "1")
	put("b", "1")
	if _, err := c.Delete(ctx, "a/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("a/1", "2"), clientv3.OpPut("a/3", "2"), clientv3.OpDelete("b")).Commit(); err != nil {
		t.Fatal(err)
	}
	history := c.Watch(ctx, "a/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
	record("history", nextResp(history))
	live := c.Watch(ctx, "", clientv3.WithFromKey(), clientv3.WithPrevKV())
	onlyDeletes := c.Watch(ctx, "a/", clientv3.WithPrefix(), clientv3.WithFilterPut())
	key := c.Watch(ctx, "a/1", clientv3.WithRev(1))
	record("key", nextResp(key))
	put("a/1", "3")
	if _, err := c.Delete(ctx, "a/3"); err != nil {
		t.Fatal(err)
	}
	record("live", nextResp(live))
	record("live", nextResp(live))
	record("deletes", nextResp(onlyDeletes))
	record("key", nextResp(key))
	if err := c.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	record("progress", nextResp(live))

	if _, err := c.Compact(ctx, 5); err != nil {
		t.Fatal(err)
	}
	record("compacted", nextResp(c.Watch(ctx, "a/", clientv3.WithPrefix(), clientv3.WithRev(4))))
	record("at-compact", nextResp(c.Watch(ctx, "a/", clientv3.WithPrefix(), clientv3.WithRev(6))))

	// A txn that puts a key and then deletes every key from it (etcd's txn
	// check lets a from-key delete overlap a put): the delete's prev_kv is
	// the version before the txn, read at its revision minus one. Events
	// only, as catch-ups may group them in responses differently.
	first, err := c.Put(ctx, "c", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("c", "2"), clientv3.OpDelete("c", clientv3.WithFromKey())).Commit(); err != nil {
		t.Fatal(err)
	}
	txnWatch := c.Watch(ctx, "c", clientv3.WithPrevKV(), clientv3.WithRev(first.Header.Revision))
	line := "txn-prev:"
	for events := 0; events < 3; {
		for _, ev := range nextResp(txnWatch).Events {
			events++
			line += fmt.Sprintf(" | %s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			if ev.PrevKv != nil {
				line += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
			}
		}
	}
	out = append(out, line)
	return out
}

// TestWatchSameAsEtcd runs one watch script against etcd and cairn and
// compares the transcripts.
func TestWatchSameAsEtcd(t *testing.T) {
	got := map[Kind][]string{}
	forEachKind(t, func(t *testing.T, kind Kind) {
		got[kind] = watchScript(t, StartMember(t, kind))
	})
	etcd, cairn := got[KindEtcd], got[KindCairn]
	if len(etcd) == 0 || len(cairn) == 0 {
		return // a side was skipped or failed
	}
	if strings.Join(etcd, "\n") != strings.Join(cairn, "\n") {
		t.Errorf("transcripts differ\n--- etcd\n%s\n--- cairn\n%s", strings.Join(etcd, "\n"), strings.Join(cairn, "\n"))
	}
}

// rawWatchScript compares the control responses of the raw Watch stream:
// created with client and server ids, duplicate id, empty range, negative
// start revision, cancel, cancel of an unknown id.
func rawWatchScript(t *testing.T, m *Member) []string {
	c := m.Client()
	ctx := ctxTimeout(t, 30*time.Second)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	stream, err := etcdserverpb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *etcdserverpb.WatchRequest) {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	create := func(cr *etcdserverpb.WatchCreateRequest) {
		send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: cr}})
	}
	var out []string
	recv := func() {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("id=%d created=%v canceled=%v reason=%q compact=%d rev=%d events=%d fragment=%v",
			r.WatchId, r.Created, r.Canceled, r.CancelReason, r.CompactRevision, r.Header.GetRevision(), len(r.Events), r.Fragment))
	}
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k")})
	recv()
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k"), WatchId: 5})
	recv()
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k"), WatchId: 5})
	recv()
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("z"), RangeEnd: []byte("a")})
	recv()
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k"), StartRevision: -1})
	recv()
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2, PrevKv: true})
	recv() // created
	recv() // the put at 2
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CancelRequest{CancelRequest: &etcdserverpb.WatchCancelRequest{WatchId: 42}}})
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CancelRequest{CancelRequest: &etcdserverpb.WatchCancelRequest{WatchId: 5}}})
	recv()
	send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_ProgressRequest{ProgressRequest: &etcdserverpb.WatchProgressRequest{}}})
	recv()
	// Compacted start on the raw stream: the exact cancel response.
	if _, err := c.Put(ctx, "k", "w"); err != nil {
		t.Fatal(err)
	}
	recv() // events for watches 0 and 1, in no guaranteed order
	recv()
	slices.Sort(out[len(out)-2:])
	if _, err := c.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	create(&etcdserverpb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2, WatchId: 9})
	recv()
	recv()
	return out
}

func TestWatchControlResponsesSameAsEtcd(t *testing.T) {
	got := map[Kind][]string{}
	forEachKind(t, func(t *testing.T, kind Kind) {
		got[kind] = rawWatchScript(t, StartMember(t, kind))
	})
	etcd, cairn := got[KindEtcd], got[KindCairn]
	if len(etcd) == 0 || len(cairn) == 0 {
		return
	}
	if strings.Join(etcd, "\n") != strings.Join(cairn, "\n") {
		t.Errorf("control responses differ\n--- etcd\n%s\n--- cairn\n%s", strings.Join(etcd, "\n"), strings.Join(cairn, "\n"))
	}
}

// TestWatchEtcdctl: `etcdctl watch --rev` prints the same lines against
// both.
func TestWatchEtcdctl(t *testing.T) {
	ctl := requireBin(t, "ETCDCTL_BIN")
	got := map[Kind]string{}
	forEachKind(t, func(t *testing.T, kind Kind) {
		m := StartMember(t, kind)
		c := m.Client()
		ctx := ctxTimeout(t, 30*time.Second)
		for i, k := range []string{"w/a", "w/b", "w/a"} {
			if _, err := c.Put(ctx, k, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Delete(ctx, "w/b"); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, ctl, "--endpoints", m.ClientURL, "watch", "--prefix", "--prev-kv", "--rev", "2", "w/")
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, _ := cmd.Output() // killed by the timeout: watch never ends by itself
		got[kind] = string(out)
		if !strings.Contains(got[kind], "DELETE\nw/b") {
			t.Errorf("etcdctl watch printed %q", got[kind])
		}
	})
	if got[KindEtcd] != "" && got[KindCairn] != "" && got[KindEtcd] != got[KindCairn] {
		t.Errorf("etcdctl watch differs\n--- etcd\n%s\n--- cairn\n%s", got[KindEtcd], got[KindCairn])
	}
}
