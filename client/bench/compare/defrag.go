package compare

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/client/bench/hist"
	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

// DefragConfig is the defragment-under-load scenario: a fresh single member
// of each system gets Keys keys, loses a share of them to deletes and
// overwrites (compacted away, so the defragment has space to give back),
// and serves a steady read and write load before and during a Defragment.
type DefragConfig struct {
	Etcd, Cairn System
	// Keys is the number of keys loaded (default 1,000,000).
	Keys int
	// ValueSize is each value's size in bytes (default 256).
	ValueSize int
	// Readers and Writers are the concurrent clients of the load, each in
	// a closed loop (default 8 and 8).
	Readers, Writers int
	// Conns is the number of client connections (default 8).
	Conns int
	// Baseline is how long the load runs before the Defragment call
	// (default 10 s).
	Baseline time.Duration
	// DefragTimeout bounds the Defragment call, and so the load during it;
	// it also bounds each operation of the load, so a request the server
	// holds for the whole defragment is measured rather than cut off
	// (default 10 min).
	DefragTimeout time.Duration
	BasePort      int
	WorkDir       string
	Progress      io.Writer
}

func (c *DefragConfig) ensureDefaults() {
	if c.Keys == 0 {
		c.Keys = 1000000
	}
	if c.ValueSize == 0 {
		c.ValueSize = 256
	}
	if c.Readers == 0 {
		c.Readers = 8
	}
	if c.Writers == 0 {
		c.Writers = 8
	}
	if c.Conns == 0 {
		c.Conns = 8
	}
	if c.Baseline == 0 {
		c.Baseline = 10 * time.Second
	}
	if c.DefragTimeout == 0 {
		c.DefragTimeout = 10 * time.Minute
	}
}

// The churn before the defragment: of every defragChurnStride keys, one is
// deleted and one is overwritten, then the history is compacted, so a
// quarter of the keys and the old versions of another quarter are space
// the defragment can give back.
const (
	defragChurnStride    = 4
	defragDeleteResidue  = 1
	defragRewriteResidue = 3
)

// defragErrorKindsMax bounds the distinct error messages a phase keeps.
const defragErrorKindsMax = 8

// DefragPhase is what the load measured in one phase: before the
// Defragment call, or from the call until it returned.
type DefragPhase struct {
	Seconds      float64           `json:"seconds"`
	Reads        load.Latency      `json:"reads"`
	Writes       load.Latency      `json:"writes"`
	ReadsPerS    float64           `json:"reads_per_second"`
	WritesPerS   float64           `json:"writes_per_second"`
	Errors       uint64            `json:"errors"`
	ErrorSamples map[string]uint64 `json:"error_samples,omitempty"`
}

// DefragRun is one system's defragment under load.
type DefragRun struct {
	System       string  `json:"system"`
	Keys         int     `json:"keys"`
	LoadSeconds  float64 `json:"load_seconds"`
	ChurnSeconds float64 `json:"churn_seconds"`
	// DBSize and DBSizeInUse are Status's dbSize and dbSizeInUse, just
	// before the Defragment call and just after it returned.
	DBSizeBeforeBytes      int64       `json:"db_size_before_bytes"`
	DBSizeInUseBeforeBytes int64       `json:"db_size_in_use_before_bytes"`
	DBSizeAfterBytes       int64       `json:"db_size_after_bytes"`
	DBSizeInUseAfterBytes  int64       `json:"db_size_in_use_after_bytes"`
	DefragSeconds          float64     `json:"defrag_seconds"`
	Before                 DefragPhase `json:"before"`
	During                 DefragPhase `json:"during"`
	Failure                string      `json:"failure,omitempty"`
}

// DefragReport is what `cairnbench defrag` saves (docs/bench/defrag.json).
type DefragReport struct {
	Date     string      `json:"date"`
	Command  string      `json:"command"`
	Machine  Machine     `json:"machine"`
	Keys     int         `json:"keys"`
	Readers  int         `json:"readers"`
	Writers  int         `json:"writers"`
	Baseline string      `json:"baseline"`
	Runs     []DefragRun `json:"runs"`
}

// Defrag runs the scenario against etcd, then cairn.
func Defrag(ctx context.Context, cfg DefragConfig) []DefragRun {
	cfg.ensureDefaults()
	var out []DefragRun
	for i, sys := range []System{cfg.Etcd, cfg.Cairn} {
		r := defragOne(ctx, cfg, sys, cfg.BasePort+10*i)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "defrag %s keys=%d: %.1f s, db %.0f -> %.0f MB; read p99 %.2f -> %.2f ms, write p99 %.2f -> %.2f ms %s\n",
				r.System, r.Keys, r.DefragSeconds, mb(r.DBSizeBeforeBytes), mb(r.DBSizeAfterBytes),
				r.Before.Reads.P99MS, r.During.Reads.P99MS, r.Before.Writes.P99MS, r.During.Writes.P99MS, r.Failure)
		}
		out = append(out, r)
		if ctx.Err() != nil {
			return out
		}
	}
	return out
}

func defragOne(ctx context.Context, cfg DefragConfig, sys System, port int) DefragRun {
	r := DefragRun{System: sys.Name, Keys: cfg.Keys}
	cl, err := StartCluster(ctx, sys, 1, cfg.WorkDir, port)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer cl.Stop()
	clis, err := workload.Dial(cl.Endpoints, cfg.Conns)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer workload.CloseAll(clis)
	if err := defragPrepare(ctx, cfg, clis, &r); err != nil {
		r.Failure = err.Error()
		return r
	}
	endpoint := cl.Endpoints[0]
	if err := defragUnderLoad(ctx, cfg, clis, endpoint, &r); err != nil {
		r.Failure = err.Error()
		return r
	}
	if r.DBSizeAfterBytes, r.DBSizeInUseAfterBytes, err = dbSizes(ctx, clis[0], endpoint); err != nil {
		r.Failure = err.Error()
	}
	return r
}

// defragPrepare loads the keys, deletes and overwrites a share of them and
// compacts the history away, waiting for the physical compaction.
func defragPrepare(ctx context.Context, cfg DefragConfig, clis []*clientv3.Client, r *DefragRun) error {
	sp := largeKeySpace(cfg.Keys)
	key := func(i int) string { return string(sp.Key(nil, i)) }
	cfg.logf("defrag %s: loading %d keys", r.System, cfg.Keys)
	begin := time.Now()
	if _, err := workload.Preload(ctx, clis, cfg.Keys, key, keys.Value(cfg.ValueSize)); err != nil {
		return err
	}
	r.LoadSeconds = time.Since(begin).Seconds()
	begin = time.Now()
	churned := cfg.Keys / defragChurnStride
	cfg.logf("defrag %s: deleting %d keys, overwriting %d, compacting", r.System, churned, churned)
	deleted := func(i int) clientv3.Op { return clientv3.OpDelete(key(i*defragChurnStride + defragDeleteResidue)) }
	if err := batchTxns(ctx, clis, churned, deleted); err != nil {
		return err
	}
	rewritten := func(i int) string { return key(i*defragChurnStride + defragRewriteResidue) }
	revs, err := workload.Preload(ctx, clis, churned, rewritten, []byte(strings.ToUpper(string(keys.Value(cfg.ValueSize)))))
	if err != nil {
		return err
	}
	rev := int64(0)
	for _, v := range revs {
		rev = max(rev, v)
	}
	if rev == 0 {
		resp, err := clis[0].Get(ctx, "defrag-revision")
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.DefragTimeout)
	defer cancel()
	if _, err := clis[0].Compact(cctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact to %d: %w", rev, err)
	}
	r.ChurnSeconds = time.Since(begin).Seconds()
	return nil
}

// defragBatchOps is the operations per churn txn, under etcd's default
// --max-txn-ops of 128; defragBatchConcurrency the txns in flight.
const (
	defragBatchOps         = 100
	defragBatchConcurrency = 16
)

// batchTxns commits opOf(0..count-1) in txns of defragBatchOps.
func batchTxns(ctx context.Context, clis []*clientv3.Client, count int, opOf func(i int) clientv3.Op) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, defragBatchConcurrency)
	for g := range defragBatchConcurrency {
		cli := clis[g%len(clis)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(defragBatchOps)) - defragBatchOps
				if first >= count || ctx.Err() != nil {
					return
				}
				last := min(first+defragBatchOps, count)
				ops := make([]clientv3.Op, 0, last-first)
				for i := first; i < last; i++ {
					ops = append(ops, opOf(i))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs[g] = fmt.Errorf("churn ops %d..%d: %w", first, last-1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

func dbSizes(ctx context.Context, cli *clientv3.Client, endpoint string) (total, inUse int64, err error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := cli.Status(sctx, endpoint)
	if err != nil {
		return 0, 0, fmt.Errorf("status: %w", err)
	}
	return st.DbSize, st.DbSizeInUse, nil
}

// The phases of the load. An operation counts before the defragment if
// it started and ended before the call, and during it if it was in flight
// at any moment from the call until the call returned.
const (
	phaseBefore int32 = iota
	phaseDuring
	phaseDone
	phasesMeasured = 2
)

// defragWorker is one client of the load. Only its goroutine writes it
// until the load's WaitGroup returns.
type defragWorker struct {
	write  bool
	hists  [phasesMeasured]hist.Histogram
	errors [phasesMeasured]map[string]uint64
}

// defragUnderLoad runs the load for the baseline, then calls Defragment
// and keeps the load on until it returns.
func defragUnderLoad(ctx context.Context, cfg DefragConfig, clis []*clientv3.Client, endpoint string, r *DefragRun) error {
	var phase atomic.Int32
	workers := make([]*defragWorker, cfg.Readers+cfg.Writers)
	sp := largeKeySpace(cfg.Keys)
	value := string(keys.Value(cfg.ValueSize))
	var wg sync.WaitGroup
	for i := range workers {
		w := &defragWorker{write: i >= cfg.Readers}
		workers[i] = w
		cli := clis[i%len(clis)]
		rng := rand.New(rand.NewPCG(uint64(i), 0x64656672))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, cli, &phase, cfg.DefragTimeout, func() string { return string(sp.Key(nil, rng.IntN(sp.Count))) }, value)
		}()
	}
	cfg.logf("defrag %s: load for %v, then Defragment", r.System, cfg.Baseline)
	baselineStart := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(cfg.Baseline):
	}
	var err error
	if r.DBSizeBeforeBytes, r.DBSizeInUseBeforeBytes, err = dbSizes(ctx, clis[0], endpoint); err != nil {
		phase.Store(phaseDone)
		wg.Wait()
		return err
	}
	defragStart := time.Now()
	phase.Store(phaseDuring)
	dctx, cancel := context.WithTimeout(ctx, cfg.DefragTimeout)
	_, err = clis[0].Defragment(dctx, endpoint)
	cancel()
	defragEnd := time.Now()
	phase.Store(phaseDone)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.DefragSeconds = defragEnd.Sub(defragStart).Seconds()
	r.Before = summarizePhase(workers, phaseBefore, defragStart.Sub(baselineStart))
	r.During = summarizePhase(workers, phaseDuring, defragEnd.Sub(defragStart))
	return nil
}

// loop runs operations until the phase is done: a linearizable read or a
// put of a random existing key. No operation starts once the defragment
// returned.
func (w *defragWorker) loop(ctx context.Context, cli *clientv3.Client, phase *atomic.Int32, opTimeout time.Duration, key func() string, value string) {
	for i := range w.errors {
		w.errors[i] = map[string]uint64{}
	}
	for ctx.Err() == nil {
		p := phase.Load()
		if p == phaseDone {
			return
		}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		begin := time.Now()
		var err error
		if w.write {
			_, err = cli.Put(octx, key(), value)
		} else {
			_, err = cli.Get(octx, key())
		}
		took := time.Since(begin)
		cancel()
		if phase.Load() != phaseBefore {
			p = phaseDuring // it overlapped the defragment
		}
		switch {
		case err == nil:
			w.hists[p].Record(took)
		case ctx.Err() == nil:
			msg := err.Error()
			if _, ok := w.errors[p][msg]; !ok && len(w.errors[p]) >= defragErrorKindsMax {
				msg = "other"
			}
			w.errors[p][msg]++
		}
	}
}

func summarizePhase(workers []*defragWorker, p int32, elapsed time.Duration) DefragPhase {
	var reads, writes hist.Histogram
	out := DefragPhase{Seconds: elapsed.Seconds()}
	for _, w := range workers {
		if w.write {
			writes.Merge(&w.hists[p])
		} else {
			reads.Merge(&w.hists[p])
		}
		for msg, n := range w.errors[p] {
			if out.ErrorSamples == nil {
				out.ErrorSamples = map[string]uint64{}
			}
			out.ErrorSamples[msg] += n
			out.Errors += n
		}
	}
	out.Reads, out.Writes = load.LatencyOf(&reads), load.LatencyOf(&writes)
	if elapsed > 0 {
		out.ReadsPerS = float64(reads.Count()) / elapsed.Seconds()
		out.WritesPerS = float64(writes.Count()) / elapsed.Seconds()
	}
	return out
}

func (c *DefragConfig) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format+"\n", args...)
	}
}

// DefragTable renders the runs in markdown: per system, the load before
// the defragment and during it.
func DefragTable(runs []DefragRun) string {
	var b strings.Builder
	b.WriteString("| system | keys | defragment s | db size (in use) before → after MB | phase | reads/s | read p50 / p99 / max ms | writes/s | write p50 / p99 / max ms | errors |\n")
	b.WriteString("| --- | --: | --: | --: | --- | --: | --: | --: | --: | --: |\n")
	for _, r := range runs {
		if r.Failure != "" {
			fmt.Fprintf(&b, "| %s | %d | failed: %s | | | | | | | |\n", r.System, r.Keys, oneLine(r.Failure))
			continue
		}
		sizes := fmt.Sprintf("%.0f (%.0f) → %.0f (%.0f)", mb(r.DBSizeBeforeBytes), mb(r.DBSizeInUseBeforeBytes), mb(r.DBSizeAfterBytes), mb(r.DBSizeInUseAfterBytes))
		for i, ph := range []struct {
			name string
			p    DefragPhase
		}{{"before (" + seconds(r.Before.Seconds) + ")", r.Before}, {"during", r.During}} {
			system, keyCount, took := "", "", ""
			if i == 0 {
				system, keyCount, took = r.System, strconv.Itoa(r.Keys), fmt.Sprintf("%.1f", r.DefragSeconds)
			} else {
				sizes = ""
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f | %s | %.0f | %s | %s |\n", system, keyCount, took, sizes, ph.name,
				ph.p.ReadsPerS, latencyCells(ph.p.Reads), ph.p.WritesPerS, latencyCells(ph.p.Writes), phaseErrors(ph.p))
		}
	}
	return b.String()
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 0, 64) + " s" }

func latencyCells(l load.Latency) string {
	if l.Count == 0 {
		return "none completed"
	}
	return fmt.Sprintf("%.2f / %.2f / %.0f", l.P50MS, l.P99MS, l.MaxMS)
}

// phaseErrors is the phase's error count with its most frequent message.
func phaseErrors(p DefragPhase) string {
	if p.Errors == 0 {
		return "0"
	}
	top, topN := "", uint64(0)
	for msg, n := range p.ErrorSamples {
		if n > topN || (n == topN && msg < top) {
			top, topN = msg, n
		}
	}
	return fmt.Sprintf("%d (%d× %s)", p.Errors, topN, oneLine(top))
}
