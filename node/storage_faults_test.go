package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// sstCreateFails fails the creation of every sstable: a disk that refuses
// new files (full, read-only, or the data directory removed).
type sstCreateFails struct{}

func (sstCreateFails) String() string { return "sst-create-fails" }

func (sstCreateFails) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
		return errorfs.ErrInjected
	}
	return nil
}

// A flush Pebble cannot write stops the member: Pebble retries a failed
// flush at once and without end, so the node must neither wait for it (a
// clean stop flushes the applied state first, and hung) nor go on
// applying entries it can never make durable.
func TestFailedFlushStopsTheMember(t *testing.T) {
	var failing errorfs.Toggle
	failing.Injector = sstCreateFails{}
	h := newHarness(t, []uint64{1}, nil)
	h.members[1].cfg.FS = errorfs.Wrap(h.members[1].fs, &failing)
	h.restart(1)
	h.settle()
	h.put(1, "k", "v")
	failing.On()
	n := h.node(1)
	flushed := make(chan error, 1)
	go func() { flushed <- n.FlushAppliedState() }()
	select {
	case err := <-flushed:
		if !errors.Is(err, ErrStorageFailed) {
			t.Fatalf("FlushAppliedState on a disk that refuses sstables: %v, want ErrStorageFailed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("FlushAppliedState still waiting for a flush Pebble cannot write after 30 s")
	}
	if !n.HasReady() {
		t.Fatal("HasReady is false after a failed flush: an idle member would never stop")
	}
	if _, err := n.Process(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("Process after a failed flush: %v, want ErrStorageFailed", err)
	}
	failing.Off() // let Close end Pebble's retries cleanly
}
