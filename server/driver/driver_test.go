package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pebble's block cache may still be releasing its last reference.
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/internal/cache.(*Cache).releaseLoop"))
}

type seqRand struct{ n uint64 }

func (r *seqRand) Uint64() uint64 { r.n++; return r.n }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openNode opens member id of a cluster of voters on fs.
func openNode(t *testing.T, id uint64, voters []uint64, fs vfs.FS) *node.Node {
	t.Helper()
	n, err := node.Open(node.Config{
		ID: id, InitialVoters: voters, FS: fs, Dir: fmt.Sprintf("node%d", id),
		Rand: &seqRand{}, CacheBytes: 1 << 20, MemTableBytes: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs n under a driver with a fast tick; cleanup stops the driver
// and closes the node.
func start(t *testing.T, n *node.Node, cfg Config) *Driver {
	t.Helper()
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 5 * time.Millisecond
	}
	cfg.Logger = quiet
	d := Start(n, cfg)
	t.Cleanup(func() {
		d.Stop()
		n.Close()
	})
	return d
}

// startSingle starts a one-member cluster.
func startSingle(t *testing.T, cfg Config) *Driver {
	return start(t, openNode(t, 1, []uint64{1}, vfs.NewMem()), cfg)
}

// startLeaderless starts one member of a three-member cluster whose peers
// never answer: no leader is ever elected, so requests wait.
func startLeaderless(t *testing.T, cfg Config) *Driver {
	return start(t, openNode(t, 1, []uint64{1, 2, 3}, vfs.NewMem()), cfg)
}

// linearizableRead reads through the ReadIndex barrier.
func linearizableRead(ctx context.Context, d *Driver) error {
	_, err := d.Serve(ctx, node.Request{Range: &pb.RangeRequest{Key: []byte("a")}})
	return err
}

func put(key, value string) node.Request {
	return node.Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}
}

func TestProposeAndReadIndex(t *testing.T) {
	d := startSingle(t, Config{})
	ctx := context.Background()
	resp, err := d.Serve(ctx, put("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if rev := resp.(*pb.PutResponse).GetHeader().GetRevision(); rev != 2 {
		t.Fatalf("first put at revision %d, want 2", rev)
	}
	if err := linearizableRead(ctx, d); err != nil {
		t.Fatal(err)
	}
	if rev := d.Node().Store().Rev(); rev != 2 {
		t.Fatalf("store at revision %d after ReadIndex, want 2", rev)
	}
	// A request the state machine rejects fails alone.
	_, err = d.Serve(ctx, node.Request{Compaction: &pb.CompactionRequest{Revision: 99}})
	if !errors.Is(err, rpctypes.ErrGRPCFutureRev) {
		t.Fatalf("compaction in the future: %v, want ErrGRPCFutureRev", err)
	}
	if !d.Node().Status().IsLeader {
		t.Fatal("status published by the loop does not show the leader")
	}
}

func TestConcurrentRequests(t *testing.T) {
	d := startSingle(t, Config{})
	const writers, perWriter = 32, 20
	var wg sync.WaitGroup
	revs := make(chan int64, writers*perWriter)
	errs := make(chan error, writers*perWriter*2)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				resp, err := d.Serve(context.Background(), put(fmt.Sprintf("w%d/%d", w, i), "v"))
				if err != nil {
					errs <- err
					continue
				}
				revs <- resp.(*pb.PutResponse).GetHeader().GetRevision()
				if err := linearizableRead(context.Background(), d); err != nil {
					errs <- err
				}
				_ = d.Node().Status()
				_ = d.Node().Store().Rev()
			}
		})
	}
	wg.Wait()
	close(revs)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for rev := range revs {
		if seen[rev] || rev < 2 || rev > 1+writers*perWriter {
			t.Fatalf("revision %d repeated or out of range", rev)
		}
		seen[rev] = true
	}
	if len(seen) != writers*perWriter || d.Node().Store().Rev() != 1+writers*perWriter {
		t.Fatalf("%d distinct revisions, store at %d", len(seen), d.Node().Store().Rev())
	}
}

func TestContextErrors(t *testing.T) {
	d := startLeaderless(t, Config{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Serve(canceled, put("a", "1")); !errors.Is(err, rpctypes.ErrGRPCCanceled) {
		t.Fatalf("Propose with a canceled context: %v, want ErrGRPCCanceled", err)
	}
	if err := linearizableRead(canceled, d); !errors.Is(err, rpctypes.ErrGRPCCanceled) {
		t.Fatalf("ReadIndex with a canceled context: %v, want ErrGRPCCanceled", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := d.Serve(ctx, put("a", "1")); !errors.Is(err, rpctypes.ErrGRPCDeadlineExceeded) {
		t.Fatalf("Propose past its deadline: %v, want ErrGRPCDeadlineExceeded", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := linearizableRead(ctx, d); !errors.Is(err, rpctypes.ErrGRPCDeadlineExceeded) {
		t.Fatalf("ReadIndex past its deadline: %v, want ErrGRPCDeadlineExceeded", err)
	}

	// Canceled while waiting, not before.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := d.Serve(ctx, put("a", "1")); !errors.Is(err, rpctypes.ErrGRPCCanceled) {
		t.Fatalf("Propose canceled while waiting: %v, want ErrGRPCCanceled", err)
	}
}

func TestRequestTimeout(t *testing.T) {
	d := startLeaderless(t, Config{RequestTimeout: 50 * time.Millisecond})
	start := time.Now()
	if _, err := d.Serve(context.Background(), put("a", "1")); !errors.Is(err, rpctypes.ErrGRPCTimeout) {
		t.Fatalf("Propose without a leader: %v, want ErrGRPCTimeout", err)
	}
	if err := linearizableRead(context.Background(), d); !errors.Is(err, rpctypes.ErrGRPCTimeout) {
		t.Fatalf("ReadIndex without a leader: %v, want ErrGRPCTimeout", err)
	}
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond {
		t.Fatalf("two requests timed out in %v, before their 50 ms timeouts", elapsed)
	}
}

// A physical compaction answers when every old version is removed, which
// may take longer than the request timeout; once applied it is not timed
// out (etcd waits for it without a deadline either).
func TestPhysicalCompactionOutlastsTheRequestTimeout(t *testing.T) {
	n, err := node.Open(node.Config{
		ID: 1, InitialVoters: []uint64{1}, FS: vfs.NewMem(), Dir: "node1",
		Rand: &seqRand{}, CacheBytes: 1 << 20, MemTableBytes: 1 << 20,
		// One key a tick: removing the versions of 40 keys takes 40
		// ticks of 5 ms, longer than the 50 ms timeout.
		MaxCompactKeysPerTick: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, n, Config{RequestTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	const keys = 40
	for i := range keys {
		for v := range 2 {
			if _, err := d.Serve(ctx, put(fmt.Sprintf("k%02d", i), fmt.Sprint(v))); err != nil {
				t.Fatal(err)
			}
		}
	}
	rev := d.Node().Store().Rev()
	begin := time.Now()
	if _, err := d.Serve(ctx, node.Request{Compaction: &pb.CompactionRequest{Revision: rev, Physical: true}}); err != nil {
		t.Fatalf("physical compaction: %v", err)
	}
	if took := time.Since(begin); took < 100*time.Millisecond {
		t.Fatalf("the physical compaction of %d keys answered after %v: the test shows nothing", keys, took)
	}
}

func TestStopAbandonsWaitingRequests(t *testing.T) {
	n := openNode(t, 1, []uint64{1, 2, 3}, vfs.NewMem())
	defer n.Close()
	d := Start(n, Config{TickInterval: 5 * time.Millisecond, Logger: quiet})
	const waiters = 20
	errs := make(chan error, waiters)
	for i := range waiters {
		go func() {
			if i%2 == 0 {
				_, err := d.Serve(context.Background(), put("a", "1"))
				errs <- err
				return
			}
			errs <- linearizableRead(context.Background(), d)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them reach the loop
	select {
	case err := <-errs:
		t.Fatalf("a request returned before Stop: %v", err)
	default:
	}
	d.Stop()
	for range waiters {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrStopped) {
				t.Fatalf("waiting request ended with %v, want ErrStopped", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting request did not return after Stop")
		}
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if d.Err() != nil {
		t.Fatalf("Err after Stop: %v, want nil", d.Err())
	}
	stopped := make(chan struct{})
	go func() { d.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("second Stop did not return")
	}
	if _, err := d.Serve(context.Background(), put("b", "1")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after Stop: %v, want ErrStopped", err)
	}
	if err := linearizableRead(context.Background(), d); !errors.Is(err, ErrStopped) {
		t.Fatalf("ReadIndex after Stop: %v, want ErrStopped", err)
	}
	d.Step(&raftpb.Message{}) // must not block after Stop
}

// TestFailStop: when Process fails, the loop stops, Done closes, Err
// reports why, and waiting requests fail. A snapshot whose data is garbage
// makes Process fail deterministically (it cannot be installed).
func TestFailStop(t *testing.T) {
	d := startLeaderless(t, Config{})
	waiting := make(chan error, 1)
	go func() {
		_, err := d.Serve(context.Background(), put("a", "1"))
		waiting <- err
	}()
	time.Sleep(20 * time.Millisecond)
	d.Step(&raftpb.Message{
		Type: raftpb.MessageType_MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(5),
		Snapshot: &raftpb.Snapshot{Data: []byte("not a snapshot"), Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(100), Term: proto.Uint64(5),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		}},
	})
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("loop still running after Process failed")
	}
	if err := d.Err(); err == nil || errors.Is(err, ErrStopped) {
		t.Fatalf("Err() = %v, want why Process failed", err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("waiting request: %v, want ErrStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting request not failed after the fail-stop")
	}
	if _, err := d.Serve(context.Background(), put("b", "1")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after the fail-stop: %v, want ErrStopped", err)
	}
	d.Stop() // still safe, and Err survives it
	if d.Err() == nil {
		t.Fatal("Stop cleared the fail-stop error")
	}
}

// TestFailStopOnSyncError: when the disk refuses to sync the WAL, the loop
// should stop, report the storage error, and fail the waiting request.
func TestFailStopOnSyncError(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if strings.HasSuffix(op.Path, ".log") {
				return errorfs.ErrInjected
			}
		}
		return nil
	})}
	n := openNode(t, 1, []uint64{1}, errorfs.Wrap(vfs.NewMem(), toggle))
	d := start(t, n, Config{})
	if _, err := d.Serve(context.Background(), put("a", "1")); err != nil {
		t.Fatal(err)
	}
	toggle.On()
	if _, err := d.Serve(context.Background(), put("b", "1")); !errors.Is(err, ErrStopped) {
		t.Fatalf("write whose sync failed: %v, want ErrStopped", err)
	}
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("loop still running after a sync failure")
	}
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), "injected error") {
		t.Fatalf("Err() = %v, want the injected storage error", err)
	}
	if rev := d.Node().Store().Rev(); rev != 2 {
		t.Fatalf("write applied although its sync failed: revision %d", rev)
	}
}

// TestThreeDrivers wires three drivers together through Send and Step.
func TestThreeDrivers(t *testing.T) {
	voters := []uint64{1, 2, 3}
	var mu sync.Mutex
	drivers := map[uint64]*Driver{}
	send := func(msgs []*raftpb.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if d := drivers[m.GetTo()]; d != nil {
				d.Step(m)
			}
		}
	}
	var ds []*Driver
	for _, id := range voters {
		n := openNode(t, id, voters, vfs.NewMem())
		d := start(t, n, Config{Send: send})
		mu.Lock()
		drivers[id] = d
		mu.Unlock()
		ds = append(ds, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every member accepts writes: followers forward them.
	for i, d := range ds {
		if _, err := d.Serve(ctx, put(fmt.Sprintf("k%d", i), "v")); err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
	}
	for i, d := range ds {
		if err := linearizableRead(ctx, d); err != nil {
			t.Fatalf("member %d: ReadIndex: %v", i+1, err)
		}
		if rev := d.Node().Store().Rev(); rev != 4 {
			t.Fatalf("member %d at revision %d after ReadIndex, want 4", i+1, rev)
		}
	}
	leaders := 0
	for _, d := range ds {
		if d.Node().Status().IsLeader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d members lead", leaders)
	}
}
