package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cairn-db/cairn/chaos/cluster"
	"github.com/cairn-db/cairn/chaos/workload"
	lin "github.com/cairn-db/cairn/linearizability"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// catchUpTimeout bounds the wait for every member to apply the final
	// revision before their keyspaces are compared.
	catchUpTimeout = 30 * time.Second
	// historyReadTimeout bounds reading the store's history through a watch.
	historyReadTimeout = 60 * time.Second
	// checkRequestTimeout bounds one request of the checks.
	checkRequestTimeout = 5 * time.Second
	// detailsMax bounds the problems one check lists.
	detailsMax = 5
)

// Check is the verdict of one check.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

func (c Check) String() string {
	verdict := "ok"
	if !c.OK {
		verdict = "FAIL"
	}
	if c.Detail == "" {
		return c.Name + " " + verdict
	}
	return fmt.Sprintf("%s %s (%s)", c.Name, verdict, c.Detail)
}

// Result is the outcome of one run.
type Result struct {
	Config   Config
	Stats    workload.Stats
	Timeline []TimelineEntry
	Checks   []Check
	// Linearizability is porcupine's verdict on the whole history.
	Linearizability lin.Result
	// ReportDir is the run's report folder.
	ReportDir string
}

// Passed reports whether every check passed.
func (r *Result) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Summary is the run's one summary line.
func (r *Result) Summary() string {
	checks := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		checks[i] = c.String()
	}
	verdict := "linearizable"
	if r.Linearizability != lin.ResultOK {
		verdict = "NOT linearizable"
	}
	return fmt.Sprintf("chaos %s %d members seed %d %v: %d ops (%d acked, %d unknown), %d faults; %s; %s",
		r.Config.Target, r.Config.Members, r.Config.Seed, r.Config.Duration, r.Stats.Ops, r.Stats.Acked,
		r.Stats.Unknown, len(r.Timeline), strings.Join(checks, ", "), verdict)
}

// check runs every check on the healed cluster and the recorded history.
func (r *runner) check() *Result {
	r.mu.Lock()
	res := &Result{Config: r.cfg, Timeline: slices.Clone(r.mu.timeline), ReportDir: r.reportDir}
	liveness := Check{Name: "liveness", OK: len(r.mu.livenessFailures) == 0,
		Detail: fmt.Sprintf("max %v", r.mu.livenessMax.Round(time.Millisecond))}
	if !liveness.OK {
		liveness.Detail = firstFew(r.mu.livenessFailures)
	}
	recovery := Check{Name: "recovery", OK: len(r.mu.recoveryFailures) == 0, Detail: firstFew(r.mu.recoveryFailures)}
	r.mu.Unlock()
	res.Stats = r.w.Stats()

	// The store's history names the revisions the lock and lease traffic
	// created, which the KV history's model must let happen.
	history := r.readStoreHistory()
	if history.err == nil {
		r.recorder.SetForeign(history.foreign())
	}
	verdict, info := r.recorder.Check(r.cfg.CheckTimeout)
	res.Linearizability = verdict
	linearizability := Check{Name: "linearizability", OK: verdict == lin.ResultOK, Detail: linearizabilityDetail(verdict)}
	if history.err != nil && !linearizability.OK {
		linearizability.Detail += "; the revisions of the lock and lease traffic are unknown: " + history.err.Error()
	}
	res.Checks = append(res.Checks, linearizability)
	res.Checks = append(res.Checks, r.checkSerializable(verdict, info, history))
	res.Checks = append(res.Checks, r.checkLostWrites(history))
	res.Checks = append(res.Checks, r.checkWatches(history))
	res.Checks = append(res.Checks, r.checkConvergence())
	res.Checks = append(res.Checks, r.checkLocks(history))
	res.Checks = append(res.Checks, r.checkElections(history))
	res.Checks = append(res.Checks, r.checkLeases())
	// After checkLeases, every lease of the run is gone.
	res.Checks = append(res.Checks, r.checkLeaseKeys())
	res.Checks = append(res.Checks, liveness, recovery)
	exits := r.c.UnexpectedExits()
	res.Checks = append(res.Checks, Check{Name: "exits", OK: len(exits) == 0, Detail: firstFew(exits)})
	return res
}

func linearizabilityDetail(verdict lin.Result) string {
	switch verdict {
	case lin.ResultIllegal:
		return "porcupine found no linearization"
	case lin.ResultTimeout:
		return "search timed out: not proven"
	case lin.ResultStepBudget:
		return "search took its whole step budget: not proven"
	}
	return ""
}

func firstFew(problems []string) string {
	if len(problems) > detailsMax {
		return strings.Join(problems[:detailsMax], "; ") + fmt.Sprintf("; and %d more", len(problems)-detailsMax)
	}
	return strings.Join(problems, "; ")
}

// checkSerializable checks every answered serializable read against the
// store's own history of the workload's keys. Only when that could not be
// read does it fall back to the history porcupine's linearization implies,
// which is a possible history, not the one that happened: where writes of
// unknown outcome could fill a revision in more than one way it picks one,
// and a read of the other was once reported wrong. Reads at revisions
// beyond the history cannot be judged and are counted apart.
func (r *runner) checkSerializable(verdict lin.Result, info porcupine.LinearizationInfo, history storeHistoryRead) Check {
	check := Check{Name: "serializable", OK: true}
	committed := history.committed()
	if history.err != nil {
		if verdict != lin.ResultOK {
			check.Detail = "skipped: needs the store's history or a linearizable one"
			return check
		}
		var err error
		if committed, err = r.recorder.CommittedEvents(info); err != nil {
			return Check{Name: "serializable", Detail: err.Error()}
		}
	}
	reads := r.w.SerializableReads()
	var problems []string
	beyond := 0
	for _, read := range reads {
		err := lin.CheckSerializableRead(startRevision, committed, read.Request, read.Response)
		switch {
		case errors.Is(err, lin.ErrBeyondHistory):
			beyond++
		case err != nil:
			problems = append(problems, err.Error())
		}
	}
	check.OK = len(problems) == 0
	check.Detail = fmt.Sprintf("%d reads, %d beyond history", len(reads), beyond)
	if !check.OK {
		check.Detail = fmt.Sprintf("%d of %d reads wrong: %s", len(problems), len(reads), firstFew(problems))
	}
	return check
}

// storeHistory reads every event of the whole keyspace from the first
// revision to the current one through a watch on member m.
func storeHistory(m *cluster.Member) (map[eventKey]*mvccpb.Event, int64, error) {
	cli, err := m.Client()
	if err != nil {
		return nil, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), historyReadTimeout)
	defer cancel()
	get, err := cli.Get(ctx, workload.KeyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("current revision: %w", err)
	}
	current := get.Header.Revision
	events := make(map[eventKey]*mvccpb.Event)
	if current <= startRevision {
		return events, current, nil
	}
	watch := cli.Watch(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(startRevision+1))
	var last int64
	for resp := range watch {
		if err := resp.Err(); err != nil {
			return nil, 0, fmt.Errorf("watch: %w", err)
		}
		for _, e := range resp.Events {
			events[eventKey{e.Kv.ModRevision, string(e.Kv.Key)}] = e
			last = e.Kv.ModRevision
		}
		if last >= current {
			return events, current, nil
		}
	}
	return nil, 0, fmt.Errorf("watch ended at revision %d of %d: %v", last, current, ctx.Err())
}

type eventKey struct {
	revision int64
	key      string
}

// storeHistoryRead is the store's own history, read once for the checks
// that need it.
type storeHistoryRead struct {
	events  map[eventKey]*mvccpb.Event
	current int64
	// err says why the history could not be read.
	err error
}

func (r *runner) readStoreHistory() storeHistoryRead {
	m := r.firstServing()
	if m == nil {
		return storeHistoryRead{err: errors.New("no member serving")}
	}
	events, current, err := storeHistory(m)
	if err == nil {
		err = everyRevisionHasEvents(events, current)
	}
	if err != nil {
		err = fmt.Errorf("read history from %s: %w", m.Name, err)
	}
	return storeHistoryRead{events: events, current: current, err: err}
}

// everyRevisionHasEvents checks that the history covers every revision up
// to current: each revision is made by at least one change.
func everyRevisionHasEvents(events map[eventKey]*mvccpb.Event, current int64) error {
	seen := make(map[int64]bool, current)
	for k := range events {
		seen[k.revision] = true
	}
	for revision := int64(startRevision) + 1; revision <= current; revision++ {
		if !seen[revision] {
			return fmt.Errorf("revision %d of %d has no event", revision, current)
		}
	}
	return nil
}

// foreign returns the revisions no workload KV operation created: those of
// the lock and lease traffic, whose keys are outside workload.KeyPrefix.
func (h storeHistoryRead) foreign() []int64 {
	workloadRevision := map[int64]bool{}
	for k := range h.events {
		if strings.HasPrefix(k.key, workload.KeyPrefix) {
			workloadRevision[k.revision] = true
		}
	}
	var foreign []int64
	for revision := int64(startRevision) + 1; revision <= h.current; revision++ {
		if !workloadRevision[revision] {
			foreign = append(foreign, revision)
		}
	}
	return foreign
}

// sortedKeys returns the keys of the history's events under prefix, in
// revision order, then key order.
func (h storeHistoryRead) sortedKeys(prefix string) []eventKey {
	keys := make([]eventKey, 0, len(h.events))
	for k := range h.events {
		if strings.HasPrefix(k.key, prefix) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b eventKey) int {
		if a.revision != b.revision {
			return cmp.Compare(a.revision, b.revision)
		}
		return strings.Compare(a.key, b.key)
	})
	return keys
}

// committed returns the history of the workload's keys as the
// linearizability package's events, in revision order.
func (h storeHistoryRead) committed() []lin.Event {
	keys := h.sortedKeys(workload.KeyPrefix)
	out := make([]lin.Event, len(keys))
	for i, k := range keys {
		e := h.events[k]
		out[i] = lin.Event{Revision: k.revision, Key: k.key, Type: lin.EventPut, Value: string(e.Kv.Value)}
		if e.Type == mvccpb.DELETE {
			out[i].Type, out[i].Value = lin.EventDelete, ""
		}
	}
	return out
}

// checkLostWrites looks for every acknowledged change in the store's own
// history.
func (r *runner) checkLostWrites(history storeHistoryRead) Check {
	check := Check{Name: "lost-writes"}
	if history.err != nil {
		check.Detail = history.err.Error()
		return check
	}
	writes := r.w.AckedWrites()
	var problems []string
	for _, w := range writes {
		e := history.events[eventKey{w.Revision, w.Key}]
		switch {
		case e == nil:
			problems = append(problems, fmt.Sprintf("%q@%d missing", w.Key, w.Revision))
		case w.Deleted && e.Type != mvccpb.DELETE:
			problems = append(problems, fmt.Sprintf("delete of %q@%d is a %v", w.Key, w.Revision, e.Type))
		case !w.Deleted && (e.Type != mvccpb.PUT || string(e.Kv.Value) != w.Value):
			problems = append(problems, fmt.Sprintf("put %q=%q@%d is %v %q", w.Key, w.Value, w.Revision, e.Type, e.Kv.Value))
		}
	}
	check.OK = len(problems) == 0
	check.Detail = fmt.Sprintf("%d acked writes found in %d revisions", len(writes), history.current-startRevision)
	if !check.OK {
		check.Detail = fmt.Sprintf("%d of %d acked writes lost: %s", len(problems), len(writes), firstFew(problems))
	}
	return check
}

// checkWatches waits for every watcher to reach the store's current
// revision, stops them, and checks what each received against the store's
// history: ordered, no gaps, no duplicates, atomic revisions, correct
// prev_kv, across every resumption.
func (r *runner) checkWatches(history storeHistoryRead) Check {
	check := Check{Name: "watch"}
	if history.err != nil {
		r.stopWatchers()
		check.Detail = history.err.Error()
		return check
	}
	// The watchers watch the workload's keys: the last revisions may be the
	// lock and lease traffic's, which they never see.
	committed := history.committed()
	target := int64(startRevision)
	if len(committed) > 0 {
		target = committed[len(committed)-1].Revision
	}
	deadline := time.Now().Add(catchUpTimeout)
	for _, w := range r.watchers {
		for w.LastRevision() < target && w.Stopped() == "" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	r.stopWatchers()
	var problems []string
	events, restarts := 0, 0
	for _, w := range r.watchers {
		received := receivedUpTo(w.Received(), history.current)
		events += len(received)
		restarts += w.Restarts()
		if why := w.Stopped(); why != "" {
			problems = append(problems, fmt.Sprintf("watcher of %s gave up: %s", w.Endpoint(), why))
			continue
		}
		if last := w.LastRevision(); last < target {
			problems = append(problems, fmt.Sprintf("watcher of %s reached revision %d, not %d, within %v", w.Endpoint(), last, target, catchUpTimeout))
			continue
		}
		request := lin.WatchRequest{Key: workload.KeyPrefix, End: lin.PrefixEnd(workload.KeyPrefix),
			StartRevision: w.StartRevision(), PrevKV: true, CompleteRevision: target}
		if err := lin.CheckWatch(committed, request, received); err != nil {
			problems = append(problems, fmt.Sprintf("watcher of %s: %v", w.Endpoint(), err))
		}
	}
	check.OK = len(problems) == 0
	check.Detail = fmt.Sprintf("%d watchers, %d events, %d resumptions", len(r.watchers), events, restarts)
	if !check.OK {
		check.Detail = firstFew(problems)
	}
	return check
}

// receivedUpTo keeps the events up to revision, the last one of the store's
// history the checks read: a write the workload gave up on may still be
// applied after that read (it was in flight in a member or a proxy), and
// what came after is outside the checked history.
func receivedUpTo(received []lin.Event, revision int64) []lin.Event {
	out := received[:0:0]
	for _, e := range received {
		if e.Revision <= revision {
			out = append(out, e)
		}
	}
	return out
}

func (r *runner) firstServing() *cluster.Member {
	for _, m := range r.c.Members {
		if m.Serving() {
			return m
		}
	}
	return nil
}

// hashRevisionsSampled is how many revisions, spread over the whole
// history, convergence compares HashKV at besides the final one.
const hashRevisionsSampled = 8

// checkConvergence compares every member's keyspace at one revision (the
// keys, values and revisions), and every member's HashKV at that revision
// and at hashRevisionsSampled earlier ones: once the faults have healed,
// every member must hold the same history, not only the same present.
func (r *runner) checkConvergence() Check {
	check := Check{Name: "convergence"}
	m := r.firstServing()
	if m == nil {
		check.Detail = "no member serving"
		return check
	}
	revision, err := currentRevision(m)
	if err != nil {
		check.Detail = fmt.Sprintf("revision from %s: %v", m.Name, err)
		return check
	}
	revisions := hashRevisions(revision, hashRevisionsSampled)
	var reference string
	referenceHashes := make([]*clientv3.HashKVResponse, len(revisions))
	for _, m := range r.c.Members {
		if err := waitApplied(m, revision); err != nil {
			check.Detail = err.Error()
			return check
		}
		dump, err := keyspaceAt(m, revision)
		if err != nil {
			check.Detail = fmt.Sprintf("%s: %v", m.Name, err)
			return check
		}
		if reference == "" {
			reference = dump
		} else if dump != reference {
			check.Detail = fmt.Sprintf("%s's keyspace at revision %d differs from %s's", m.Name, revision, r.c.Members[0].Name)
			return check
		}
		for i, at := range revisions {
			hash, err := hashKV(m, at)
			switch {
			case err != nil:
				check.Detail = fmt.Sprintf("%s: HashKV at revision %d: %v", m.Name, at, err)
				return check
			case referenceHashes[i] == nil:
				referenceHashes[i] = hash
			case hash.Hash != referenceHashes[i].Hash || hash.CompactRevision != referenceHashes[i].CompactRevision:
				check.Detail = fmt.Sprintf("%s's HashKV at revision %d is %x (compact %d), %s's %x (compact %d)", m.Name, at,
					hash.Hash, hash.CompactRevision, r.c.Members[0].Name, referenceHashes[i].Hash, referenceHashes[i].CompactRevision)
				return check
			}
		}
	}
	check.OK = true
	check.Detail = fmt.Sprintf("keyspaces equal at revision %d, HashKV equal at %d revisions up to it", revision, len(revisions))
	return check
}

// hashRevisions returns final and up to sampled revisions spread evenly
// below it, from the first revision a write can make, in increasing order.
func hashRevisions(final int64, sampled int) []int64 {
	var out []int64
	first := int64(startRevision + 1)
	for i := range sampled {
		at := first + (final-first)*int64(i)/int64(sampled)
		if at < final && (len(out) == 0 || out[len(out)-1] != at) {
			out = append(out, at)
		}
	}
	return append(out, final)
}

func currentRevision(m *cluster.Member) (int64, error) {
	cli, err := m.Client()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), checkRequestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, workload.KeyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// waitApplied waits until m serves revision locally.
func waitApplied(m *cluster.Member, revision int64) error {
	cli, err := m.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(catchUpTimeout)
	var last int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), checkRequestTimeout)
		resp, err := cli.Get(ctx, workload.KeyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		cancel()
		if err == nil {
			last = resp.Header.Revision
			if last >= revision {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s at revision %d, not %d, after %v", m.Name, last, revision, catchUpTimeout)
}

// keyspaceAt renders m's keys at revision, read locally.
func keyspaceAt(m *cluster.Member, revision int64) (string, error) {
	cli, err := m.Client()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), checkRequestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(revision), clientv3.WithSerializable())
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%q=%q create %d mod %d version %d lease %d\n", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return b.String(), nil
}

func hashKV(m *cluster.Member, revision int64) (*clientv3.HashKVResponse, error) {
	cli, err := m.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), checkRequestTimeout)
	defer cancel()
	return cli.HashKV(ctx, m.DirectClientURL(), revision)
}
