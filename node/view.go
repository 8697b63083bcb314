package node

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/node/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// StoreView is the member's keyspace as concurrent readers see it. It stays
// valid across a snapshot install, which replaces the database underneath:
// readers hold mu for reading while they read, the install holds it for
// writing while it swaps.
type StoreView struct {
	mu sync.RWMutex
	// store is guarded by mu.
	store *mvcc.Store
}

func (v *StoreView) swap(s *mvcc.Store) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.store = s
}

// Range serves a read at the revision it asks for (0: the latest applied).
func (v *StoreView) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.Range(req)
}

// ReadTxn serves a txn without writes.
func (v *StoreView) ReadTxn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.ReadTxn(req)
}

// HashKV hashes the keyspace at rev, as etcd's HashKV does.
func (v *StoreView) HashKV(rev int64) (uint32, int64, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.HashKV(rev)
}

// VerifyKeyIndex checks the keyspace's derived key index against its
// versions; it reads everything, for tests and the simulator's final checks.
func (v *StoreView) VerifyKeyIndex() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.VerifyKeyIndex()
}

// Rev is the latest applied revision.
func (v *StoreView) Rev() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.Rev()
}

// CompactRev is the latest compacted revision.
func (v *StoreView) CompactRev() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.CompactRev()
}

// With runs f with the current store held for reading, for reads the view
// does not wrap (such as watch history).
func (v *StoreView) With(f func(*mvcc.Store)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	f(v.store)
}

// metrics are the Pebble metrics of the live database.
func (v *StoreView) metrics() *pebble.Metrics {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.store.Metrics()
}
