package linearizability

import (
	"testing"
)

func expectCommittedResult(t *testing.T, h history, committed []Event, want Result) {
	t.Helper()
	got, _ := CheckCommitted(1, h, committed, 0)
	if got != want {
		t.Fatalf("check with the committed history = %v, want %v", got, want)
	}
}

// Two unknown puts could each fill the gap at revision 3 as far as the
// history alone can tell; the committed history says which one did, and
// the other moves past the end.
func TestNarrowPinsTheWriteThatTookEffect(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.unknown(1, 1, Put("b", "x"))
	h.unknown(2, 1, Put("b", "y"))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	h.add(0, 10, 11, Get("a"), getFound(4, kv("a", "2", 2, 4, 2)))
	committed := []Event{
		{Revision: 2, Type: EventPut, Key: "a", Value: "1"},
		{Revision: 3, Type: EventPut, Key: "b", Value: "y"},
		{Revision: 4, Type: EventPut, Key: "a", Value: "2"},
	}
	narrowed := NarrowUnknownWrites(Prepare(1, h), committed)
	end := endTime(Prepare(1, h))
	for _, op := range narrowed {
		resp := op.Output.(Response)
		if !resp.Unknown {
			continue
		}
		switch op.Input.(Request).Value {
		case "x":
			if op.Call < end || resp.CommittedRevision != 0 {
				t.Errorf("put of x, not committed: window [%d,%d], revision %d; want past the end %d", op.Call, op.Return, resp.CommittedRevision, end)
			}
		case "y":
			// It created 3: after the put observing 2 was invoked (0), before
			// the put observing 4 returned (3).
			if op.Call != 1 || op.Return != 3 || resp.CommittedRevision != 3 {
				t.Errorf("put of y, committed at 3: window [%d,%d], revision %d; want [1,3] at 3", op.Call, op.Return, resp.CommittedRevision)
			}
		}
	}
	expectResult(t, h, ResultOK)
	expectCommittedResult(t, h, committed, ResultOK)
}

// Narrowing only removes linearizations: a history whose acknowledged reads
// saw the value the committed history says never took effect fails, where
// the history alone would pass.
func TestNarrowFailsWhenReadsContradictTheCommittedHistory(t *testing.T) {
	var h history
	h.unknown(0, 0, Put("a", "1"))
	h.add(1, 5, 6, Get("a"), getFound(2, kv("a", "1", 2, 2, 1)))
	expectResult(t, h, ResultOK)
	expectCommittedResult(t, h, nil, ResultOK)
	expectCommittedResult(t, h, []Event{{Revision: 2, Type: EventPut, Key: "a", Value: "other"}}, ResultIllegal)
	expectCommittedResult(t, h, []Event{{Revision: 2, Type: EventPut, Key: "a", Value: "1"}}, ResultOK)
}

// A write the committed history cannot attribute keeps its window: a value
// two puts wrote, or a delete of a key that was deleted at some point.
func TestNarrowLeavesAmbiguousWrites(t *testing.T) {
	var h history
	h.unknown(0, 0, Put("a", "same"))
	h.unknown(1, 0, Put("a", "same"))
	h.unknown(2, 0, Delete("b"))
	committed := []Event{
		{Revision: 2, Type: EventPut, Key: "a", Value: "same"},
		{Revision: 3, Type: EventPut, Key: "b", Value: "1"},
		{Revision: 4, Type: EventDelete, Key: "b"},
	}
	h.add(3, 5, 6, Get("a"), getFound(4, kv("a", "same", 2, 2, 1)))
	prepared := Prepare(1, h)
	narrowed := NarrowUnknownWrites(prepared, committed)
	for i := range narrowed {
		if narrowed[i].Call != prepared[i].Call || narrowed[i].Return != prepared[i].Return ||
			narrowed[i].Output.(Response).CommittedRevision != 0 {
			t.Errorf("%s narrowed from [%d,%d] to [%d,%d]", describeRequest(narrowed[i].Input.(Request)),
				prepared[i].Call, prepared[i].Return, narrowed[i].Call, narrowed[i].Return)
		}
	}
}

// The model lets a write pinned to a committed revision take effect there
// only: pinned to 3, the put of b cannot fill the gap at 2.
func TestPinnedUnknownWriteTakesEffectOnlyAtItsRevision(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(3))
	h.add(1, 0, 1, Put("b", "x"), Response{Unknown: true, CommittedRevision: 3})
	h[1].Return = 10
	h.add(0, 4, 5, Get("b"), getFound(3, kv("b", "x", 2, 2, 1)))
	expectResult(t, h, ResultIllegal)
	h[1].Output = Response{Unknown: true}
	expectResult(t, h, ResultOK)
}
