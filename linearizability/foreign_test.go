package linearizability

import "testing"

func checkForeign(foreign []int64, h history) Result {
	got, _ := check(1, newForeignRevisions(foreign), h, nil, 0)
	return got
}

// Revisions 3 and 4 were created by writers the history does not record.
func foreignHistory() history {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("a"), getFound(3, kv("a", "1", 2, 2, 1)))
	h.add(0, 4, 5, Put("a", "2"), putOK(5))
	h.add(1, 6, 7, Get("a"), getFound(5, kv("a", "2", 2, 5, 2)))
	return h
}

func TestForeignRevisionsBetweenRecordedOperations(t *testing.T) {
	if got := checkForeign([]int64{3, 4}, foreignHistory()); got != ResultOK {
		t.Fatalf("with revisions 3 and 4 foreign: %v, want ok", got)
	}
	if got := checkForeign(nil, foreignHistory()); got != ResultIllegal {
		t.Fatalf("without foreign revisions: %v, want illegal", got)
	}
}

func TestForeignRevisionsAreNotTheRecordedWrites(t *testing.T) {
	// The put claims revision 4, which another writer created.
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	if got := checkForeign([]int64{3, 4}, h); got != ResultIllegal {
		t.Fatalf("a write at a foreign revision: %v, want illegal", got)
	}
	// A read cannot observe a revision past the foreign run before the
	// next recorded write.
	h = nil
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("a"), getFound(5, kv("a", "1", 2, 2, 1)))
	if got := checkForeign([]int64{3, 4}, h); got != ResultIllegal {
		t.Fatalf("a read beyond the foreign run: %v, want illegal", got)
	}
}

func TestForeignRevisionsKeepRealTimeOrder(t *testing.T) {
	// Once a read has seen revision 4, a later read cannot see 3.
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("a"), getFound(4, kv("a", "1", 2, 2, 1)))
	h.add(1, 4, 5, Get("a"), getFound(3, kv("a", "1", 2, 2, 1)))
	if got := checkForeign([]int64{3, 4}, h); got != ResultIllegal {
		t.Fatalf("revisions going back: %v, want illegal", got)
	}
}

func TestForeignRevisionsFillGapsOfUnknownWrites(t *testing.T) {
	// Revision 3 is foreign, 4 comes from the unknown put.
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.unknown(1, 2, Put("a", "x"))
	h.add(2, 10, 11, Get("a"), getFound(4, kv("a", "x", 2, 4, 2)))
	if got := checkForeign([]int64{3}, h); got != ResultOK {
		t.Fatalf("unknown write after a foreign revision: %v, want ok", got)
	}
}

func TestRecorderCommittedEventsWithForeign(t *testing.T) {
	var now int64
	rec := NewRecorder(1, func() int64 { now++; return now })
	for _, op := range foreignHistory() {
		id := rec.Invoke(op.ClientId, op.Input.(Request))
		rec.Return(id, op.Output.(Response))
	}
	rec.SetForeign([]int64{4, 3})
	verdict, info := rec.Check(0)
	if verdict != ResultOK {
		t.Fatalf("check: %v", verdict)
	}
	events, err := rec.CommittedEvents(info)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Revision != 2 || events[1].Revision != 5 || events[1].Value != "2" {
		t.Fatalf("events %+v, want puts of a at 2 and 5", events)
	}
}
