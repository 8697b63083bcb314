package node

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// retiredReadStatesMax bounds the keyspaces a snapshot install replaced
// whose databases are still open because a reader holds them. A read holds
// its state for one request, and an install takes a whole snapshot
// transfer, so more than a few means a reader never released its state: a
// programmer error, and the loop panics rather than keep databases open
// without bound.
const retiredReadStatesMax = 8

// errViewClosed is what a read returns once the member is closed.
var errViewClosed = fmt.Errorf("read after close: %w", ErrStopped)

// readState is one published keyspace: the store readers read and the
// database under it. A snapshot install publishes a new readState; the
// replaced one is retired, and the driver's loop closes its database once
// no reader holds it. Only refs changes after publication.
type readState struct {
	store *mvcc.Store
	// db is the database under store. The loop closes it (reap) once the
	// state is retired and refs is 0; the published state's database is
	// the node's own, closed by Node.Close.
	db *pebble.DB
	// dir is db's directory.
	dir string
	// refs counts the readers holding this state. Invariant: refs >= 0.
	refs atomic.Int64
}

// StoreView is the member's keyspace as concurrent readers see it: one
// published readState, swapped atomically by the driver's loop (like
// Pebble's readState). A reader acquires the current state, reads, and
// releases it; it never closes anything. The loop publishes a new state at
// a snapshot install and closes the replaced state's database only once its
// last reader released it, so a close never races a read in flight. No
// lock: readers never wait for the loop, nor the loop for readers.
type StoreView struct {
	// current is the published state; nil before Open finishes and after
	// Close.
	current atomic.Pointer[readState]
	// retired are replaced states whose databases are still open. Owned
	// by the driver's loop. Bound: retiredReadStatesMax.
	retired []retiredState
	// acquireHook, if set (tests only), runs between a reader's load of
	// the current state and its reference on it.
	acquireHook func()
}

// acquire returns the published state with a reference held, or nil after
// Close. A reader takes its reference and then checks that the state is
// still the published one: the loop retires a state by publishing another
// before it looks at refs, so a reader whose reference came too late sees
// the new state on its check, drops the reference and tries again, and never
// reads a database the loop may close.
func (v *StoreView) acquire() *readState {
	for {
		s := v.current.Load()
		if s == nil {
			return nil
		}
		if v.acquireHook != nil {
			v.acquireHook()
		}
		s.refs.Add(1)
		if v.current.Load() == s {
			return s
		}
		s.refs.Add(-1)
	}
}

// retiredState is a replaced state waiting for its last reader.
type retiredState struct {
	*readState
	// removeDir says to remove the state's directory once its database is
	// closed: false when the new state lives in the same directory.
	removeDir bool
}

func (s *readState) release() {
	if s.refs.Add(-1) < 0 {
		panic("node: read state released more often than acquired")
	}
}

// publish makes store (over db, in directory dir) the state new readers
// get, and retires the state it replaces: its database is closed, and its
// directory removed, once its last reader releases it (reap). Loop only.
func (v *StoreView) publish(store *mvcc.Store, db *pebble.DB, dir string) {
	old := v.current.Swap(&readState{store: store, db: db, dir: dir})
	if old == nil {
		return
	}
	v.retired = append(v.retired, retiredState{old, old.dir != dir})
	if len(v.retired) > retiredReadStatesMax {
		panic(fmt.Sprintf("node: %d replaced keyspaces still held by readers (bound %d): a reader never released its state",
			len(v.retired), retiredReadStatesMax))
	}
}

// reap closes the databases of retired states no reader holds any more.
// Loop only. remove removes a closed state's directory.
func (v *StoreView) reap(remove func(dir string)) error {
	var errs []error
	kept := v.retired[:0]
	for _, s := range v.retired {
		if s.refs.Load() > 0 {
			kept = append(kept, s)
			continue
		}
		if s.db != nil {
			if err := s.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close replaced database: %w", err))
			}
		}
		if s.removeDir {
			remove(s.dir)
		}
	}
	clear(v.retired[len(kept):])
	v.retired = kept
	return errors.Join(errs...)
}

// unpublish ends reading at Close: later reads fail with ErrStopped. The
// caller closes its live database itself; a published state over another
// one (an install that failed after opening the new database) is retired
// for reap to close. It reports the readers still in flight, on the
// published state or a retired one.
func (v *StoreView) unpublish(live *pebble.DB) (readersInFlight int64) {
	old := v.current.Swap(nil)
	if old != nil && old.db != live {
		v.retired = append(v.retired, retiredState{old, false})
	} else if old != nil {
		readersInFlight += old.refs.Load()
	}
	for _, s := range v.retired {
		readersInFlight += s.refs.Load()
	}
	return readersInFlight
}

// read runs f on the published store with a reference held.
func read[T any](v *StoreView, f func(*mvcc.Store) (T, error)) (T, error) {
	s := v.acquire()
	if s == nil {
		var zero T
		return zero, errViewClosed
	}
	defer s.release()
	return f(s.store)
}

// Range serves a read at the revision it asks for (0: the latest applied).
func (v *StoreView) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	return read(v, func(s *mvcc.Store) (*pb.RangeResponse, error) { return s.Range(req) })
}

// ReadTxn serves a txn without writes.
func (v *StoreView) ReadTxn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	return read(v, func(s *mvcc.Store) (*pb.TxnResponse, error) { return s.ReadTxn(req) })
}

// hashResult is HashKV's two values, for read.
type hashResult struct {
	hash       uint32
	compactRev int64
}

// HashKV hashes the keyspace at rev, as etcd's HashKV does.
func (v *StoreView) HashKV(rev int64) (uint32, int64, error) {
	r, err := read(v, func(s *mvcc.Store) (hashResult, error) {
		h, c, err := s.HashKV(rev)
		return hashResult{h, c}, err
	})
	return r.hash, r.compactRev, err
}

// VerifyKeyIndex checks the keyspace's derived key index against its
// versions; it reads everything, for tests and the simulator's final checks.
func (v *StoreView) VerifyKeyIndex() error {
	_, err := read(v, func(s *mvcc.Store) (struct{}, error) { return struct{}{}, s.VerifyKeyIndex() })
	return err
}

// Rev is the latest applied revision (0 after Close).
func (v *StoreView) Rev() int64 {
	r, _ := read(v, func(s *mvcc.Store) (int64, error) { return s.Rev(), nil })
	return r
}

// CompactRev is the latest compacted revision (0 after Close).
func (v *StoreView) CompactRev() int64 {
	r, _ := read(v, func(s *mvcc.Store) (int64, error) { return s.CompactRev(), nil })
	return r
}

// With runs f with the current store held, for reads the view does not
// wrap (such as watch history). f must not keep the store: once With
// returns, the loop may close it. After Close, f does not run.
func (v *StoreView) With(f func(*mvcc.Store)) {
	_, _ = read(v, func(s *mvcc.Store) (struct{}, error) { f(s); return struct{}{}, nil })
}

// LeaseKeys returns the keys attached to a lease, in key order.
func (v *StoreView) LeaseKeys(id int64) ([][]byte, error) {
	return read(v, func(s *mvcc.Store) ([][]byte, error) { return s.LeaseKeys(id) })
}

// metrics are the Pebble metrics of the live database (zero after Close).
func (v *StoreView) metrics() *pebble.Metrics {
	m, err := read(v, func(s *mvcc.Store) (*pebble.Metrics, error) { return s.Metrics(), nil })
	if err != nil {
		return &pebble.Metrics{}
	}
	return m
}
