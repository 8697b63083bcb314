package member

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/server/etcdapi"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestMaxConcurrentStreams: with --max-concurrent-streams=1 a connection
// holding a watch stream cannot start a second call until the watch ends.
func TestMaxConcurrentStreams(t *testing.T) {
	cfg := testConfig(t.TempDir(), etcdapi.Limits{})
	cfg.MaxConcurrentStreams = 1
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(time.Second)
	waitPublished(t, m)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.listeners[0].Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctxT(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	watch := c.Watch(watchCtx, "k", clientv3.WithCreatedNotify())
	if resp := <-watch; !resp.Created {
		t.Fatalf("watch not created: %+v", resp)
	}
	blocked, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Get(blocked, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second stream on the connection: %v, want it to wait for the first", err)
	}
	stopWatch()
	for range watch {
	}
	if _, err := c.Get(ctxT(t), "k"); err != nil {
		t.Fatalf("after the watch ended: %v", err)
	}
}
