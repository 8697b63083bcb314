package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	lin "github.com/cairn-db/cairn/linearizability"
	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Historical reads (issue 11): a client reads the whole keyspace at a past
// revision (RangeRequest.Revision), linearizable or serializable, from a
// random member, now and then. Such a read does not depend on when it is
// served, so it stays out of the linearizability history and is checked
// on its own as it completes: its key-values must be exactly the committed
// store at that revision (the simulator's log of applied events), or the
// error etcd gives — `required revision has been compacted` only below a
// revision the compactor asked for (etcd still serves the compacted
// revision itself), `required revision is a future revision` only beyond
// what a linearizable read must already see.

const (
	// historyReaderID numbers the reader in the trace, after the burst
	// readers.
	historyReaderID = 300
	// historyReadEveryMicros bounds the pause between historical reads.
	historyReadEveryMicros = 700 * millisecond
	// historyReadAheadRevisionsMax is how far past the member's revision
	// a read may ask, to draw future-revision answers.
	historyReadAheadRevisionsMax = 3
)

// historyRead is one historical read in flight.
type historyRead struct {
	revision     int64
	serializable bool
	// ackedRevision is the highest revision acknowledged to a client
	// before the read began: a linearizable read must reach it.
	ackedRevision int64
}

// startHistoryReader schedules the historical reader.
func (w *world) startHistoryReader() {
	w.sched.after(w.historyRand().Int64N(historyReadEveryMicros), w.historyReadOnce)
}

// historyRand is the historical reader's own random source, so that it
// does not shift the other workloads' draws.
func (w *world) historyRand() *rand.Rand {
	if w.historyRng == nil {
		w.historyRng = rand.New(rand.NewPCG(w.opts.Seed, 0x68697374_72656164)) // "histread"
	}
	return w.historyRng
}

// historyReadOnce issues one historical read and schedules the next.
func (w *world) historyReadOnce() {
	if w.failed() || w.sched.nowMicros >= w.opts.DurationMicros {
		return
	}
	rng := w.historyRand()
	defer w.sched.after(1+rng.Int64N(historyReadEveryMicros), w.historyReadOnce)
	m := w.randomServingMember(rng)
	if m == nil {
		return
	}
	r := historyRead{revision: w.pickHistoryRevision(m), serializable: rng.IntN(2) == 0, ackedRevision: w.ackedRevisionMax()}
	req := node.Request{Range: &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: r.revision, Serializable: r.serializable}}
	w.trace.printf("c%d → %s range all at revision %d serializable=%v", historyReaderID, m.name(), r.revision, r.serializable)
	id, local := startOn(m, req)
	if local != nil {
		w.checkHistoryRead(m, r, local)
		return
	}
	w.await(m, id, func(m *member, c *node.Completion) {
		if c != nil {
			w.checkHistoryRead(m, r, c)
		}
	})
}

// pickHistoryRevision draws the revision to read at: a third of the time
// exactly the last compaction the compactor asked for (where compaction
// bugs show), else anywhere from revision 1 to a little past m's.
func (w *world) pickHistoryRevision(m *member) int64 {
	rng := w.historyRand()
	if n := len(w.compactRevisions); n > 0 && rng.IntN(3) == 0 {
		return w.compactRevisions[n-1]
	}
	return 1 + rng.Int64N(m.node.Store().Rev()+historyReadAheadRevisionsMax)
}

// ackedRevisionMax is the highest revision of an acknowledged put.
func (w *world) ackedRevisionMax() int64 {
	var rev int64
	for _, p := range w.ackedPuts {
		rev = max(rev, p.revision)
	}
	return rev
}

// checkHistoryRead judges one completed historical read.
func (w *world) checkHistoryRead(m *member, r historyRead, c *node.Completion) {
	msg, err := c.Result()
	if err != nil {
		w.trace.printf("c%d ✗ %v", historyReaderID, err)
		if problem := w.historyReadErrorProblem(r, err); problem != "" {
			w.failAs(FailHistoricalRead, "%s: range at revision %d (serializable=%v): %s", m.name(), r.revision, r.serializable, problem)
		}
		return
	}
	resp, ok := msg.(*pb.RangeResponse)
	if !ok {
		w.fail("%s: historical read answered %T", m.name(), msg)
		return
	}
	w.trace.printf("c%d ← %d keys at revision %d (header %d)", historyReaderID, len(resp.Kvs), r.revision, resp.GetHeader().GetRevision())
	if problem := w.historyReadProblem(r, resp); problem != "" {
		w.failAs(FailHistoricalRead, "%s: range at revision %d (serializable=%v): %s", m.name(), r.revision, r.serializable, problem)
	}
}

// historyReadErrorProblem says what is wrong with a failed read, "" if
// nothing: a compacted error needs a compaction above the revision, a
// future one a revision no linearizable read had to reach. Other errors
// (no leader, timeouts) say nothing about history.
func (w *world) historyReadErrorProblem(r historyRead, err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrGRPCCompacted):
		if slices.Max(append([]int64{0}, w.compactRevisions...)) <= r.revision {
			return fmt.Sprintf("%v, but no compaction above it was asked for (compactions: %v)", err, w.compactRevisions)
		}
	case errors.Is(err, rpctypes.ErrGRPCFutureRev):
		if !r.serializable && r.revision <= r.ackedRevision {
			return fmt.Sprintf("%v, but revision %d was acknowledged before the read began", err, r.ackedRevision)
		}
	}
	return ""
}

// historyReadProblem compares a served read with the committed store at
// its revision.
func (w *world) historyReadProblem(r historyRead, resp *pb.RangeResponse) string {
	if header := resp.GetHeader().GetRevision(); header < r.revision {
		return fmt.Sprintf("served at header revision %d, before the revision asked for", header)
	}
	if !r.serializable && resp.GetHeader().GetRevision() < r.ackedRevision {
		return fmt.Sprintf("linearizable read at header revision %d, before acknowledged revision %d", resp.GetHeader().GetRevision(), r.ackedRevision)
	}
	want, err := w.committedStoreAt(r.revision)
	if err != nil {
		return err.Error()
	}
	got := describeKVs(resp.Kvs)
	if got != want {
		return fmt.Sprintf("read\n  %s\nwant the committed store\n  %s", got, want)
	}
	return ""
}

// committedStoreAt describes the committed keyspace at revision, replayed
// from the log of applied events.
func (w *world) committedStoreAt(revision int64) (string, error) {
	live := map[string]*mvccpb.KeyValue{}
	for rev := int64(2); rev <= revision; rev++ {
		evs, ok := w.applied[rev]
		if !ok {
			return "", fmt.Errorf("no member applied revision %d, which a read at %d covers", rev, revision)
		}
		for _, e := range evs {
			applyHistoryEvent(live, e)
		}
	}
	kvs := make([]*mvccpb.KeyValue, 0, len(live))
	for _, kv := range live {
		kvs = append(kvs, kv)
	}
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return strings.Compare(string(a.Key), string(b.Key)) })
	return describeKVs(kvs), nil
}

// applyHistoryEvent applies one committed event to a replayed keyspace.
func applyHistoryEvent(live map[string]*mvccpb.KeyValue, e lin.Event) {
	if e.Type == lin.EventDelete {
		delete(live, e.Key)
		return
	}
	kv := &mvccpb.KeyValue{Key: []byte(e.Key), Value: []byte(e.Value), CreateRevision: e.Revision, ModRevision: e.Revision, Version: 1}
	if prev, ok := live[e.Key]; ok {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	live[e.Key] = kv
}

// describeKVs lists key-values with their revisions and version, leases
// left out (the applied log does not hold them).
func describeKVs(kvs []*mvccpb.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%q=%q@%d/%d/v%d ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return b.String()
}
