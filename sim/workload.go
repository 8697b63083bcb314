package sim

import (
	"fmt"
	"math/rand/v2"

	lin "github.com/cairn-db/cairn/linearizability"
)

// workload draws client operations: puts, linearizable gets and prefix
// ranges, deletes, and compare-and-swap txns, over a handful of keys.
type workload struct {
	rng *rand.Rand
}

func (wl workload) next(c *client) lin.Request {
	key := keys[wl.rng.IntN(len(keys))]
	value := fmt.Sprintf("c%d-%d", c.id, c.counter)
	switch roll := wl.rng.IntN(100); {
	case roll < 35:
		return lin.Put(key, value)
	case roll < 65:
		return lin.Get(key)
	case roll < 72:
		return lin.Prefix(keyPrefix, int64(wl.rng.IntN(4)))
	case roll < 82:
		return lin.Delete(key)
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
