package sim

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// pebbleRotateWAL is the function of Pebble that must never see an
// injected error (see spareWALRotation).
const pebbleRotateWAL = "github.com/cockroachdb/pebble/v2.(*DB).rotateWAL"

// spareWALRotation wraps a member's disk-fault injector so that it never
// fails a sync while Pebble rotates its write-ahead log (when a memtable
// fills: the first ones are only 256 KiB, so it happens in every run).
// Pebble's DB.rotateWAL closes the old log, which waits for the log's flush
// goroutine to write and sync what is pending, then syncs it, and panics on
// an error from either with its locks in disorder: DB.mu already released,
// which its caller's deferred unlock turns into the unrecoverable "fatal
// error: sync: unlock of unlocked mutex", and the commit pipeline's lock
// still held, on which a later DB.Close waits forever. A real cairn process
// dies there, which is fail-stop; the simulator, running every member in
// one process, would die with it, or hang closing the member. Sparing those
// syncs keeps the fault where Pebble reports it properly: the commit's own
// sync fails next, Pebble calls Logger.Fatalf, and the node stops with
// node.ErrStorageFailed, as with any other failed sync.
type spareWALRotation struct {
	errorfs.Injector
	// spared counts the injected errors held back, for tests.
	spared *atomic.Int64
}

func (s spareWALRotation) MaybeError(op errorfs.Op) error {
	err := s.Injector.MaybeError(op)
	if err != nil && anyGoroutineIn(pebbleRotateWAL) {
		s.spared.Add(1)
		return nil
	}
	return err
}

// stackDumpBytesMax bounds the buffer anyGoroutineIn reads every
// goroutine's stack into; a run has a few hundred goroutines at most.
const stackDumpBytesMax = 64 << 20

// anyGoroutineIn reports whether function is on some goroutine's stack.
// The sync that fails may run on the log's flush goroutine while the
// simulation's goroutine waits inside rotateWAL, so the caller's own stack
// is not enough. It stops the world for a moment, and runs only when an
// error is about to be injected: a few times per disk fault.
func anyGoroutineIn(function string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= stackDumpBytesMax {
			return bytes.Contains(buf[:n], []byte(function+"("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// closeWallMax bounds, in wall time, closing one member's database at the
// end of a run; closing takes milliseconds. A close that does not finish
// (Pebble wedged by a panic that unwound through it while it held a lock)
// fails the run as a limit and the database is abandoned, so a seed can
// never hang its worker here.
const closeWallMax = 10 * time.Second

// closeWithin closes n, giving up after bound. Nothing else touches n
// meanwhile: the simulation is single-threaded and waits here.
func closeWithin(n *node.Node, bound time.Duration) bool {
	done := make(chan struct{})
	go func() {
		n.Close()
		close(done)
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}
