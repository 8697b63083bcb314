//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// kvString renders a KeyValue with every field a client can see.
func kvString(kv *mvccpb.KeyValue) string {
	return fmt.Sprintf("%q=%q c=%d m=%d v=%d l=%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func kvStrings(kvs []*mvccpb.KeyValue) []string {
	out := []string{}
	for _, kv := range kvs {
		out = append(out, kvString(kv))
	}
	return out
}

// kv builds the expected rendering of a KeyValue with no lease.
func kv(key, value string, create, mod, version int64) string {
	return kvString(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), CreateRevision: create, ModRevision: mod, Version: version})
}

func expectKVs(t *testing.T, what string, got []*mvccpb.KeyValue, want ...string) {
	t.Helper()
	if g := kvStrings(got); !slices.Equal(g, want) {
		t.Errorf("%s: kvs\n got  %s\n want %s", what, strings.Join(g, "\n      "), strings.Join(want, "\n      "))
	}
}

func expectGet(t *testing.T, what string, resp *clientv3.GetResponse, err error, rev, count int64, more bool, want ...string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: unexpected error %v", what, err)
		return
	}
	if resp.Header.Revision != rev || resp.Count != count || resp.More != more {
		t.Errorf("%s: got header.revision=%d count=%d more=%v, want %d %d %v", what, resp.Header.Revision, resp.Count, resp.More, rev, count, more)
	}
	expectKVs(t, what, resp.Kvs, want...)
}

func expectRev(t *testing.T, what string, got int64, err error, want int64) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: unexpected error %v", what, err)
	} else if got != want {
		t.Errorf("%s: header.revision %d, want %d", what, got, want)
	}
}

// expectErr checks err is the rpctypes error want, the value the client
// derives from the server's gRPC status (matched on the exact message).
func expectErr(t *testing.T, what string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %T(%v), want %v", what, err, err, want)
	}
}

// Nil-safe header revisions of the client's response types.
func putRev(r *clientv3.PutResponse) int64 {
	return (*etcdserverpb.PutResponse)(r).GetHeader().GetRevision()
}
func delRev(r *clientv3.DeleteResponse) int64 {
	return (*etcdserverpb.DeleteRangeResponse)(r).GetHeader().GetRevision()
}
func txnRev(r *clientv3.TxnResponse) int64 {
	return (*etcdserverpb.TxnResponse)(r).GetHeader().GetRevision()
}
func compactRev(r *clientv3.CompactResponse) int64 {
	return (*etcdserverpb.CompactionResponse)(r).GetHeader().GetRevision()
}

func putOps(prefix string, n int) []clientv3.Op {
	ops := make([]clientv3.Op, n)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprintf("%s%03d", prefix, i), "v")
	}
	return ops
}

// TestClientInterop drives a fresh member with the official Go client and
// checks every response field against what etcd returns (revisions start at 1;
// each write below bumps the revision by one).
func TestClientInterop(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		m := StartMember(t, kind)
		c := m.Client()
		ctx := ctxTimeout(t, 30*time.Second)

		// Puts and point reads.
		p, err := c.Put(ctx, "foo", "bar")
		expectRev(t, "put foo", putRev(p), err, 2)
		if p.PrevKv != nil {
			t.Errorf("put foo without prev_kv returned prev_kv %v", p.PrevKv)
		}
		g, err := c.Get(ctx, "foo")
		expectGet(t, "get foo", g, err, 2, 1, false, kv("foo", "bar", 2, 2, 1))
		p, err = c.Put(ctx, "foo", "baz", clientv3.WithPrevKV())
		expectRev(t, "put foo prev_kv", putRev(p), err, 3)
		if err == nil {
			if p.PrevKv == nil {
				t.Errorf("put foo with prev_kv: no prev_kv")
			} else {
				expectKVs(t, "put foo prev_kv", []*mvccpb.KeyValue{p.PrevKv}, kv("foo", "bar", 2, 2, 1))
			}
		}
		for i, k := range []string{"foo/a", "foo/b", "foo/c", "fop", "zoo"} {
			p, err := c.Put(ctx, k, fmt.Sprintf("%d", 9-i))
			expectRev(t, "put "+k, putRev(p), err, int64(4+i))
		}
		g, err = c.Get(ctx, "missing")
		expectGet(t, "get missing", g, err, 8, 0, false)

		// Ranges.
		fooA, fooB, fooC := kv("foo/a", "9", 4, 4, 1), kv("foo/b", "8", 5, 5, 1), kv("foo/c", "7", 6, 6, 1)
		foo, fop, zoo := kv("foo", "baz", 2, 3, 2), kv("fop", "6", 7, 7, 1), kv("zoo", "5", 8, 8, 1)
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix())
		expectGet(t, "prefix foo", g, err, 8, 4, false, foo, fooA, fooB, fooC)
		g, err = c.Get(ctx, "foo/", clientv3.WithPrefix(), clientv3.WithLimit(2))
		expectGet(t, "prefix foo/ limit 2", g, err, 8, 3, true, fooA, fooB)
		g, err = c.Get(ctx, "foo/b", clientv3.WithFromKey())
		expectGet(t, "from-key foo/b", g, err, 8, 4, false, fooB, fooC, fop, zoo)
		g, err = c.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithLimit(1))
		expectGet(t, "from-key \\x00 limit 1", g, err, 8, 6, true, foo)
		g, err = c.Get(ctx, "foo", clientv3.WithRange("fop"))
		expectGet(t, "range [foo, fop)", g, err, 8, 4, false, foo, fooA, fooB, fooC)
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(2))
		expectGet(t, "prefix foo sort mod desc limit 2", g, err, 8, 4, true, fooC, fooB)
		g, err = c.Get(ctx, "f", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend))
		expectGet(t, "prefix f sort value asc", g, err, 8, 5, false, fop, fooC, fooB, fooA, foo)
		g, err = c.Get(ctx, "f", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend), clientv3.WithLimit(1))
		expectGet(t, "prefix f sort version desc limit 1", g, err, 8, 5, true, foo)
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		expectGet(t, "prefix foo sort key desc", g, err, 8, 4, false, fooC, fooB, fooA, foo)
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithCountOnly())
		expectGet(t, "prefix foo count only", g, err, 8, 4, false)
		g, err = c.Get(ctx, "foo/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		expectGet(t, "prefix foo/ keys only", g, err, 8, 3, false, kv("foo/a", "", 4, 4, 1), kv("foo/b", "", 5, 5, 1), kv("foo/c", "", 6, 6, 1))
		g, err = c.Get(ctx, "foo", clientv3.WithRev(2))
		expectGet(t, "get foo rev 2", g, err, 8, 1, false, kv("foo", "bar", 2, 2, 1))
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithRev(4))
		expectGet(t, "prefix foo rev 4", g, err, 8, 2, false, kv("foo", "baz", 2, 3, 2), fooA)
		g, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithMinModRev(5), clientv3.WithMaxModRev(6))
		expectGet(t, "prefix foo mod in [5,6]", g, err, 8, 4, false, fooB, fooC)
		g, err = c.Get(ctx, "foo", clientv3.WithSerializable())
		expectGet(t, "get foo serializable", g, err, 8, 1, false, foo)

		// Deletes.
		d, err := c.Delete(ctx, "foo/a")
		expectRev(t, "delete foo/a", delRev(d), err, 9)
		if err == nil && d.Deleted != 1 {
			t.Errorf("delete foo/a: deleted %d, want 1", d.Deleted)
		}
		d, err = c.Delete(ctx, "foo/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		expectRev(t, "delete prefix foo/", delRev(d), err, 10)
		if err == nil {
			if d.Deleted != 2 {
				t.Errorf("delete prefix foo/: deleted %d, want 2", d.Deleted)
			}
			expectKVs(t, "delete prefix foo/ prev_kvs", d.PrevKvs, fooB, fooC)
		}
		d, err = c.Delete(ctx, "nothing")
		expectRev(t, "delete missing key (no new revision)", delRev(d), err, 10)
		if err == nil && d.Deleted != 0 {
			t.Errorf("delete missing: deleted %d, want 0", d.Deleted)
		}
		g, err = c.Get(ctx, "foo/a", clientv3.WithRev(9))
		expectGet(t, "get deleted foo/a at rev 9", g, err, 10, 0, false)
		p, err = c.Put(ctx, "foo/a", "again")
		expectRev(t, "recreate foo/a", putRev(p), err, 11)
		g, err = c.Get(ctx, "foo/a")
		expectGet(t, "recreated foo/a has version 1", g, err, 11, 1, false, kv("foo/a", "again", 11, 11, 1))

		// Transactions: the Kubernetes compare-and-swap on mod_revision.
		tx, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("foo"), "=", 3)).
			Then(clientv3.OpPut("foo", "cas1")).Else(clientv3.OpGet("foo")).Commit()
		expectRev(t, "cas with current mod_revision", txnRev(tx), err, 12)
		if err == nil && (!tx.Succeeded || len(tx.Responses) != 1 || tx.Responses[0].GetResponsePut() == nil) {
			t.Errorf("cas with current mod_revision: succeeded=%v responses=%v", tx.Succeeded, tx.Responses)
		}
		tx, err = c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("foo"), "=", 3)).
			Then(clientv3.OpPut("foo", "cas2")).Else(clientv3.OpGet("foo")).Commit()
		expectRev(t, "cas with stale mod_revision", txnRev(tx), err, 12)
		if err == nil {
			if tx.Succeeded || len(tx.Responses) != 1 || tx.Responses[0].GetResponseRange() == nil {
				t.Errorf("cas with stale mod_revision: succeeded=%v responses=%v", tx.Succeeded, tx.Responses)
			} else {
				expectKVs(t, "cas else branch", tx.Responses[0].GetResponseRange().Kvs, kv("foo", "cas1", 2, 12, 3))
			}
		}
		tx, err = c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("newkey"), "=", 0)).
			Then(clientv3.OpPut("newkey", "created")).Commit()
		expectRev(t, "create-if-absent", txnRev(tx), err, 13)
		if err == nil && !tx.Succeeded {
			t.Errorf("create-if-absent: not succeeded")
		}
		tx, err = c.Txn(ctx).If(
			clientv3.Compare(clientv3.Value("foo"), "=", "cas1"),
			clientv3.Compare(clientv3.Version("foo"), ">", 2),
			clientv3.Compare(clientv3.CreateRevision("foo"), "<", 3),
			clientv3.Compare(clientv3.Value("zoo"), "!=", "x"),
		).Then(clientv3.OpGet("foo", clientv3.WithKeysOnly()), clientv3.OpDelete("zoo", clientv3.WithPrevKV()),
			clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpGet("zoo")}, nil)).Commit()
		expectRev(t, "txn all compare targets", txnRev(tx), err, 14)
		if err == nil {
			if !tx.Succeeded || len(tx.Responses) != 3 {
				t.Errorf("txn all compare targets: succeeded=%v responses=%v", tx.Succeeded, tx.Responses)
			} else {
				expectKVs(t, "txn get keys-only", tx.Responses[0].GetResponseRange().Kvs, kv("foo", "", 2, 12, 3))
				dr := tx.Responses[1].GetResponseDeleteRange()
				if dr == nil || dr.Deleted != 1 {
					t.Errorf("txn delete zoo: %v", dr)
				} else {
					expectKVs(t, "txn delete zoo prev_kvs", dr.PrevKvs, zoo)
				}
				nested := tx.Responses[2].GetResponseTxn()
				if nested == nil || !nested.Succeeded || len(nested.Responses) != 1 {
					t.Errorf("nested txn: %v", nested)
				} else {
					expectKVs(t, "nested txn sees the delete", nested.Responses[0].GetResponseRange().Kvs)
				}
			}
		}

		// Compaction.
		_, err = c.Get(ctx, "foo", clientv3.WithRev(100))
		expectErr(t, "get at future revision", err, rpctypes.ErrFutureRev)
		_, err = c.Compact(ctx, 100)
		expectErr(t, "compact future revision", err, rpctypes.ErrFutureRev)
		cr, err := c.Compact(ctx, 5)
		expectRev(t, "compact 5", compactRev(cr), err, 14)
		_, err = c.Get(ctx, "foo", clientv3.WithRev(4))
		expectErr(t, "get at compacted revision 4", err, rpctypes.ErrCompacted)
		g, err = c.Get(ctx, "foo", clientv3.WithRev(5))
		expectGet(t, "get at compaction revision 5", g, err, 14, 1, false, kv("foo", "baz", 2, 3, 2))
		_, err = c.Compact(ctx, 5)
		expectErr(t, "compact again at 5", err, rpctypes.ErrCompacted)
		cr, err = c.Compact(ctx, 7, clientv3.WithCompactPhysical())
		expectRev(t, "compact 7 physical", compactRev(cr), err, 14)
		_, err = c.Get(ctx, "foo", clientv3.WithPrefix(), clientv3.WithRev(6))
		expectErr(t, "get at compacted revision 6", err, rpctypes.ErrCompacted)

		// Bad requests.
		_, err = c.Put(ctx, "", "v")
		expectErr(t, "put empty key", err, rpctypes.ErrEmptyKey)
		_, err = c.Get(ctx, "")
		expectErr(t, "get empty key", err, rpctypes.ErrEmptyKey)
		_, err = c.Delete(ctx, "")
		expectErr(t, "delete empty key", err, rpctypes.ErrEmptyKey)
		_, err = c.Txn(ctx).Then(clientv3.OpPut("dup", "1"), clientv3.OpPut("dup", "2")).Commit()
		expectErr(t, "txn duplicate put", err, rpctypes.ErrDuplicateKey)
		_, err = c.Txn(ctx).Then(clientv3.OpPut("dup/x", "1"), clientv3.OpDelete("dup/", clientv3.WithPrefix())).Commit()
		expectErr(t, "txn put inside deleted range", err, rpctypes.ErrDuplicateKey)
		_, err = c.Put(ctx, "absent", "", clientv3.WithIgnoreValue())
		expectErr(t, "ignore_value on missing key", err, rpctypes.ErrKeyNotFound)
		_, err = c.Put(ctx, "foo", "x", clientv3.WithIgnoreValue())
		expectErr(t, "ignore_value with a value", err, rpctypes.ErrValueProvided)
		_, err = c.Put(ctx, "foo", "x", clientv3.WithLease(clientv3.LeaseID(0x1234)))
		expectErr(t, "put with unknown lease", err, rpctypes.ErrLeaseNotFound)
		_, err = c.Txn(ctx).Then(putOps("many/", 129)...).Commit()
		expectErr(t, "txn with 129 ops (default max 128)", err, rpctypes.ErrTooManyOps)
		g, err = c.Get(ctx, "foo")
		expectGet(t, "bad requests wrote nothing", g, err, 14, 1, false, kv("foo", "cas1", 2, 12, 3))
		tx, err = c.Txn(ctx).Then(putOps("many/", 128)...).Commit()
		expectRev(t, "txn with 128 ops", txnRev(tx), err, 15)
		p, err = c.Put(ctx, "foo", "", clientv3.WithIgnoreValue())
		expectRev(t, "ignore_value keeps the value", putRev(p), err, 16)
		g, err = c.Get(ctx, "foo")
		expectGet(t, "after ignore_value", g, err, 16, 1, false, kv("foo", "cas1", 2, 16, 4))
	})
}

// TestClientInteropLimits checks --max-txn-ops and --max-request-bytes.
func TestClientInteropLimits(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		m := StartMember(t, kind, "--max-txn-ops", "4", "--max-request-bytes", "4096")
		c := m.Client()
		ctx := ctxTimeout(t, 30*time.Second)

		tx, err := c.Txn(ctx).Then(putOps("k", 4)...).Commit()
		expectRev(t, "txn with 4 ops (max 4)", txnRev(tx), err, 2)
		_, err = c.Txn(ctx).Then(putOps("k", 5)...).Commit()
		expectErr(t, "txn with 5 ops (max 4)", err, rpctypes.ErrTooManyOps)
		_, err = c.Txn(ctx).If(
			clientv3.Compare(clientv3.Version("a"), "=", 0), clientv3.Compare(clientv3.Version("b"), "=", 0),
			clientv3.Compare(clientv3.Version("c"), "=", 0), clientv3.Compare(clientv3.Version("d"), "=", 0),
			clientv3.Compare(clientv3.Version("e"), "=", 0)).Commit()
		expectErr(t, "txn with 5 compares (max 4)", err, rpctypes.ErrTooManyOps)

		p, err := c.Put(ctx, "small", strings.Repeat("x", 3000))
		expectRev(t, "put 3000-byte value (max request 4096)", putRev(p), err, 3)
		_, err = c.Put(ctx, "big", strings.Repeat("x", 5000))
		expectErr(t, "put 5000-byte value (max request 4096)", err, rpctypes.ErrRequestTooLarge)
		g, err := c.Get(ctx, "big")
		expectGet(t, "too-large put wrote nothing", g, err, 3, 0, false)
	})
}
