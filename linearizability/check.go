package linearizability

import (
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is the verdict of a linearizability check.
type Result int

// Check verdicts. ResultTimeout means the search ran out of time without
// deciding: the history is neither proven nor refuted. Callers must report
// it as a failure of its own (the timeout is a guard against a search that
// blows up, never a way to pass), with the timeout and the history's size.
const (
	ResultOK Result = iota + 1
	ResultIllegal
	ResultTimeout
)

func (r Result) String() string {
	switch r {
	case ResultOK:
		return "ok"
	case ResultIllegal:
		return "illegal"
	case ResultTimeout:
		return "timeout"
	}
	return "invalid"
}

func resultOf(r porcupine.CheckResult) Result {
	switch r {
	case porcupine.Ok:
		return ResultOK
	case porcupine.Illegal:
		return ResultIllegal
	}
	return ResultTimeout
}

// Check decides whether history, as recorded (Inputs are Request, Outputs are
// Response), is linearizable against an etcd store that starts empty at
// startRevision. It first applies Prepare. A timeout of 0 means none.
// The model is never partitioned by key: every response carries the
// store-wide revision, which ties operations on different keys together
// (TestRevisionsTieKeysTogether shows a history each key alone would pass).
// The returned info feeds porcupine.Visualize with the model NewModel
// builds from the same prepared history; WriteReport does both.
func Check(startRevision int64, history []porcupine.Operation, timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	return check(startRevision, nil, history, nil, timeout)
}

// CheckCommitted is Check with the windows of unknown-outcome writes
// narrowed by committed, the store's committed write history in revision
// order (nil: no narrowing); see NarrowUnknownWrites. Narrowing only
// removes linearizations, so it can turn a pass into a failure, never a
// failure into a pass.
func CheckCommitted(startRevision int64, history []porcupine.Operation, committed []Event, timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	return check(startRevision, nil, history, committed, timeout)
}

// check is CheckCommitted with revisions other writers made (nil: none).
func check(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation, committed []Event, timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	prepared := prepare(startRevision, foreign, history)
	if committed != nil {
		prepared = NarrowUnknownWrites(prepared, committed)
	}
	model := newModel(startRevision, foreign, prepared)
	if !gapsFillable(startRevision, foreign, prepared) {
		// Searching would try every way to spread too few unknown writes
		// over the gaps. Check the acknowledged operations alone instead:
		// as fast, and their partial linearizations still show the gaps.
		_, info := porcupine.CheckOperationsVerbose(model, acknowledged(prepared), timeout)
		return ResultIllegal, info
	}
	verdict, info := porcupine.CheckOperationsVerbose(model, prepared, timeout)
	return resultOf(verdict), info
}

// gapsFillable reports whether there are at least as many unknown-outcome
// writes as revisions that acknowledged operations observed but no
// acknowledged write claims: each such revision needs a write of its own.
func gapsFillable(startRevision int64, foreign *foreignRevisions, prepared []porcupine.Operation) bool {
	facts := factsOf(startRevision, foreign, prepared)
	claimed := int64(0)
	for revision := range facts.claimed {
		if revision > startRevision && revision <= facts.maxRevision {
			claimed++
		}
	}
	gaps := facts.maxRevision - startRevision - claimed
	unknownWrites := int64(len(prepared) - len(acknowledged(prepared)))
	return gaps <= unknownWrites
}

// acknowledged returns the operations of history whose outcome is known.
func acknowledged(history []porcupine.Operation) []porcupine.Operation {
	var known []porcupine.Operation
	for _, op := range history {
		if !op.Output.(Response).Unknown {
			known = append(known, op)
		}
	}
	return known
}

// Prepare returns the operations of history worth checking, in a new slice:
//   - unknown-outcome reads are dropped: they constrain nothing;
//   - unknown-outcome writes that were invoked after every acknowledged
//     operation that could have observed their revision returned are dropped:
//     they can only have taken effect after everything recorded, which no
//     recorded operation can tell from not taking effect at all;
//   - the remaining unknown-outcome writes return after every other
//     operation, which is porcupine's way of saying "may take effect at any
//     time after invocation".
func Prepare(startRevision int64, history []porcupine.Operation) []porcupine.Operation {
	return prepare(startRevision, nil, history)
}

func prepare(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation) []porcupine.Operation {
	facts := factsOf(startRevision, foreign, history)
	deadline := gapDeadline(startRevision, facts, history)
	end := endTime(history)
	var prepared []porcupine.Operation
	for _, op := range history {
		if !op.Output.(Response).Unknown {
			prepared = append(prepared, op)
			continue
		}
		if !op.Input.(Request).isWrite() || op.Call > deadline {
			continue
		}
		op.Return = end
		prepared = append(prepared, op)
	}
	return prepared
}

// endTime is a time after every event of history.
func endTime(history []porcupine.Operation) int64 {
	var end int64
	for _, op := range history {
		end = max(end, op.Call, op.Return)
	}
	return end + 1
}

// gapDeadline is the latest time at which an unknown-outcome write may be
// invoked and still create a revision some acknowledged operation observed.
// A revision no acknowledged write claims (a gap) must have been created by
// an unknown-outcome write, linearized before the first acknowledged
// operation that observed that revision or a later one returned. With no gap,
// it is before every time, and all unknown writes are dropped.
func gapDeadline(startRevision int64, facts revisionFacts, history []porcupine.Operation) int64 {
	observed := observations(history)
	// earliest[i] is the earliest return among observed[i:].
	earliest := make([]int64, len(observed)+1)
	earliest[len(observed)] = 1<<63 - 1
	for i := len(observed) - 1; i >= 0; i-- {
		earliest[i] = min(earliest[i+1], observed[i].returnTime)
	}
	deadline := int64(-1 << 63)
	for _, top := range gapTops(startRevision, facts) {
		// Within a run of gaps the deadline grows with the revision, so
		// the run's highest revision bounds the whole run.
		i := sort.Search(len(observed), func(i int) bool { return observed[i].revision >= top })
		deadline = max(deadline, earliest[i])
	}
	return deadline
}

// gapTops returns the highest revision of every run of consecutive revisions
// in (startRevision, maxRevision] that no acknowledged write claims. It walks
// the claimed revisions rather than every revision, so a bogus huge revision
// in a response costs nothing.
func gapTops(startRevision int64, facts revisionFacts) []int64 {
	claimed := make([]int64, 0, len(facts.claimed))
	for revision := range facts.claimed {
		if revision > startRevision && revision <= facts.maxRevision {
			claimed = append(claimed, revision)
		}
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i] < claimed[j] })
	var tops []int64
	previous := startRevision
	for _, revision := range claimed {
		if revision > previous+1 {
			tops = append(tops, revision-1)
		}
		previous = revision
	}
	if facts.maxRevision > previous {
		tops = append(tops, facts.maxRevision)
	}
	return tops
}

type observation struct {
	revision   int64
	callTime   int64
	returnTime int64
}

// observations lists the header revisions acknowledged operations observed,
// in increasing revision order.
func observations(history []porcupine.Operation) []observation {
	var observed []observation
	for _, op := range history {
		if resp := op.Output.(Response); !resp.Unknown {
			observed = append(observed, observation{resp.HeaderRevision, op.Call, op.Return})
		}
	}
	sort.Slice(observed, func(i, j int) bool { return observed[i].revision < observed[j].revision })
	return observed
}

// NarrowUnknownWrites narrows the window of every unknown-outcome write in
// prepared (a Prepare result, whose unknown writes return at the end) with
// the committed write history, which a simulator can read back from a
// converged member. Every put of a run writes a value no other put writes,
// so the history says what each unknown write did:
//   - its put's value is in the history at revision R: it took effect at R,
//     so before any acknowledged operation that observed R or later
//     returned, and after any that observed a revision below R was
//     invoked. Its window shrinks to that, and the model lets it take
//     effect only where it creates R (CommittedRevision).
//   - none of its puts' values is in the history, and no key it may delete
//     was ever deleted: it changed nothing (it never ran, or its txn took a
//     branch without writes), so it may be linearized after everything. Its
//     window moves past the end.
//   - anything else (a value written by more than one put, a range delete,
//     a deleted key): its window stays as it is.
//
// The operations stay in the history, unknown, and nothing is dropped, so a
// report of the narrowed history shows every one. Narrowing only shrinks
// windows: it removes linearizations and never adds one, so a history that
// is not linearizable stays so. If the committed history is wrong (a write
// lost or invented), an acknowledged operation that observed the truth has
// no linearization left and the check fails, which is the point. Without
// it, each pending unknown write could fill any revision no acknowledged
// write claims, and porcupine's search grows with every one of them.
func NarrowUnknownWrites(prepared []porcupine.Operation, committed []Event) []porcupine.Operation {
	effects := committedEffectsOf(committed, prepared)
	observed := observations(prepared)
	// earliest[i] is the earliest return among observed[i:], latest[i] the
	// latest call among observed[:i].
	earliest := make([]int64, len(observed)+1)
	earliest[len(observed)] = 1<<63 - 1
	for i := len(observed) - 1; i >= 0; i-- {
		earliest[i] = min(earliest[i+1], observed[i].returnTime)
	}
	latest := make([]int64, len(observed)+1)
	latest[0] = -1 << 63
	for i, o := range observed {
		latest[i+1] = max(latest[i], o.callTime)
	}
	end := endTime(prepared)
	narrowed := make([]porcupine.Operation, len(prepared))
	copy(narrowed, prepared)
	for i, op := range narrowed {
		if !op.Output.(Response).Unknown {
			continue
		}
		revision, tookEffect, known := effects.of(op.Input.(Request))
		switch {
		case !known:
		case !tookEffect:
			narrowed[i].Call, narrowed[i].Return = end, end+1
		default:
			resp := op.Output.(Response)
			resp.CommittedRevision = revision
			narrowed[i].Output = resp
			j := sort.Search(len(observed), func(j int) bool { return observed[j].revision >= revision })
			call, ret := max(op.Call, latest[j]), min(op.Return, earliest[j])
			if call < ret {
				narrowed[i].Call, narrowed[i].Return = call, ret
			}
		}
	}
	return narrowed
}

// committedEffects indexes a committed history by what a write leaves.
type committedEffects struct {
	// putRevision is the revision of each key's put of a value; -1 where
	// more than one put wrote it, in the committed history or in the
	// recorded requests.
	putRevision map[KeyValue]int64
	// deleted are the keys deleted at least once.
	deleted map[string]bool
}

func committedEffectsOf(committed []Event, history []porcupine.Operation) committedEffects {
	e := committedEffects{putRevision: map[KeyValue]int64{}, deleted: map[string]bool{}}
	requested := map[KeyValue]int{}
	for _, op := range history {
		var puts, deletes []Request
		collectWrites(op.Input.(Request), &puts, &deletes)
		for _, p := range puts {
			requested[KeyValue{Key: p.Key, Value: p.Value}]++
		}
	}
	for _, ev := range committed {
		if ev.Type == EventDelete {
			e.deleted[ev.Key] = true
			continue
		}
		kv := KeyValue{Key: ev.Key, Value: ev.Value}
		if _, seen := e.putRevision[kv]; seen || requested[kv] > 1 {
			e.putRevision[kv] = -1
		} else {
			e.putRevision[kv] = ev.Revision
		}
	}
	return e
}

// of reports what req did by the committed history: the revision it took
// effect at (tookEffect), or that it changed nothing; known is false when
// the history cannot tell.
func (e committedEffects) of(req Request) (revision int64, tookEffect, known bool) {
	var puts []Request
	var deletes []Request
	collectWrites(req, &puts, &deletes)
	for _, p := range puts {
		r, found := e.putRevision[KeyValue{Key: p.Key, Value: p.Value}]
		switch {
		case found && r < 0:
			return 0, false, false
		case found:
			return r, true, true
		}
	}
	for _, d := range deletes {
		if d.End != "" || e.deleted[d.Key] {
			return 0, false, false
		}
	}
	return 0, false, true
}

// collectWrites appends req's puts and deletes, in both branches of a txn.
func collectWrites(req Request, puts, deletes *[]Request) {
	switch req.Kind {
	case OpPut:
		*puts = append(*puts, req)
	case OpDelete:
		*deletes = append(*deletes, req)
	case OpTxn:
		for _, op := range req.Then {
			collectWrites(op, puts, deletes)
		}
		for _, op := range req.Else {
			collectWrites(op, puts, deletes)
		}
	}
}
