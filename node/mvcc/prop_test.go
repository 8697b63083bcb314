package mvcc

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

// Keys with 0x00 and 0xff bytes, prefixes of each other, so that encoding
// order mistakes show.
var propKeys = []string{"\x00", "\x00\x00", "a", "a\x00", "a\x00b", "a\xff", "ab", "b", "\xff", "\xff\x00"}

var propLeases = map[int64]bool{7: true}

type action struct {
	writes       []*pb.RequestOp // applied by one Writer; a RequestTxn op is a Txn request
	compactBack  int64           // if >= 0 after writes: Compact(rev - compactBack)
	read         *pb.RangeRequest
	readBack     int64 // read at rev - readBack when >= 0 (overrides read.Revision)
	readTxn      *pb.TxnRequest
	compactSteps int  // CompactStep maxKeys
	reopen       bool // flush the memtable, so that reads seek in sstables, and reopen the Store
	// abandon applies writes with a Writer that is closed instead of
	// published, its batch discarded, as when a request or the commit
	// fails: the store must be as before.
	abandon bool
}

func (a action) String() string {
	return fmt.Sprintf("writes=%v compactBack=%d read=%v readBack=%d readTxn=%v steps=%d reopen=%v abandon=%v",
		a.writes, a.compactBack, a.read, a.readBack, a.readTxn, a.compactSteps, a.reopen, a.abandon)
}

func genKey(t *rapid.T, label string) []byte {
	return []byte(rapid.SampledFrom(propKeys).Draw(t, label))
}

func genRangeEnd(t *rapid.T, label string) []byte {
	return []byte(rapid.SampledFrom(append([]string{"", "", "\x00"}, propKeys...)).Draw(t, label))
}

func genPut(t *rapid.T) *pb.PutRequest {
	p := &pb.PutRequest{Key: genKey(t, "key"), Value: []byte(rapid.SampledFrom([]string{"", "x", "y", "z\x00"}).Draw(t, "value")),
		Lease: rapid.SampledFrom([]int64{0, 0, 7, 9}).Draw(t, "lease"), PrevKv: rapid.Bool().Draw(t, "prevKv")}
	if rapid.IntRange(0, 5).Draw(t, "ignore") == 0 {
		p.IgnoreValue, p.Value = true, nil
	}
	if rapid.IntRange(0, 5).Draw(t, "ignoreLease") == 0 {
		p.IgnoreLease, p.Lease = true, 0
	}
	return p
}

func genRange(t *rapid.T) *pb.RangeRequest {
	r := &pb.RangeRequest{Key: genKey(t, "key"), RangeEnd: genRangeEnd(t, "end"),
		Limit:      rapid.Int64Range(0, 4).Draw(t, "limit"),
		SortOrder:  pb.RangeRequest_SortOrder(rapid.IntRange(0, 2).Draw(t, "order")),
		SortTarget: pb.RangeRequest_SortTarget(rapid.IntRange(0, 4).Draw(t, "target")),
		KeysOnly:   rapid.IntRange(0, 4).Draw(t, "keysOnly") == 0,
		CountOnly:  rapid.IntRange(0, 6).Draw(t, "countOnly") == 0}
	if rapid.IntRange(0, 3).Draw(t, "filter") == 0 {
		r.MinModRevision = rapid.Int64Range(0, 8).Draw(t, "minMod")
		r.MaxModRevision = rapid.Int64Range(0, 20).Draw(t, "maxMod")
		r.MinCreateRevision = rapid.Int64Range(0, 8).Draw(t, "minCreate")
		r.MaxCreateRevision = rapid.Int64Range(0, 20).Draw(t, "maxCreate")
	}
	if rapid.IntRange(0, 5).Draw(t, "rev") == 0 {
		r.Revision = rapid.Int64Range(-2, 20).Draw(t, "revision")
	}
	return r
}

func genCompare(t *rapid.T) *pb.Compare {
	c := &pb.Compare{Key: genKey(t, "key"), RangeEnd: genRangeEnd(t, "end"),
		Result: pb.Compare_CompareResult(rapid.IntRange(0, 3).Draw(t, "result")),
		Target: pb.Compare_CompareTarget(rapid.IntRange(0, 4).Draw(t, "target"))}
	n := rapid.Int64Range(0, 6).Draw(t, "n")
	switch c.Target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: n}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: n}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: n}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(rapid.SampledFrom([]string{"", "x", "y"}).Draw(t, "v"))}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: rapid.SampledFrom([]int64{0, 7}).Draw(t, "l")}
	}
	return c
}

// propTxnDepthMax bounds txn nesting: a top-level Txn request (depth 1, or
// 0 for a read txn) holds txns down to this depth.
const propTxnDepthMax = 3

// genOp draws one op of a request at the given nesting depth. Write txns
// nest txns: etcd answers a nested txn differently from the outermost one
// (an empty header). A read txn holds only ranges, since a nested txn
// makes a txn a write (IsReadOnlyTxn).
func genOp(t *rapid.T, depth int, readOnly bool) *pb.RequestOp {
	kind := rapid.IntRange(0, 3).Draw(t, "op")
	switch {
	case readOnly:
		kind = 0
	case kind == 3 && depth >= propTxnDepthMax:
		kind = 2
	}
	switch kind {
	case 0:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: genRange(t)}}
	case 1:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: genPut(t)}}
	case 2:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{
			Key: genKey(t, "key"), RangeEnd: genRangeEnd(t, "end"), PrevKv: rapid.Bool().Draw(t, "prevKv")}}}
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: genTxn(t, depth+1, false)}}
}

func genTxn(t *rapid.T, depth int, readOnly bool) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range rapid.IntRange(0, 2).Draw(t, "compares") {
		r.Compare = append(r.Compare, genCompare(t))
	}
	for range rapid.IntRange(0, 3).Draw(t, "success") {
		r.Success = append(r.Success, genOp(t, depth, readOnly))
	}
	for range rapid.IntRange(0, 2).Draw(t, "failure") {
		r.Failure = append(r.Failure, genOp(t, depth, readOnly))
	}
	return r
}

func genAction(t *rapid.T) action {
	a := action{compactBack: -1, readBack: -1}
	switch rapid.IntRange(0, 10).Draw(t, "kind") {
	case 0, 1, 2, 3:
		for range rapid.IntRange(1, 3).Draw(t, "writes") {
			a.writes = append(a.writes, genOp(t, 0, false))
		}
	case 4:
		a.compactBack = rapid.Int64Range(-1, 4).Draw(t, "compactBack")
	case 5, 6:
		a.read = genRange(t)
		if rapid.Bool().Draw(t, "historical") {
			a.readBack = rapid.Int64Range(-1, 6).Draw(t, "readBack")
		}
	case 7:
		a.readTxn = genTxn(t, 0, true)
	case 8:
		a.compactSteps = rapid.IntRange(1, 3).Draw(t, "maxKeys")
	case 9:
		a.reopen = true
	case 10:
		for range rapid.IntRange(1, 3).Draw(t, "writes") {
			a.writes = append(a.writes, genOp(t, 0, false))
		}
		a.abandon = true
	}
	return a
}

var genActions = rapid.Custom(func(t *rapid.T) []action {
	return rapid.SliceOfN(rapid.Custom(genAction), 1, 60).Draw(t, "actions")
})

// runner applies actions to a Store and a model and reports the first
// difference.
type runner struct {
	db *pebble.DB
	s  *Store
	m  *model
}

// propLatestCacheBytes holds about three keys' newest versions: entries
// are evicted all the time, so a history reads some keys from the cache
// and some from Pebble.
const propLatestCacheBytes = ringSlotsMin*ringSlotBytes + 3*(recordHeaderBytes+8+latestMetaBytes)

func newRunner(bug string) (*runner, error) {
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	// Chunks of about two keys: the few keys of a history split and merge
	// chunks often.
	s, err := Open(db, Options{LeaseExists: func(id int64) bool { return propLeases[id] }, chunkBits: 1,
		LatestCacheBytes:          propLatestCacheBytes,
		ReadCacheBytes:            readCacheBytesMin,
		LiveKeySetBytes:           4 * liveKeySlotsMin,
		plantLatestKeepsAbandoned: bug == "latest-keeps-abandoned",
		ReadCacheKeepsDeleted:     bug == "read-cache-keeps-deleted"})
	if err != nil {
		return nil, err
	}
	m := newModel(propLeases)
	m.bug = bug
	return &runner{db: db, s: s, m: m}, nil
}

func runActions(acts []action, bug string) error {
	r, err := newRunner(bug)
	if err != nil {
		return err
	}
	defer r.db.Close()
	for i, a := range acts {
		if err := r.apply(a); err != nil {
			return fmt.Errorf("action %d (%v): %w", i, a, err)
		}
		if r.s.Rev() != r.m.rev || r.s.CompactRev() != max(r.m.compactRev, 0) {
			return fmt.Errorf("action %d: store at rev %d/compacted %d, model %d/%d", i, r.s.Rev(), r.s.CompactRev(), r.m.rev, r.m.compactRev)
		}
		if err := r.s.VerifyKeyIndex(); err != nil {
			return fmt.Errorf("action %d (%v): %w", i, a, err)
		}
	}
	return r.finalChecks()
}

func same(what string, got proto.Message, gotErr error, want proto.Message, wantErr error) error {
	if !errors.Is(gotErr, wantErr) && gotErr != wantErr {
		return fmt.Errorf("%s: error %v, model %v", what, gotErr, wantErr)
	}
	if gotErr == nil && !proto.Equal(got, want) {
		return fmt.Errorf("%s:\n got   %v\n model %v", what, got, want)
	}
	return nil
}

func (r *runner) apply(a action) error {
	if err := r.applyAction(a); err != nil {
		return err
	}
	return r.readKeys()
}

// readKeys reads every key alone at the current revision: after each
// action, so that the read cache holds keys when the next write replaces
// them.
func (r *runner) readKeys() error {
	for _, key := range propKeys {
		req := &pb.RangeRequest{Key: []byte(key)}
		got, gotErr := r.s.Range(req)
		want, wantErr := r.m.rangeAt(req, r.m.rev)
		if err := same(fmt.Sprintf("read of %q", key), got, gotErr, want, wantErr); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) applyAction(a action) error {
	switch {
	case a.abandon:
		return r.abandonWrites(a.writes)
	case a.writes != nil || a.compactBack >= 0:
		return r.write(a)
	case a.read != nil:
		req := proto.Clone(a.read).(*pb.RangeRequest)
		if a.readBack >= 0 {
			req.Revision = r.m.rev - a.readBack
		}
		if CheckRange(req) != nil {
			return nil
		}
		got, gotErr := r.s.Range(req)
		want, wantErr := r.m.rangeAt(req, r.m.rev)
		return same("range", got, gotErr, want, wantErr)
	case a.readTxn != nil:
		if CheckTxn(a.readTxn, Limits{}) != nil {
			return nil
		}
		got, gotErr := r.s.ReadTxn(a.readTxn)
		want, wantErr := r.m.txn(a.readTxn)
		return same("read txn", got, gotErr, want, wantErr)
	case a.compactSteps > 0:
		return r.compactStep(a.compactSteps)
	case a.reopen:
		if err := r.db.Flush(); err != nil {
			return err
		}
		s, err := Open(r.db, r.s.opts)
		r.s = s
		return err
	}
	return nil
}

func (r *runner) write(a action) error {
	b := r.db.NewIndexedBatch()
	w := r.s.NewWriter(b)
	r.m.events, r.m.prevs = nil, nil
	for _, op := range a.writes {
		if err := r.writeOp(w, op); err != nil {
			return err
		}
	}
	if a.compactBack >= 0 {
		rev := r.m.rev - a.compactBack
		got, gotErr := w.Compact(&pb.CompactionRequest{Revision: rev})
		want, wantErr := r.m.compact(rev)
		if err := same("compact", got, gotErr, want, wantErr); err != nil {
			return err
		}
	}
	if err := r.sameEvents(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	w.Publish()
	return r.samePrevs(w.Events())
}

// abandonWrites applies writes with a Writer that is then closed, its
// batch discarded: the model does not see them, and what they answer is
// not checked.
func (r *runner) abandonWrites(writes []*pb.RequestOp) error {
	b := r.db.NewIndexedBatch()
	defer b.Close()
	w := r.s.NewWriter(b)
	defer w.Close()
	for _, op := range writes {
		switch {
		case op.GetRequestPut() != nil:
			if CheckPut(op.GetRequestPut()) == nil {
				_, _ = w.Put(op.GetRequestPut())
			}
		case op.GetRequestDeleteRange() != nil:
			_, _ = w.DeleteRange(op.GetRequestDeleteRange())
		case op.GetRequestTxn() != nil:
			if CheckTxn(op.GetRequestTxn(), Limits{}) == nil {
				_, _ = w.Txn(op.GetRequestTxn())
			}
		}
	}
	return nil
}

// samePrevs checks that the store reads, below each event's revision, the
// version the event replaced: what a watcher with prev_kv gets.
func (r *runner) samePrevs(events []*mvccpb.Event) error {
	for i, ev := range events {
		got, err := r.s.VersionBefore(ev.Kv.Key, ev.Kv.ModRevision)
		if err != nil {
			return err
		}
		if want := r.m.prevs[i]; !proto.Equal(got, want) {
			return fmt.Errorf("version before event %d (%v):\n got   %v\n model %v", i, ev, got, want)
		}
	}
	return nil
}

func (r *runner) sameEvents(w *Writer) error {
	got, want := w.Events(), r.m.events
	if len(got) != len(want) {
		return fmt.Errorf("events: %d, model %d:\n got   %v\n model %v", len(got), len(want), got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			return fmt.Errorf("event %d:\n got   %v\n model %v", i, got[i], want[i])
		}
	}
	return nil
}

func (r *runner) writeOp(w *Writer, op *pb.RequestOp) error {
	switch {
	case op.GetRequestPut() != nil:
		if CheckPut(op.GetRequestPut()) != nil {
			return nil
		}
		got, gotErr := w.Put(op.GetRequestPut())
		want, wantErr := r.m.put(op.GetRequestPut())
		return same("put", got, gotErr, want, wantErr)
	case op.GetRequestDeleteRange() != nil:
		got, gotErr := w.DeleteRange(op.GetRequestDeleteRange())
		want, wantErr := r.m.deleteRange(op.GetRequestDeleteRange())
		return same("delete", got, gotErr, want, wantErr)
	case op.GetRequestTxn() != nil:
		if CheckTxn(op.GetRequestTxn(), Limits{}) != nil {
			return nil
		}
		got, gotErr := w.Txn(op.GetRequestTxn())
		want, wantErr := r.m.txn(op.GetRequestTxn())
		return same("txn", got, gotErr, want, wantErr)
	}
	return nil
}

// compactStep runs one bounded step and checks that the hash, which covers
// what compaction keeps, did not change.
func (r *runner) compactStep(maxKeys int) error {
	before, _, err := r.s.HashKV(0)
	if err != nil {
		return err
	}
	b := r.db.NewBatch()
	if _, err := r.s.CompactStep(b, maxKeys); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	after, _, err := r.s.HashKV(0)
	if err != nil {
		return err
	}
	if before != after {
		return fmt.Errorf("hash changed by CompactStep: %x -> %x", before, after)
	}
	return nil
}

// finalChecks reads at every readable revision, then finishes compaction
// and reads again, and checks that Pebble holds exactly what compaction
// keeps.
func (r *runner) finalChecks() error {
	if err := r.readEverywhere("before compaction"); err != nil {
		return err
	}
	for r.s.CompactPending() {
		if err := r.compactStep(2); err != nil {
			return err
		}
	}
	if err := r.readEverywhere("after compaction"); err != nil {
		return err
	}
	return r.checkPhysical()
}

// finalLimitMax bounds the limits finalChecks reads with.
const finalLimitMax = 3

// readEverywhere compares, at every revision around the readable ones,
// ranges from every key to the end with limits 0..finalLimitMax: they cross
// every key that does not exist at the revision (created later, deleted,
// compacted) and check count and more across them.
func (r *runner) readEverywhere(when string) error {
	for rev := r.m.rev + 1; rev >= r.m.compactRev-1 && rev >= 0; rev-- {
		for _, key := range propKeys {
			for limit := int64(0); limit <= finalLimitMax; limit++ {
				req := &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte{0}, Revision: rev, Limit: limit}
				got, gotErr := r.s.Range(req)
				want, wantErr := r.m.rangeAt(req, r.m.rev)
				if err := same(fmt.Sprintf("%s: final range %v", when, req), got, gotErr, want, wantErr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkPhysical counts the versions in Pebble against the model's history
// after a finished compaction.
func (r *runner) checkPhysical() error {
	want := 0
	for _, h := range r.m.hist {
		newestBelow := -1
		for i, v := range h {
			if v.rev <= r.m.compactRev {
				newestBelow = i
			} else {
				want++
			}
		}
		// The newest version at or below the compacted revision stays,
		// a tombstone only when it is exactly at that revision.
		if newestBelow >= 0 && (h[newestBelow].kv != nil || h[newestBelow].rev == r.m.compactRev) {
			want++
		}
	}
	if r.m.compactRev < 0 {
		want = 0
		for _, h := range r.m.hist {
			want += len(h)
		}
	}
	got, err := countVersions(r.db)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("after compaction at %d: %d versions stored, want %d", r.m.compactRev, got, want)
	}
	return r.s.VerifyKeyIndex()
}

func countVersions(db *pebble.DB) (int, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
	if err != nil {
		return 0, err
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n, it.Close()
}

func TestPropertyStoreMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		if err := runActions(genActions.Draw(t, "actions"), ""); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPropertyCatchesPlantedBugs proves the property test can fail: a model
// with a deliberate deviation must disagree with the store on some of a
// fixed set of generated histories.
func TestPropertyCatchesPlantedBugs(t *testing.T) {
	bugs := []string{"count-after-limit", "version-survives-delete",
		// The symptoms of bugs that differential tests against etcd found.
		"read-version-above-rev", "compaction-loses-young-key", "nested-txn-header",
		// A store bug: the cache of newest versions keeps what a Writer
		// closed without publishing wrote.
		"latest-keeps-abandoned",
		// The read cache keeps the versions a delete removed.
		"read-cache-keeps-deleted"}
	for _, bug := range bugs {
		caught := false
		for seed := 0; seed < 200 && !caught; seed++ {
			caught = runActions(genActions.Example(seed), bug) != nil
		}
		if !caught {
			t.Errorf("planted bug %q not caught in 200 histories", bug)
		}
	}
}

// quietLogger keeps Pebble's informational logs out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}
