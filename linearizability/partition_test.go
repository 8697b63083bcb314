package linearizability

import "testing"

// Why the model is not partitioned by key (porcupine's Model.Partition):
// every response carries the store-wide revision, so operations on
// different keys constrain each other. Each key's operations below are
// linearizable on their own, and the revisions are even consistent per
// key; only together do they show that the put of b, invoked after the put
// of a returned at revision 3, cannot have created revision 2. A per-key
// check would pass this history.
func TestRevisionsTieKeysTogether(t *testing.T) {
	var h history
	h.add(0, 0, 10, Put("a", "1"), putOK(3))
	h.add(1, 20, 30, Put("b", "1"), putOK(2))
	expectResult(t, h, ResultIllegal)

	// A read of one key observes the revision writes to other keys made.
	var r history
	r.add(0, 0, 10, Put("a", "1"), putOK(2))
	r.add(1, 20, 30, Put("b", "1"), putOK(3))
	r.add(2, 40, 50, Get("a"), getFound(2, kv("a", "1", 2, 2, 1)))
	expectResult(t, r, ResultIllegal)
}
