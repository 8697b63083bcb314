package linearizability

import (
	"errors"
	"fmt"
	"slices"
)

// EventType is the type of a watch event, as etcd's mvccpb.Event_EventType.
type EventType uint8

// Watch event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change to one key: an entry of the committed write history or
// one event a watcher received.
type Event struct {
	Revision int64
	Type     EventType
	Key      string
	// Value is the value a put wrote; "" for a delete.
	Value string
	// PrevKV is the key's previous value as a watcher with prev_kv
	// received it; nil when the key did not exist or prev_kv was not
	// requested. Ignored in the committed history.
	PrevKV *KeyValue
}

func (e Event) String() string {
	return fmt.Sprintf("%s %q=%q@%d", e.Type, e.Key, e.Value, e.Revision)
}

// WatchRequest describes one watch whose received events CheckWatch checks.
type WatchRequest struct {
	// Key and End select the keys as in Request.End.
	Key string
	End string
	// StartRevision is the watch's start_revision; it must be > 0.
	StartRevision int64
	// PrevKV is whether prev_kv was requested.
	PrevKV bool
	// CompleteRevision, when > 0, is a revision the watcher is known to have
	// caught up with (a progress notification, or the watch ended after the
	// workload quiesced): events up to it must all have been received.
	CompleteRevision int64
	// CompactRevisions are the revisions compactions targeted while the
	// watch ran. Events at or below one of them may lack prev_kv: etcd
	// 3.7.3 reads an event's prev_kv at its revision minus one when it
	// sends it, and leaves it out when that read fails as compacted, and
	// a watch, or a catch-up of a slow watcher, that reads from exactly
	// the compacted revision gets that revision's events (its deletes
	// too) without prev_kv. A prev_kv that is present must still be right.
	CompactRevisions []int64
}

// ErrWatch is wrapped by every watch-guarantee violation CheckWatch reports.
var ErrWatch = errors.New("watch guarantee violated")

// CheckWatch checks the events a watcher received against committed, the
// write history in revision order starting from an empty store (events of
// one revision are one txn; within a revision each key appears once). It
// verifies that received events are ordered by revision, not duplicated,
// really committed, inside the watched range and at or after StartRevision;
// that none is missing up to the last revision received (or
// CompleteRevision, if higher), so revisions are also delivered atomically;
// and, if PrevKV was requested, that each event's prev_kv is the key's value
// just before it. The error names the first violation found.
func CheckWatch(committed []Event, watch WatchRequest, received []Event) error {
	if watch.StartRevision <= 0 {
		return fmt.Errorf("watch start revision %d <= 0", watch.StartRevision)
	}
	if err := checkCommitted(committed); err != nil {
		return err
	}
	expected := expectedEvents(committed, watch)
	if err := checkReceivedOrder(received); err != nil {
		return err
	}
	through := watch.CompleteRevision
	if n := len(received); n > 0 {
		through = max(through, received[n-1].Revision)
	}
	return compareStreams(expected, received, through, watch)
}

// checkCommitted rejects a malformed committed history, which is a bug in
// the caller rather than in the store.
func checkCommitted(committed []Event) error {
	for i := 1; i < len(committed); i++ {
		previous, current := committed[i-1], committed[i]
		if current.Revision < previous.Revision {
			return fmt.Errorf("committed history out of order: %v after %v", current, previous)
		}
	}
	return nil
}

// expectedEvent is a committed event in the watched range and the prev_kv
// etcd would attach to it.
type expectedEvent struct {
	event  Event
	prevKV *KeyValue
}

// expectedEvents replays committed and returns the events the watch should
// deliver, in order, each with its prev_kv.
func expectedEvents(committed []Event, watch WatchRequest) []expectedEvent {
	live := make(map[string]KeyValue)
	var expected []expectedEvent
	for _, e := range committed {
		previous, existed := live[e.Key]
		if e.Type == EventPut {
			live[e.Key] = nextKeyValue(previous, existed, e)
		} else {
			delete(live, e.Key)
		}
		if e.Revision < watch.StartRevision || !inRange(e.Key, watch.Key, watch.End) {
			continue
		}
		entry := expectedEvent{event: e}
		if existed {
			entry.prevKV = &previous
		}
		expected = append(expected, entry)
	}
	return expected
}

func nextKeyValue(previous KeyValue, existed bool, e Event) KeyValue {
	if !existed {
		return KeyValue{Key: e.Key, Value: e.Value, CreateRevision: e.Revision, ModRevision: e.Revision, Version: 1}
	}
	return KeyValue{Key: e.Key, Value: e.Value, CreateRevision: previous.CreateRevision,
		ModRevision: e.Revision, Version: previous.Version + 1}
}

// checkReceivedOrder checks that revisions never go backwards and that no
// (revision, key) arrives twice.
func checkReceivedOrder(received []Event) error {
	seen := make(map[revisionKey]bool, len(received))
	for i, e := range received {
		if i > 0 && e.Revision < received[i-1].Revision {
			return fmt.Errorf("%w: out of order: %v received after %v", ErrWatch, e, received[i-1])
		}
		k := revisionKey{e.Revision, e.Key}
		if seen[k] {
			return fmt.Errorf("%w: duplicate: %v received twice", ErrWatch, e)
		}
		seen[k] = true
	}
	return nil
}

type revisionKey struct {
	revision int64
	key      string
}

// compareStreams matches received against the expected events up to
// revision through. Both are in revision order; within a revision they are
// matched by key, since a txn's events may be listed in any order.
func compareStreams(expected []expectedEvent, received []Event, through int64, watch WatchRequest) error {
	want := make(map[revisionKey]expectedEvent)
	for _, e := range expected {
		if e.event.Revision <= through {
			want[revisionKey{e.event.Revision, e.event.Key}] = e
		}
	}
	got := make(map[revisionKey]bool, len(received))
	// An event at or below the newest compaction may lack prev_kv.
	newestCompaction := slices.Max(append([]int64{0}, watch.CompactRevisions...))
	for _, e := range received {
		k := revisionKey{e.Revision, e.Key}
		w, ok := want[k]
		if !ok {
			return fmt.Errorf("%w: received %v, which was not committed in the watched range at or after the start revision", ErrWatch, e)
		}
		if err := checkEvent(w, e, watch.PrevKV, newestCompaction >= e.Revision); err != nil {
			return err
		}
		got[k] = true
	}
	return checkMissing(expected, got, through)
}

func checkEvent(want expectedEvent, e Event, prevKV, prevKVOptional bool) error {
	if e.Type != want.event.Type || e.Value != want.event.Value {
		return fmt.Errorf("%w: received %v, committed %v", ErrWatch, e, want.event)
	}
	if !prevKV {
		if e.PrevKV != nil {
			return fmt.Errorf("%w: %v carries prev_kv %+v that was not requested", ErrWatch, e, *e.PrevKV)
		}
		return nil
	}
	if e.PrevKV == nil && prevKVOptional {
		return nil
	}
	if !prevKVEqual(want.prevKV, e.PrevKV) {
		return fmt.Errorf("%w: %v has prev_kv %s, want %s", ErrWatch, e, describePrevKV(e.PrevKV), describePrevKV(want.prevKV))
	}
	return nil
}

func prevKVEqual(a, b *KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func describePrevKV(kv *KeyValue) string {
	if kv == nil {
		return "none"
	}
	return describeKV(*kv)
}

// checkMissing reports the first expected event up to through that was not
// received, naming it a split revision if others of its revision arrived.
func checkMissing(expected []expectedEvent, got map[revisionKey]bool, through int64) error {
	receivedRevision := make(map[int64]bool)
	for k := range got {
		receivedRevision[k.revision] = true
	}
	for _, e := range expected {
		if e.event.Revision > through {
			break
		}
		if got[revisionKey{e.event.Revision, e.event.Key}] {
			continue
		}
		if receivedRevision[e.event.Revision] {
			return fmt.Errorf("%w: revision %d not atomic: %v missing while other events of it were received", ErrWatch, e.event.Revision, e.event)
		}
		return fmt.Errorf("%w: gap: %v missing (received through revision %d)", ErrWatch, e.event, through)
	}
	return nil
}
