package node

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestReadStateAcquireRetriesAfterPublish publishes a new state between a
// reader's load of the current one and its reference: the reader must drop
// the reference it took on the replaced state and hold the new one, so the
// loop may close the replaced state's database as soon as it looks.
func TestReadStateAcquireRetriesAfterPublish(t *testing.T) {
	var v StoreView
	v.publish(nil, nil, "first")
	first := v.current.Load()
	loads := 0
	v.acquireHook = func() {
		loads++
		if loads == 1 {
			v.publish(nil, nil, "second")
		}
	}
	got := v.acquire()
	v.acquireHook = nil
	second := v.current.Load()
	if loads != 2 || got != second || got == first {
		t.Fatalf("loads %d, acquired the new state: %v; want 2 loads and the new state", loads, got == second)
	}
	if first.refs.Load() != 0 || second.refs.Load() != 1 {
		t.Fatalf("refs: replaced %d, current %d; want 0 and 1", first.refs.Load(), second.refs.Load())
	}
	var removed []string
	if err := v.reap(func(dir string) { removed = append(removed, dir) }); err != nil {
		t.Fatal(err)
	}
	if len(v.retired) != 0 || len(removed) != 1 || removed[0] != "first" {
		t.Fatalf("after reap: %d retired, removed %q; want the replaced state closed and its directory removed", len(v.retired), removed)
	}
	got.release()
}

// TestReadStateRetiredWhileHeld: a state a reader holds when it is replaced
// stays open until the reader releases it, and the next reap closes it.
func TestReadStateRetiredWhileHeld(t *testing.T) {
	var v StoreView
	v.publish(nil, nil, "old")
	held := v.acquire()
	v.publish(nil, nil, "new")
	var removed []string
	remove := func(dir string) { removed = append(removed, dir) }
	if err := v.reap(remove); err != nil {
		t.Fatal(err)
	}
	if len(v.retired) != 1 || len(removed) != 0 {
		t.Fatalf("reap closed a state a reader holds: %d retired, removed %q", len(v.retired), removed)
	}
	held.release()
	if err := v.reap(remove); err != nil {
		t.Fatal(err)
	}
	if len(v.retired) != 0 || len(removed) != 1 {
		t.Fatalf("reap after release: %d retired, removed %q", len(v.retired), removed)
	}
	if readers := v.unpublish(nil); readers != 0 || v.acquire() != nil {
		t.Fatalf("after unpublish: %d readers, acquire not nil", readers)
	}
}

// TestReadInFlightAcrossSnapshotInstall holds a read on a follower's
// keyspace while the follower installs a snapshot that replaces its
// database: the read's database stays open and readable, new reads see the
// installed keyspace, and the first Process after the read releases it
// closes the old database and removes its directory.
func TestReadInFlightAcrossSnapshotInstall(t *testing.T) {
	h, leader, follower := laggingFollower(t, TestingKnobs{})
	h.open(follower)
	n := h.node(follower)
	held := n.view.acquire()
	if !h.caughtUp(leader, follower) {
		t.Fatalf("follower did not catch up")
	}
	if n.view.current.Load() == held || len(n.view.retired) != 1 {
		t.Fatalf("install did not publish a new state while a read held the old one (%d retired)", len(n.view.retired))
	}
	old := n.view.retired[0]
	if !old.removeDir {
		t.Fatalf("retired state in %s is not to be removed", old.dir)
	}
	// The follower applied what its own log held before the snapshot came.
	resp, err := held.store.Range(&pb.RangeRequest{Key: []byte("before")})
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "crash" {
		t.Fatalf("read on the replaced keyspace: %v, %v; want before=crash", resp, err)
	}
	if rev, oldRev := n.Store().Rev(), resp.Header.Revision; rev <= oldRev {
		t.Fatalf("new reads at %d, not past the replaced keyspace's %d", rev, oldRev)
	}
	if err := n.Close(); err == nil {
		t.Fatal("Close with a read in flight succeeded")
	}
	held.release()
	if err := n.view.reap(n.removeAll); err != nil {
		t.Fatal(err)
	}
	if len(n.view.retired) != 0 {
		t.Fatalf("%d states retired after their reader released", len(n.view.retired))
	}
	if _, err := n.cfg.FS.Stat(old.dir); err == nil {
		t.Fatalf("replaced database directory %s still exists", old.dir)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	h.members[follower].n = nil
	if _, err := n.Store().Range(&pb.RangeRequest{Key: []byte("a")}); !errors.Is(err, ErrStopped) {
		t.Fatalf("read after Close: %v; want ErrStopped", err)
	}
}

// TestReadStateConcurrentReaders runs readers against a loop that keeps
// publishing new states and reaping old ones: no reader may ever hold a
// state the loop has already closed. Run it with -race.
func TestReadStateConcurrentReaders(t *testing.T) {
	const readers, publishes = 4, 2000
	// closed is built before the readers start and only its values change.
	closed := make(map[string]*atomic.Bool, publishes+1)
	dir := func(i int) string { return fmt.Sprint("state-", i) }
	for i := range publishes + 1 {
		closed[dir(i)] = &atomic.Bool{}
	}
	var v StoreView
	v.publish(nil, nil, dir(0))
	stop := make(chan struct{})
	errs := make(chan error, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readUntilClosed(&v, closed, stop)
		}()
	}
	closeState := func(d string) { closed[d].Store(true) }
	for i := 1; i <= publishes; i++ {
		v.publish(nil, nil, dir(i))
		if err := v.reap(closeState); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := v.reap(closeState); err != nil || len(v.retired) != 0 {
		t.Fatalf("after the readers stopped: %d retired, %v", len(v.retired), err)
	}
	if n := closedCount(closed); n != publishes {
		t.Fatalf("%d states closed; want every replaced one, %d", n, publishes)
	}
}

// readUntilClosed acquires and releases states until stop, and fails if it
// ever holds one the loop has closed.
func readUntilClosed(v *StoreView, closed map[string]*atomic.Bool, stop chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		s := v.acquire()
		isClosed := closed[s.dir].Load()
		s.release()
		if isClosed {
			return fmt.Errorf("reader holds state %s after the loop closed it", s.dir)
		}
	}
}

func closedCount(closed map[string]*atomic.Bool) int {
	n := 0
	for _, c := range closed {
		if c.Load() {
			n++
		}
	}
	return n
}
