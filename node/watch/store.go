package watch

import (
	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/mvcc"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// NodeStore adapts a node's StoreView, which survives snapshot installs,
// to the hub's Store.
func NodeStore(v *node.StoreView) Store { return viewStore{v} }

type viewStore struct{ v *node.StoreView }

func (s viewStore) Rev() int64        { return s.v.Rev() }
func (s viewStore) CompactRev() int64 { return s.v.CompactRev() }

func (s viewStore) History(key, rangeEnd []byte, fromRev, toRev int64, maxEvents int) (evs []*mvccpb.Event, upTo int64, err error) {
	s.v.With(func(st *mvcc.Store) {
		evs, upTo, err = st.History(key, rangeEnd, fromRev, toRev, maxEvents)
	})
	return evs, upTo, err
}

var _ Store = (*mvcc.Store)(nil)

func (s viewStore) VersionBefore(key []byte, rev int64) (kv *mvccpb.KeyValue, err error) {
	s.v.With(func(st *mvcc.Store) {
		kv, err = st.VersionBefore(key, rev)
	})
	return kv, err
}
