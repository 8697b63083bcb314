package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/internal/cache.(*Cache).releaseLoop"))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testConfig(dir string, limits etcdapi.Limits) Config {
	return Config{
		Name:                     "m1",
		DataDir:                  dir,
		ListenClientURLs:         []string{"http://127.0.0.1:0"},
		AdvertiseClientURLs:      []string{"http://127.0.0.1:0"},
		InitialAdvertisePeerURLs: []string{"http://127.0.0.1:2380"},
		TickInterval:             10 * time.Millisecond,
		ElectionTimeout:          100 * time.Millisecond,
		Limits:                   limits,
		Logger:                   quiet,
	}
}

// startMember starts a member on dir listening on a free loopback port
// (listenURL accepts port 0; the bound address is the listener's) and a
// client for it. Cleanup closes the client and stops the member.
func startMember(t *testing.T, dir string, limits etcdapi.Limits) (*Member, *clientv3.Client) {
	t.Helper()
	m, err := Start(testConfig(dir, limits))
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.listeners[0].Addr().String()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		m.Stop(time.Second)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := m.Stop(time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	waitPublished(t, m)
	return m, c
}

// waitPublished waits until the member has published its name through
// raft, so tests that count raft entries start from a quiet log.
func waitPublished(t *testing.T, m *Member) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m.published(&membershippb.Attributes{Name: m.cfg.Name, ClientUrls: m.cfg.AdvertiseClientURLs}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("member did not publish its attributes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ctxT bounds a test's requests: a guard against a hang, long enough
// for a loaded machine under the race detector.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKVThroughTheEtcdClient(t *testing.T) {
	m, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	put, err := c.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	h := put.Header
	if h.Revision != 2 || h.ClusterId != m.Identity.ClusterID || h.MemberId != m.Identity.MemberID ||
		h.ClusterId == 0 || h.MemberId == 0 || h.RaftTerm == 0 {
		t.Fatalf("put header %v, identity %+v", h, m.Identity)
	}
	put, err = c.Put(ctx, "a", "2", clientv3.WithPrevKV())
	if err != nil || put.Header.Revision != 3 || put.PrevKv == nil || string(put.PrevKv.Value) != "1" {
		t.Fatalf("second put: %v, %v", put, err)
	}
	if _, err := c.Put(ctx, "b", "B"); err != nil {
		t.Fatal(err)
	}
	get, err := c.Get(ctx, "a")
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "2" || get.Kvs[0].Version != 2 ||
		get.Kvs[0].CreateRevision != 2 || get.Kvs[0].ModRevision != 3 || get.Header.Revision != 4 ||
		get.Header.MemberId != m.Identity.MemberID {
		t.Fatalf("get a: %v, %v", get, err)
	}
	get, err = c.Get(ctx, "", clientv3.WithPrefix())
	if err != nil || get.Count != 2 {
		t.Fatalf("get all: %v, %v", get, err)
	}

	txn, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Value("b"), "=", "B")).
		Then(clientv3.OpPut("c", "C"), clientv3.OpGet("a")).Else(clientv3.OpPut("d", "D")).Commit()
	if err != nil || !txn.Succeeded || txn.Header.Revision != 5 || len(txn.Responses) != 2 ||
		string(txn.Responses[1].GetResponseRange().Kvs[0].Value) != "2" || txn.Header.ClusterId != m.Identity.ClusterID {
		t.Fatalf("txn: %v, %v", txn, err)
	}

	del, err := c.Delete(ctx, "a")
	if err != nil || del.Deleted != 1 || del.Header.Revision != 6 {
		t.Fatalf("delete: %v, %v", del, err)
	}
	comp, err := c.Compact(ctx, 4)
	if err != nil || comp.Header.MemberId != m.Identity.MemberID {
		t.Fatalf("compact: %v, %v", comp, err)
	}
	if _, err := c.Get(ctx, "a", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compaction: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := c.Compact(ctx, 100); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("compaction in the future: %v, want %v", err, rpctypes.ErrFutureRev)
	}
	if _, err := c.Put(ctx, "", "x"); !errors.Is(err, rpctypes.ErrEmptyKey) {
		t.Fatalf("put of an empty key: %v, want %v", err, rpctypes.ErrEmptyKey)
	}

	st, err := c.Status(ctx, m.listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.Revision != 6 || st.Header.MemberId != m.Identity.MemberID || st.Leader != m.Identity.MemberID ||
		st.Version != etcdapi.APIVersion || st.DbSize <= 0 || st.RaftTerm == 0 || st.RaftIndex == 0 ||
		st.RaftAppliedIndex < st.RaftIndex-1 || st.IsLearner {
		t.Fatalf("status: %+v", st)
	}
}

func TestLimits(t *testing.T) {
	const maxBytes = 1024
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{MaxTxnOps: 2, MaxRequestBytes: maxBytes})
	ctx := ctxT(t)
	_, err := c.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("b", "1"), clientv3.OpPut("c", "1")).Commit()
	if !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("txn of 3 ops with MaxTxnOps 2: %v, want %v", err, rpctypes.ErrTooManyOps)
	}
	if _, err := c.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("b", "1")).Commit(); err != nil {
		t.Fatalf("txn of 2 ops with MaxTxnOps 2: %v", err)
	}
	if _, err := c.Put(ctx, "big", strings.Repeat("x", 2*maxBytes)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("put of 2 KiB with MaxRequestBytes 1 KiB: %v, want %v", err, rpctypes.ErrRequestTooLarge)
	}
	// The bound is on the request as proposed: a PutRequest of exactly
	// maxBytes is too large once wrapped.
	key := "k"
	value := strings.Repeat("x", maxBytes-len(key)-2-3) // tag+len: 2 for the key, 3 for the value
	if _, err := c.Put(ctx, key, value); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("put of exactly MaxRequestBytes: %v, want %v", err, rpctypes.ErrRequestTooLarge)
	}
	if _, err := c.Put(ctx, key, value[:len(value)-16]); err != nil {
		t.Fatalf("put just under MaxRequestBytes: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := fmt.Sprintf("w%d/%d", w, i)
				put, err := c.Put(ctx, k, k)
				if err != nil {
					errs <- err
					return
				}
				get, err := c.Get(ctx, k)
				if err != nil || len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
					errs <- fmt.Errorf("read own write %s at %d: %v, %v", k, put.Header.Revision, get, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	get, err := c.Get(ctx, "w", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != workers*perWorker || get.Header.Revision != 1+workers*perWorker {
		t.Fatalf("after %d puts: %v, %v", workers*perWorker, get, err)
	}
}

// TestReadPaths: a read-only txn appends nothing to the raft log; a
// serializable read is served from the local store even when the loop that
// a linearizable read needs has stopped.
func TestReadPaths(t *testing.T) {
	m, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	if _, err := c.Put(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	before := m.node.Status().LastIndex
	for range 5 {
		txn, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Value("a"), "=", "1")).Then(clientv3.OpGet("a")).Commit()
		if err != nil || !txn.Succeeded || txn.Header.Revision != 2 {
			t.Fatalf("read-only txn: %v, %v", txn, err)
		}
		if _, err := c.Get(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if after := m.node.Status().LastIndex; after != before {
		t.Fatalf("reads appended to the raft log: last index %d → %d", before, after)
	}

	m.driver.Stop()
	get, err := c.Get(ctx, "a", clientv3.WithSerializable())
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "1" {
		t.Fatalf("serializable get without the loop: %v, %v", get, err)
	}
	txn, err := c.Txn(ctx).Then(clientv3.OpGet("a", clientv3.WithSerializable())).Commit()
	if err != nil || len(txn.Responses[0].GetResponseRange().Kvs) != 1 {
		t.Fatalf("serializable txn without the loop: %v, %v", txn, err)
	}
	// The client retries Unavailable errors, so ask the service directly.
	kv := etcdapi.NewKV(m.driver)
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a")}); !errors.Is(err, rpctypes.ErrGRPCStopped) {
		t.Fatalf("linearizable range without the loop: %v, want %v", err, rpctypes.ErrGRPCStopped)
	}
	readTxn := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}}
	if _, err := kv.Txn(ctx, readTxn); !errors.Is(err, rpctypes.ErrGRPCStopped) {
		t.Fatalf("linearizable read-only txn without the loop: %v, want %v", err, rpctypes.ErrGRPCStopped)
	}
	readTxn.Success[0].GetRequestRange().Serializable = true
	if resp, err := kv.Txn(ctx, readTxn); err != nil || len(resp.Responses[0].GetResponseRange().Kvs) != 1 {
		t.Fatalf("serializable read-only txn without the loop: %v, %v", resp, err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m, err := Start(testConfig(dir, etcdapi.Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.listeners[0].Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for i := range 10 {
		if _, err := c.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	id := m.Identity

	// A second member on the same data directory must be refused while the
	// first holds it.
	if m2, err := Start(testConfig(dir, etcdapi.Limits{})); err == nil {
		m2.Stop(time.Second)
		t.Fatal("a second member started on a data directory in use")
	}
	if _, err := c.Put(ctx, "k10", "v"); err != nil {
		t.Fatalf("first member broken by the refused second start: %v", err)
	}
	c.Close()
	if err := m.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	m, c = startMember(t, dir, etcdapi.Limits{})
	if m.Identity != id {
		t.Fatalf("identity changed across restart: %+v → %+v", id, m.Identity)
	}
	// The first read after a restart is linearizable; it must not wait out
	// the request timeout (the client would retry it and hide the delay).
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	get, err := c.Get(short, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || get.Count != 11 || get.Header.Revision != 12 {
		t.Fatalf("after restart: %v, %v; want 11 keys at revision 12", get, err)
	}
	put, err := c.Put(ctx, "after", "v")
	if err != nil || put.Header.Revision != 13 {
		t.Fatalf("put after restart: %v, %v", put, err)
	}
}

func TestStartErrors(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"name not in cluster": func(c *Config) { c.InitialCluster = "other=http://127.0.0.1:2380" },
		"bad peer url":        func(c *Config) { c.InitialCluster = "m1=ftp://127.0.0.1:2380" },
		"no peer url":         func(c *Config) { c.InitialAdvertisePeerURLs = nil },
		"https client url":    func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1:0"} },
		"bad client url":      func(c *Config) { c.ListenClientURLs = []string{"http://[::1"} },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, etcdapi.Limits{})
			change(&cfg)
			if m, err := Start(cfg); err == nil {
				m.Stop(time.Second)
				t.Fatal("Start accepted a bad configuration")
			}
			// A failed start releases the data directory.
			m, err := Start(testConfig(dir, etcdapi.Limits{}))
			if err != nil {
				t.Fatalf("start after a failed start: %v", err)
			}
			m.Stop(time.Second)
		})
	}
}
