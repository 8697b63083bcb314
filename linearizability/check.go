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
	return check(startRevision, nil, history, timeout)
}

func check(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation, timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	prepared := prepare(startRevision, foreign, history)
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
	returnTime int64
}

// observations lists the header revisions acknowledged operations observed,
// in increasing revision order.
func observations(history []porcupine.Operation) []observation {
	var observed []observation
	for _, op := range history {
		if resp := op.Output.(Response); !resp.Unknown {
			observed = append(observed, observation{resp.HeaderRevision, op.Return})
		}
	}
	sort.Slice(observed, func(i, j int) bool { return observed[i].revision < observed[j].revision })
	return observed
}
