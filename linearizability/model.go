package linearizability

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// revisionFacts are what the acknowledged operations of one history say about
// revisions. The model uses them to prune the placements of unknown-outcome
// writes that no linearization can contain; they never make it accept more.
type revisionFacts struct {
	// claimed holds every revision an acknowledged write says it created.
	// Revisions are created one per change, so no other write can create it.
	claimed map[int64]bool
	// maxRevision is the highest revision any acknowledged operation
	// observed (at least the start revision). An unknown write creating a
	// higher revision is indistinguishable from one that never took effect.
	maxRevision int64
	// foreign are the revisions writers outside the history created; they
	// are claimed too.
	foreign *foreignRevisions
}

// foreignRevisions are revisions created by writers the history does not
// record (locks, leases, other tools), on keys no recorded operation reads.
// The model lets them happen at any point between recorded operations: a
// write creates the first revision after its state that is not foreign, and
// an operation that changes nothing may observe any revision of the foreign
// run that follows its state. nil means none.
type foreignRevisions struct {
	// runEnd maps every foreign revision to the last revision of the run of
	// consecutive foreign revisions it belongs to.
	runEnd map[int64]int64
}

// newForeignRevisions indexes revisions; it returns nil for none.
func newForeignRevisions(revisions []int64) *foreignRevisions {
	if len(revisions) == 0 {
		return nil
	}
	sorted := slices.Clone(revisions)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	f := &foreignRevisions{runEnd: make(map[int64]int64, len(sorted))}
	for i := len(sorted) - 1; i >= 0; i-- {
		end := sorted[i]
		if next, ok := f.runEnd[sorted[i]+1]; ok {
			end = next
		}
		f.runEnd[sorted[i]] = end
	}
	return f
}

// after returns the last revision of the foreign run that follows revision,
// or revision itself if revision+1 is not foreign.
func (f *foreignRevisions) after(revision int64) int64 {
	if f == nil {
		return revision
	}
	if end, ok := f.runEnd[revision+1]; ok {
		return end
	}
	return revision
}

// factsOf gathers the revision facts of a history.
func factsOf(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation) revisionFacts {
	facts := revisionFacts{claimed: make(map[int64]bool), maxRevision: startRevision, foreign: foreign}
	if foreign != nil {
		for revision := range foreign.runEnd {
			facts.claimed[revision] = true
		}
	}
	for _, op := range history {
		resp := op.Output.(Response)
		if resp.Unknown {
			continue
		}
		facts.maxRevision = max(facts.maxRevision, resp.HeaderRevision)
		if claimsRevision(op.Input.(Request), resp) {
			facts.claimed[resp.HeaderRevision] = true
		}
	}
	return facts
}

// claimsRevision reports whether an acknowledged response says its request
// changed the store, and so created the response's header revision.
func claimsRevision(req Request, resp Response) bool {
	switch req.Kind {
	case OpPut:
		return true
	case OpDelete:
		return resp.Deleted > 0
	case OpTxn:
		branch := req.Else
		if resp.Succeeded {
			branch = req.Then
		}
		return branchClaims(branch, resp.Results)
	}
	return false
}

func branchClaims(branch []Request, results []Response) bool {
	for i, op := range branch {
		if op.Kind == OpPut {
			return true
		}
		if op.Kind == OpDelete && i < len(results) && results[i].Deleted > 0 {
			return true
		}
	}
	return false
}

// NewModel returns the porcupine model of an etcd keyspace that starts empty
// at startRevision (a fresh etcd or cairn store is at revision 1, and its first
// write creates revision 2), specialised for checking history: facts taken
// from the history's acknowledged operations prune the placements of its
// unknown-outcome writes. Check the history with the model built from it.
//
// States are *keyspace values, immutable, with a precomputed hash.
func NewModel(startRevision int64, history []porcupine.Operation) porcupine.Model {
	return newModel(startRevision, nil, history)
}

func newModel(startRevision int64, foreign *foreignRevisions, history []porcupine.Operation) porcupine.Model {
	if startRevision < 1 {
		panic(fmt.Sprintf("linearizability: start revision %d < 1", startRevision))
	}
	facts := factsOf(startRevision, foreign, history)
	return porcupine.Model{
		Init: func() any { return newKeyspace(startRevision, nil) },
		Step: func(state, input, output any) (bool, any) {
			return step(facts, state.(*keyspace), input.(Request), output.(Response))
		},
		Equal: func(a, b any) bool { return a.(*keyspace).equal(b.(*keyspace)) },
		Hash:  func(state any) uint64 { return state.(*keyspace).hash },
		DescribeOperation: func(input, output any) string {
			return DescribeOperation(input.(Request), output.(Response))
		},
		DescribeState: func(state any) string { return state.(*keyspace).String() },
	}
}

// step is the model's transition: an acknowledged operation must have
// observed exactly what etcd would return in state s. Foreign revisions that
// follow s are linearized before a write (it creates the first revision
// after them), and any prefix of them before an operation that changes
// nothing (it may report any revision among them).
func step(facts revisionFacts, s *keyspace, req Request, observed Response) (bool, any) {
	base := s
	if top := facts.foreign.after(s.revision); top > s.revision {
		base = s.withRevision(top)
	}
	next, expected := base.apply(req)
	if observed.Unknown {
		if next == base {
			return true, s
		}
		return true, unknownStep(facts, s, next, observed.CommittedRevision)
	}
	if next == base && base != s {
		seen := observed.HeaderRevision
		if seen < s.revision || seen > base.revision {
			return false, s
		}
		expected.HeaderRevision = seen
		if seen == s.revision {
			return responsesMatch(req, expected, observed), s
		}
		return responsesMatch(req, expected, observed), s.withRevision(seen)
	}
	return responsesMatch(req, expected, observed), next
}

// unknownStep decides where an unknown-outcome write lands. Taking effect
// here is possible only if the revision it would create is one no
// acknowledged write claims and some acknowledged operation could observe;
// otherwise it is linearized as taking no effect, which is the same as taking
// effect after every recorded operation (its return time is unbounded). This
// keeps the search from trying every subset of pending unknown writes. A
// write whose committed revision is known (committedRevision > 0) takes
// effect only where it would create that revision.
func unknownStep(facts revisionFacts, s, next *keyspace, committedRevision int64) *keyspace {
	if next == s {
		return s
	}
	if facts.claimed[next.revision] || next.revision > facts.maxRevision {
		return s
	}
	if committedRevision > 0 && next.revision != committedRevision {
		return s
	}
	return next
}

// responsesMatch compares what a client observed with what etcd would return.
func responsesMatch(req Request, expected, observed Response) bool {
	if expected.HeaderRevision != observed.HeaderRevision {
		return false
	}
	return resultsMatch(req, expected, observed)
}

// resultsMatch compares the kind-specific part of two responses.
func resultsMatch(req Request, expected, observed Response) bool {
	switch req.Kind {
	case OpPut:
		return true
	case OpGet:
		return expected.Found == observed.Found && expected.KV == observed.KV
	case OpRange:
		return expected.Count == observed.Count && expected.More == observed.More &&
			keyValuesEqual(expected.KVs, observed.KVs)
	case OpDelete:
		return expected.Deleted == observed.Deleted
	case OpTxn:
		return txnMatches(req, expected, observed)
	}
	return false
}

func txnMatches(req Request, expected, observed Response) bool {
	if expected.Succeeded != observed.Succeeded || len(expected.Results) != len(observed.Results) {
		return false
	}
	branch := req.Else
	if expected.Succeeded {
		branch = req.Then
	}
	for i, op := range branch {
		if !resultsMatch(op, expected.Results[i], observed.Results[i]) {
			return false
		}
	}
	return true
}

func keyValuesEqual(a, b []KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
