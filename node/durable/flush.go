package durable

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// BackgroundFailure records the first error Pebble reports from its own
// goroutines: a flush or a compaction that failed. Pebble retries a
// failed flush at once and for ever, so without it a database whose disk
// refuses new files spins, and a synchronous flush never returns; with it,
// a flush waiting for Pebble gives up (Flush) and the member stops.
type BackgroundFailure struct {
	once   sync.Once
	err    error
	failed chan struct{}
}

// NewBackgroundFailure returns a recorder of no failure yet.
func NewBackgroundFailure() *BackgroundFailure {
	return &BackgroundFailure{failed: make(chan struct{})}
}

// Listen adds the recorder to o's event listener, after any o has.
func (f *BackgroundFailure) Listen(o *pebble.Options) {
	l := pebble.EventListener{BackgroundError: f.record}
	if o.EventListener != nil {
		l = pebble.TeeEventListener(*o.EventListener, l)
	}
	o.EventListener = &l
}

func (f *BackgroundFailure) record(err error) {
	f.once.Do(func() {
		f.err = fmt.Errorf("%w: %w", ErrBackground, err)
		close(f.failed)
	})
}

// Err returns the failure, wrapping ErrBackground, or nil; safe for
// concurrent use. A nil recorder has none.
func (f *BackgroundFailure) Err() error {
	if f == nil {
		return nil
	}
	select {
	case <-f.failed:
		return f.err
	default:
		return nil
	}
}

// ErrBackground wraps a failure Pebble reported from its own goroutines.
var ErrBackground = errors.New("pebble background work failed")

// Flush flushes db's memtables and waits until they are durable, or until
// f records a failure, which it returns then: a flush that failed once is
// retried by Pebble without end. A nil f waits for the flush alone.
func Flush(db *pebble.DB, f *BackgroundFailure) error {
	if f == nil {
		return db.Flush()
	}
	if err := f.Err(); err != nil {
		return err
	}
	flushed, err := db.AsyncFlush()
	if err != nil {
		return err
	}
	select {
	case <-flushed:
		return nil
	case <-f.failed:
		return f.err
	}
}
