package linearizability

import (
	"errors"
	"testing"
)

// TestCheckWatchAtCompactRevision: at and below a revision a compaction
// targeted, events may come without prev_kv (etcd serves the compacted
// revision from what compaction kept, and reads prev_kv at a revision that
// may be compacted by then), deletes included; a wrong prev_kv, a missing
// prev_kv above it and a gap are still violations.
func TestCheckWatchAtCompactRevision(t *testing.T) {
	prevA := &KeyValue{Key: "a", Value: "1", CreateRevision: 2, ModRevision: 2, Version: 1}
	prevB := &KeyValue{Key: "b", Value: "2", CreateRevision: 3, ModRevision: 3, Version: 1}
	watch := WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 4, PrevKV: true, CompactRevisions: []int64{5}}
	bareDelete := Event{Revision: 5, Type: EventDelete, Key: "b"}
	putA := Event{Revision: 4, Type: EventPut, Key: "a", Value: "4", PrevKV: prevA}
	if err := CheckWatch(committedFixture(), watch, []Event{putA, bareDelete}); err != nil {
		t.Fatalf("delete at the compact revision without prev_kv: %v", err)
	}
	withPrev := bareDelete
	withPrev.PrevKV = prevB
	if err := CheckWatch(committedFixture(), watch, []Event{putA, withPrev}); err != nil {
		t.Fatalf("delete at the compact revision with prev_kv: %v", err)
	}
	bareBelow := putA
	bareBelow.PrevKV = nil
	if err := CheckWatch(committedFixture(), watch, []Event{bareBelow, withPrev}); err != nil {
		t.Fatalf("put below the compact revision without prev_kv: %v", err)
	}
	wrongPrev := bareDelete
	wrongPrev.PrevKV = prevA
	compactedBelow := watch
	compactedBelow.CompactRevisions = []int64{4}
	gap := watch
	gap.CompleteRevision = 5
	for name, c := range map[string]struct {
		watch    WatchRequest
		received []Event
	}{
		"wrong prev_kv at the compact revision":  {watch, []Event{putA, wrongPrev}},
		"missing prev_kv above the compaction":   {compactedBelow, []Event{putA, bareDelete}},
		"gap at the compact revision":            {gap, []Event{putA}},
		"missing prev_kv without the compaction": {WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 4, PrevKV: true}, []Event{putA, bareDelete}},
	} {
		if err := CheckWatch(committedFixture(), c.watch, c.received); !errors.Is(err, ErrWatch) {
			t.Errorf("%s: %v, want a violation", name, err)
		}
	}
}
