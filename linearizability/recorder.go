package linearizability

import (
	"fmt"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpID names one operation recorded by a Recorder.
type OpID int

// opStatus is where a recorded operation is in its life.
type opStatus uint8

const (
	statusPending opStatus = iota // invoked, not yet answered
	statusOK                      // answered; response recorded
	statusUnknown                 // outcome unknown; may or may not have taken effect
	statusFailed                  // failed without effect; left out of the history
)

type record struct {
	clientID   int
	request    Request
	response   Response
	callTime   int64
	returnTime int64
	status     opStatus
}

// Recorder collects the history of a workload: its methods may be called from
// many goroutines (chaos tests) or from one (the simulator). Each call takes
// one short mutex hold and reads the clock once, outside the mutex.
type Recorder struct {
	startRevision int64
	// clock returns the current time in any monotonic unit (nanoseconds,
	// virtual ticks); it must be safe for concurrent use if the recorder is.
	clock func() int64

	mu struct {
		sync.Mutex
		// records is indexed by OpID.
		records []record
		// lastInfo is the linearization info of the last Check, if any.
		lastInfo *porcupine.LinearizationInfo
		// lastHistory is the history lastInfo describes.
		lastHistory []porcupine.Operation
		// foreign are the revisions other writers created (SetForeign).
		foreign *foreignRevisions
	}
}

// SetForeign tells the recorder which revisions writers it does not record
// created, on keys no recorded operation reads (locks and leases beside a
// KV workload, say); read them from the store's own history after the run.
// Check, CommittedEvents and WriteReport then let those revisions happen at
// any point between recorded operations.
func (r *Recorder) SetForeign(revisions []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.foreign = newForeignRevisions(revisions)
}

func (r *Recorder) foreign() *foreignRevisions {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.foreign
}

// CommittedEvents reconstructs the committed write history from the
// linearization of the recorder's last Check; see the package function.
func (r *Recorder) CommittedEvents(info porcupine.LinearizationInfo) ([]Event, error) {
	return committedEvents(r.startRevision, r.foreign(), r.Operations(), info)
}

// NewRecorder returns a Recorder for a store that starts empty at
// startRevision, reading time from clock.
func NewRecorder(startRevision int64, clock func() int64) *Recorder {
	if startRevision < 1 {
		panic(fmt.Sprintf("linearizability: start revision %d < 1", startRevision))
	}
	return &Recorder{startRevision: startRevision, clock: clock}
}

// Invoke records that client clientID is about to send req; call it before
// the request leaves the client.
func (r *Recorder) Invoke(clientID int, req Request) OpID {
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.records = append(r.mu.records, record{clientID: clientID, request: req, callTime: now})
	return OpID(len(r.mu.records) - 1)
}

// Return records the response the client received for id.
func (r *Recorder) Return(id OpID, resp Response) {
	if resp.Unknown {
		r.Unknown(id)
		return
	}
	r.finish(id, statusOK, resp)
}

// Unknown records that the outcome of id is unknown: timeout, lost
// connection, crashed server. A client should not reuse its clientID for
// overlapping operations; give it a fresh one after an unknown outcome.
func (r *Recorder) Unknown(id OpID) {
	r.finish(id, statusUnknown, Response{Unknown: true})
}

// Fail records that id definitely failed without effect (for example it was
// rejected before being proposed); it is left out of the history. Only call
// it when the error proves the request was not applied.
func (r *Recorder) Fail(id OpID) {
	r.finish(id, statusFailed, Response{})
}

func (r *Recorder) finish(id OpID, status opStatus, resp Response) {
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(id) < 0 || int(id) >= len(r.mu.records) {
		panic(fmt.Sprintf("linearizability: finish of unknown op %d", id))
	}
	rec := &r.mu.records[id]
	if rec.status != statusPending {
		panic(fmt.Sprintf("linearizability: op %d finished twice", id))
	}
	rec.status, rec.response, rec.returnTime = status, resp, now
}

// Operations returns the history recorded so far in invocation order, as
// porcupine operations. Operations still pending count as outcome unknown;
// failed operations are left out. Operation.Metadata holds the OpID.
func (r *Recorder) Operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]porcupine.Operation, 0, len(r.mu.records))
	for id, rec := range r.mu.records {
		switch rec.status {
		case statusFailed:
			continue
		case statusPending:
			rec.response = Response{Unknown: true}
		}
		ops = append(ops, porcupine.Operation{
			ClientId: rec.clientID, Input: rec.request, Call: rec.callTime,
			Output: rec.response, Return: rec.returnTime, Metadata: OpID(id),
		})
	}
	return ops
}

// Check checks the history recorded so far; see the package function Check.
// It keeps the history and linearization info for WriteReport.
func (r *Recorder) Check(timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	return r.CheckCommitted(nil, timeout)
}

// CheckCommitted is Check with unknown-outcome writes narrowed by the
// committed history (CheckCommitted, the package function).
func (r *Recorder) CheckCommitted(committed []Event, timeout time.Duration) (Result, porcupine.LinearizationInfo) {
	history := r.Operations()
	verdict, info := check(r.startRevision, r.foreign(), history, committed, timeout)
	r.mu.Lock()
	r.mu.lastInfo, r.mu.lastHistory = &info, history
	r.mu.Unlock()
	return verdict, info
}

// WriteReport writes the history of the last Check to dir (see the package
// function WriteReport), running Check with defaultReportTimeout first if
// none ran.
func (r *Recorder) WriteReport(dir string) error {
	r.mu.Lock()
	info, history := r.mu.lastInfo, r.mu.lastHistory
	r.mu.Unlock()
	if info == nil {
		checked := r.Operations()
		_, checkedInfo := check(r.startRevision, r.foreign(), checked, nil, defaultReportTimeout)
		info, history = &checkedInfo, checked
	}
	return writeReport(dir, r.startRevision, r.foreign(), history, *info)
}
