package member

import (
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cockroachdb/pebble/v2/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The identity file is written durably: a crash right after saveIdentity
// returns keeps it, and rewriting it replaces it whole.
func TestIdentitySurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	m := &Member{cfg: Config{DataDir: "data", FS: fs}}
	if err := fs.MkdirAll(m.memberDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	// The node makes the member directory durable before the identity is
	// saved; do the same here.
	for _, dir := range []string{"data", "."} {
		d, err := fs.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		d.Close()
	}
	for _, want := range []identity{{MemberID: 0x11, ClusterID: 0x22}, {MemberID: 0x33, ClusterID: 0x44}} {
		if err := m.saveIdentity(want); err != nil {
			t.Fatal(err)
		}
		crashed := &Member{cfg: Config{DataDir: "data", FS: fs.CrashClone(vfs.CrashCloneCfg{})}}
		st, err := crashed.resolveStart()
		if err != nil {
			t.Fatalf("after a crash: %v", err)
		}
		if st.identity != want || st.join || st.founding != nil {
			t.Fatalf("after a crash the member starts as %+v, want identity %+v", st, want)
		}
	}
}

// A member runs on the filesystem it is given, all of it: restarted on
// what a crash left of that filesystem, it has its identity and its
// acknowledged writes.
func TestMemberRestartsFromCrashedDisk(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig("data", etcdapi.Limits{})
	cfg.FS = fs
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitPublished(t, m)
	c := clientOf(t, m)
	put, err := c.Put(ctxT(t), "k", "v")
	c.Close()
	if err != nil {
		m.Stop(time.Second)
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := m.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if names, _ := vfs.Default.List("data"); len(names) != 0 {
		t.Fatalf("the member wrote %v to the OS's disk", names)
	}

	cfg.FS = crashed
	again, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop(time.Second)
	if again.Identity != m.Identity {
		t.Fatalf("restarted as %+v, was %+v", again.Identity, m.Identity)
	}
	c = clientOf(t, again)
	defer c.Close()
	get, err := c.Get(ctxT(t), "k")
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "v" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after the crash: %v, %v; the put was acknowledged at revision %d", get, err, put.Header.Revision)
	}
}

func clientOf(t *testing.T, m *Member) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.listeners[0].Addr().String()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
