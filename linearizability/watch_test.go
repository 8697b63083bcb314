package linearizability

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// committedFixture: revision 2 puts a, 3 is a txn putting b and c, 4 puts a
// again, 5 deletes b.
func committedFixture() []Event {
	return []Event{
		{Revision: 2, Type: EventPut, Key: "a", Value: "1"},
		{Revision: 3, Type: EventPut, Key: "b", Value: "2"},
		{Revision: 3, Type: EventPut, Key: "c", Value: "3"},
		{Revision: 4, Type: EventPut, Key: "a", Value: "4"},
		{Revision: 5, Type: EventDelete, Key: "b"},
	}
}

func TestCheckWatch(t *testing.T) {
	all := WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 1}
	prevA := &KeyValue{Key: "a", Value: "1", CreateRevision: 2, ModRevision: 2, Version: 1}
	prevB := &KeyValue{Key: "b", Value: "2", CreateRevision: 3, ModRevision: 3, Version: 1}
	c := committedFixture()
	tests := []struct {
		name     string
		watch    WatchRequest
		received []Event
		wantErr  string // "" means no violation
	}{
		{"complete", all, c, ""},
		{"prefix of the stream", all, c[:3], ""},
		{"txn events in another order", all, []Event{c[0], c[2], c[1]}, ""},
		{"single key from revision 3", WatchRequest{Key: "a", StartRevision: 3}, []Event{c[3]}, ""},
		{"out of order", all, []Event{c[1], c[0]}, "out of order"},
		{"duplicate", all, []Event{c[0], c[0]}, "duplicate"},
		{"gap", all, []Event{c[0], c[3]}, "gap"},
		{"split revision", all, []Event{c[0], c[1], c[3]}, "not atomic"},
		{"before start revision", WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 3}, c, "not committed"},
		{"outside range", WatchRequest{Key: "a", StartRevision: 1}, c[:2], "not committed"},
		{"wrong value", all, []Event{{Revision: 2, Type: EventPut, Key: "a", Value: "x"}}, "committed"},
		{"missing up to complete revision", WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 1, CompleteRevision: 5}, c[:4], "gap"},
		{"unrequested prev_kv", all, []Event{{Revision: 2, Type: EventPut, Key: "a", Value: "1", PrevKV: prevA}}, "not requested"},
		{"prev_kv correct", WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 4, PrevKV: true}, []Event{
			{Revision: 4, Type: EventPut, Key: "a", Value: "4", PrevKV: prevA},
			{Revision: 5, Type: EventDelete, Key: "b", PrevKV: prevB},
		}, ""},
		{"prev_kv wrong", WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 4, PrevKV: true}, []Event{
			{Revision: 4, Type: EventPut, Key: "a", Value: "4", PrevKV: prevB},
		}, "prev_kv"},
		{"prev_kv missing", WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 4, PrevKV: true}, []Event{
			{Revision: 4, Type: EventPut, Key: "a", Value: "4"},
		}, "prev_kv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWatch(committedFixture(), tt.watch, tt.received)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected violation: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("violation %q not reported", tt.wantErr)
			case tt.wantErr != "" && (!strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrWatch)):
				t.Fatalf("error %q, want one containing %q wrapping ErrWatch", err, tt.wantErr)
			}
		})
	}
}

func TestCommittedEventsAndSerializableReads(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.unknown(1, 1, Txn(nil, []Request{Put("b", "2"), Put("c", "3")}, nil))
	h.add(0, 2, 3, Put("a", "4"), putOK(4))
	h.add(0, 4, 5, Delete("b"), Response{HeaderRevision: 5, Deleted: 1})
	result, info := Check(1, h, time.Minute)
	if result != ResultOK {
		t.Fatalf("check = %v", result)
	}
	events, err := CommittedEvents(1, h, info)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckWatch(events, WatchRequest{Key: "a", End: RangeEndAll, StartRevision: 1, CompleteRevision: 5}, committedFixture()); err != nil {
		t.Fatalf("reconstructed history differs from the fixture: %v (got %v)", err, events)
	}
	stale := Response{HeaderRevision: 3, Found: true, KV: kv("a", "1", 2, 2, 1)}
	if err := CheckSerializableRead(1, events, Get("a"), stale); err != nil {
		t.Fatalf("stale but consistent read rejected: %v", err)
	}
	wrong := Response{HeaderRevision: 4, Found: true, KV: kv("a", "1", 2, 2, 1)}
	if err := CheckSerializableRead(1, events, Get("a"), wrong); err == nil {
		t.Fatal("read inconsistent with its revision accepted")
	}
	ahead := Response{HeaderRevision: 9}
	if err := CheckSerializableRead(1, events, Get("a"), ahead); !errors.Is(err, ErrBeyondHistory) {
		t.Fatalf("read beyond history: %v, want ErrBeyondHistory", err)
	}
}
