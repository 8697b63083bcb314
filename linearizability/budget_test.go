package linearizability

import (
	"fmt"
	"testing"
)

// concurrentPuts is a legal history of n overlapping puts of distinct
// keys, acknowledged with revisions in the reverse of their call order,
// and a read of all of them: porcupine must try orders before it finds
// the one the revisions demand.
func concurrentPuts(n int) history {
	var h history
	var all []KeyValue
	for i := range n {
		rev := int64(n - i + 1)
		h.add(i, int64(i), int64(100+i), Put(fmt.Sprintf("k%02d", i), "v"), putOK(rev))
	}
	for i := n - 1; i >= 0; i-- {
		rev := int64(n - i + 1)
		all = append(all, kv(fmt.Sprintf("k%02d", i), "v", rev, rev, 1))
	}
	// KVs in key order.
	for l, r := 0, len(all)-1; l < r; l, r = l+1, r-1 {
		all[l], all[r] = all[r], all[l]
	}
	h.add(n, 200, 201, Prefix("k", 0), Response{HeaderRevision: int64(n + 1), Count: int64(n), KVs: all})
	return h
}

// A search that needs more steps than its budget is undecided, never a
// pass, and the verdict is the same on every run: it depends on the
// count of steps, not on the machine's speed.
func TestStepBudgetDecidesNothing(t *testing.T) {
	h := concurrentPuts(8)
	if got, _, _ := checkWithin(1, nil, h, nil, 0, 0); got != ResultOK {
		t.Fatalf("with the full budget: %v, want %v", got, ResultOK)
	}
	for range 3 {
		if got, _, _ := checkWithin(1, nil, h, nil, 0, 5); got != ResultStepBudget {
			t.Fatalf("with a budget of 5 steps: %v, want %v", got, ResultStepBudget)
		}
	}
}

// An illegal history found within the budget stays illegal: the budget
// only ever turns a verdict into "undecided".
func TestStepBudgetKeepsIllegal(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("a"), getNotFound(1))
	if got, _, _ := checkWithin(1, nil, h, nil, 0, 1000); got != ResultIllegal {
		t.Fatalf("stale read: %v, want %v", got, ResultIllegal)
	}
}
