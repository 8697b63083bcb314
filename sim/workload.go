package sim

import (
	"fmt"
	"math/rand/v2"

	lin "github.com/cairn-db/cairn/linearizability"
)

// workload draws client operations over a handful of keys: puts, deletes,
// compare-and-swap txns, and reads of every kind etcd clients send —
// linearizable and serializable gets and prefix ranges, and read-only txns
// of both kinds. Serializable reads are served by the member alone
// (node.ServeLocal) and checked apart from the linearizable history
// (serializable.go).
type workload struct {
	rng *rand.Rand
}

func (wl workload) next(c *client) lin.Request {
	key := keys[wl.rng.IntN(len(keys))]
	value := fmt.Sprintf("c%d-%d", c.id, c.counter)
	switch roll := wl.rng.IntN(100); {
	case roll < 33:
		return lin.Put(key, value)
	case roll < 55:
		return lin.Get(key)
	case roll < 62:
		return lin.Serializable(lin.Get(key))
	case roll < 67:
		return lin.Prefix(keyPrefix, int64(wl.rng.IntN(4)))
	case roll < 70:
		return lin.Serializable(lin.Prefix(keyPrefix, int64(wl.rng.IntN(4))))
	case roll < 78:
		return lin.Delete(key)
	case roll < 81:
		return wl.readTxn(key, c.seenModRevision[key])
	case roll < 84:
		return lin.Serializable(wl.readTxn(key, c.seenModRevision[key]))
	default:
		return wl.txn(key, value, c.seenModRevision[key])
	}
}

// txn is Kubernetes' compare-and-swap: update a key if its mod_revision is
// the client last saw (often stale), otherwise read it.
func (wl workload) txn(key, value string, lastSeen int64) lin.Request {
	cmp := lin.Compare{Key: key, Target: lin.CompareModRevision, Result: lin.CompareEqual, ModRevision: lastSeen}
	if wl.rng.IntN(2) == 0 {
		cmp = lin.Compare{Key: key, Target: lin.CompareVersion, Result: lin.CompareEqual, Version: 0}
	}
	return lin.Txn([]lin.Compare{cmp}, []lin.Request{lin.Put(key, value)}, []lin.Request{lin.Get(key)})
}

// readTxn is a txn without writes, the kind etcd serves without a
// proposal (and, when serializable, without a ReadIndex): if the key is
// unchanged since the client last saw it, read it; else read the prefix.
func (wl workload) readTxn(key string, lastSeen int64) lin.Request {
	cmp := lin.Compare{Key: key, Target: lin.CompareModRevision, Result: lin.CompareEqual, ModRevision: lastSeen}
	return lin.Txn([]lin.Compare{cmp}, []lin.Request{lin.Get(key)}, []lin.Request{lin.Prefix(keyPrefix, 2)})
}
