package linearizability

import (
	"errors"
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// ErrBeyondHistory is returned by CheckSerializableRead for a read served at
// a revision the committed history does not reach, which it cannot judge.
var ErrBeyondHistory = errors.New("read revision beyond committed history")

// CommittedEvents reconstructs the committed write history, in revision
// order, from the linearization that Check found for history (info must come
// from a Check that returned ResultOK for the same startRevision and
// history). Where unknown-outcome writes could fill a revision in more than
// one way the linearization picks one, so the events of such revisions are a
// possible history, not necessarily the one that happened.
func CommittedEvents(startRevision int64, history []porcupine.Operation, info porcupine.LinearizationInfo) ([]Event, error) {
	return committedEvents(startRevision, nil, history, info)
}

func committedEvents(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation, info porcupine.LinearizationInfo) ([]Event, error) {
	partitions := info.PartialLinearizationsOperations()
	if len(partitions) != 1 || len(partitions[0]) == 0 {
		return nil, fmt.Errorf("committed events: no linearization in check info")
	}
	prepared := prepare(startRevision, foreign, history)
	linearization := partitions[0][0]
	if len(linearization) != len(prepared) {
		return nil, fmt.Errorf("committed events: linearization covers %d of %d operations; was the check ok?", len(linearization), len(prepared))
	}
	facts := factsOf(startRevision, foreign, prepared)
	state := newKeyspace(startRevision, nil)
	var events []Event
	for _, op := range linearization {
		ok, next := step(facts, state, op.Input.(Request), op.Output.(Response))
		if !ok {
			return nil, fmt.Errorf("committed events: linearization does not replay at %s", DescribeOperation(op.Input.(Request), op.Output.(Response)))
		}
		events = append(events, diffEvents(state, next.(*keyspace))...)
		state = next.(*keyspace)
	}
	return events, nil
}

// diffEvents returns the events that turn before into after, ordered by key.
func diffEvents(before, after *keyspace) []Event {
	if before == after {
		return nil
	}
	var events []Event
	for _, kv := range after.kvs {
		i, found := search(before.kvs, kv.Key)
		if !found || before.kvs[i] != kv {
			events = append(events, Event{Revision: after.revision, Type: EventPut, Key: kv.Key, Value: kv.Value})
		}
	}
	for _, kv := range before.kvs {
		if _, found := search(after.kvs, kv.Key); !found {
			events = append(events, Event{Revision: after.revision, Type: EventDelete, Key: kv.Key})
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Key < events[j].Key })
	return events
}

// CheckSerializableRead checks a serializable (local, possibly stale) read:
// it is not linearizable and must not be recorded in a linearizable history,
// but what it returned must be exactly the store as it was at the header
// revision it reports. committed is the write history in revision order of a
// store that started empty at startRevision (CommittedEvents, or the
// simulator's own record). req must not write.
func CheckSerializableRead(startRevision int64, committed []Event, req Request, resp Response) error {
	if req.isWrite() {
		return fmt.Errorf("serializable read check of a write: %s", describeRequest(req))
	}
	if resp.Unknown {
		return nil
	}
	state, err := stateAt(startRevision, committed, resp.HeaderRevision)
	if err != nil {
		return err
	}
	_, expected := state.apply(req)
	if !responsesMatch(req, expected, resp) {
		return fmt.Errorf("serializable read %s, but at revision %d the store returned %s",
			DescribeOperation(req, resp), resp.HeaderRevision, describeResponse(req.Kind, expected))
	}
	return nil
}

// stateAt rebuilds the keyspace at revision from the committed history.
func stateAt(startRevision int64, committed []Event, revision int64) (*keyspace, error) {
	if revision < startRevision {
		return nil, fmt.Errorf("read at revision %d before start revision %d", revision, startRevision)
	}
	last := startRevision
	if n := len(committed); n > 0 {
		last = max(last, committed[n-1].Revision)
	}
	if revision > last {
		return nil, fmt.Errorf("%w: revision %d, history ends at %d", ErrBeyondHistory, revision, last)
	}
	live := make(map[string]KeyValue)
	for _, e := range committed {
		if e.Revision > revision {
			break
		}
		previous, existed := live[e.Key]
		if e.Type == EventPut {
			live[e.Key] = nextKeyValue(previous, existed, e)
		} else {
			delete(live, e.Key)
		}
	}
	kvs := make([]KeyValue, 0, len(live))
	for _, kv := range live {
		kvs = append(kvs, kv)
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return newKeyspace(revision, kvs), nil
}
