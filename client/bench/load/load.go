package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/client/bench/hist"
)

// maxErrorKinds bounds the distinct error messages a Result keeps; further
// kinds are counted under "other".
const maxErrorKinds = 16

// Op runs one operation. It is called from one goroutine only (its worker).
type Op func(ctx context.Context) error

// Config is what the driver needs; zero fields get the defaults of EnsureDefaults.
type Config struct {
	// Name labels progress lines and the Result.
	Name string
	// Clients is the number of concurrent workers (default 100).
	Clients int
	// Duration bounds the run in wall time (default 10 s when Total is 0).
	Duration time.Duration
	// Total bounds the run in operations issued; 0 means run for Duration.
	Total uint64
	// Rate caps operations per second over all workers; 0 means no cap.
	Rate float64
	// OpTimeout bounds one operation (default 10 s); a timeout is an error.
	OpTimeout time.Duration
	// Progress, when not nil, gets a progress line every ProgressInterval (default 1 s).
	Progress         io.Writer
	ProgressInterval time.Duration
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.Clients == 0 {
		c.Clients = 100
	}
	if c.Total == 0 && c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
}

// Validate reports a configuration the driver cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Clients < 1:
		return fmt.Errorf("clients %d: want at least 1", c.Clients)
	case c.Duration < 0 || c.Rate < 0:
		return errors.New("duration and rate must not be negative")
	case c.Total > 0 && c.Duration > 0:
		return errors.New("give either a duration or a total, not both")
	}
	return nil
}

// Latency is a latency summary in milliseconds, as printed and as JSON.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// LatencyOf converts a histogram's summary.
func LatencyOf(h *hist.Histogram) Latency {
	s := h.Summarize()
	return Latency{Count: s.Count, MeanMS: ms(s.Mean), P50MS: ms(s.P50), P90MS: ms(s.P90), P99MS: ms(s.P99), P999MS: ms(s.P999), MaxMS: ms(s.Max)}
}

// Sub is a named part of a result: one operation kind of a mix, or watch events.
type Sub struct {
	Name    string  `json:"name"`
	Rate    float64 `json:"per_second"`
	Latency Latency `json:"latency"`
}

// Result is what a run measured.
type Result struct {
	Workload string `json:"workload"`
	// NotSupported, when set, says why the server could not run the workload;
	// nothing else in the Result is a measurement then.
	NotSupported string            `json:"not_supported,omitempty"`
	Ops          uint64            `json:"ops"`
	Errors       uint64            `json:"errors"`
	ErrorSamples map[string]uint64 `json:"error_samples,omitempty"`
	ElapsedS     float64           `json:"elapsed_s"`
	// Throughput is successful operations per second.
	Throughput float64 `json:"ops_per_second"`
	Latency    Latency `json:"latency"`
	// Headline is the figure a comparison uses: the operations themselves,
	// or for watch the events delivered.
	HeadlineUnit    string  `json:"headline_unit"`
	HeadlineRate    float64 `json:"headline_per_second"`
	HeadlineLatency Latency `json:"headline_latency"`
	// Subs are the parts of the result the workload adds (per kind, events).
	Subs []Sub `json:"subs,omitempty"`
	// Counters are named totals the workload adds (CAS conflicts, events).
	Counters map[string]float64 `json:"counters,omitempty"`
}

// Valid is nil when the Result is a measurement that may be reported.
func (r *Result) Valid() error {
	switch {
	case r.NotSupported != "":
		return fmt.Errorf("%s: not supported: %s", r.Workload, r.NotSupported)
	case r.Errors > 0:
		return fmt.Errorf("%s: %d errors (%s); the figures are not a valid measurement", r.Workload, r.Errors, r.errorSummary())
	case r.Ops == 0:
		return fmt.Errorf("%s: no operation completed", r.Workload)
	}
	return nil
}

func (r *Result) errorSummary() string {
	parts := make([]string, 0, len(r.ErrorSamples))
	for msg, n := range r.ErrorSamples {
		parts = append(parts, fmt.Sprintf("%d× %s", n, msg))
	}
	return strings.Join(parts, "; ")
}

// AddError counts n errors of one kind, keeping at most maxErrorKinds kinds.
func (r *Result) AddError(msg string, n uint64) {
	if n == 0 {
		return
	}
	if r.ErrorSamples == nil {
		r.ErrorSamples = map[string]uint64{}
	}
	if _, ok := r.ErrorSamples[msg]; !ok && len(r.ErrorSamples) >= maxErrorKinds {
		msg = "other"
	}
	r.ErrorSamples[msg] += n
	r.Errors += n
}

// worker is one goroutine's state. Only its goroutine writes it until Run's
// WaitGroup returns; ops and errors are atomics so progress can read them.
type worker struct {
	op     Op
	hist   hist.Histogram
	ops    atomic.Uint64
	errors atomic.Uint64
	errMsg map[string]uint64
}

// Run drives newOp's operations, one Op per worker, and returns what was measured.
// It returns an error only for a bad Config; failed operations are in the Result.
func Run(ctx context.Context, cfg Config, newOp func(worker int) Op) (Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = &worker{op: newOp(i), errMsg: map[string]uint64{}}
	}
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	t := &tickets{total: cfg.Total, deadline: deadline, start: start}
	if cfg.Rate > 0 {
		t.interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	stopProgress := startProgress(cfg, workers, start)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, t, cfg.OpTimeout)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	return collect(cfg.Name, workers, elapsed), nil
}

// tickets hands out permission to issue operations.
type tickets struct {
	total    uint64
	deadline time.Time
	start    time.Time
	interval time.Duration // 0: no rate limit
	issued   atomic.Uint64
}

// take blocks until the next operation may start; false means stop.
func (t *tickets) take(ctx context.Context) bool {
	n := t.issued.Add(1)
	if t.total > 0 && n > t.total {
		return false
	}
	if t.interval > 0 {
		due := t.start.Add(time.Duration(n-1) * t.interval)
		if !t.deadline.IsZero() && due.After(t.deadline) {
			return false
		}
		if wait := time.Until(due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return false
			}
		}
	}
	if ctx.Err() != nil {
		return false
	}
	return t.deadline.IsZero() || time.Now().Before(t.deadline)
}

func (w *worker) loop(ctx context.Context, t *tickets, opTimeout time.Duration) {
	for t.take(ctx) {
		opCtx, cancel := context.WithTimeout(ctx, opTimeout)
		begin := time.Now()
		err := w.op(opCtx)
		took := time.Since(begin)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted: not the server's error
			}
			w.errors.Add(1)
			w.errMsg[err.Error()]++
			continue
		}
		w.hist.Record(took)
		w.ops.Add(1)
	}
}

func collect(name string, workers []*worker, elapsed time.Duration) Result {
	r := Result{Workload: name, ElapsedS: elapsed.Seconds(), HeadlineUnit: "ops"}
	var h hist.Histogram
	for _, w := range workers {
		h.Merge(&w.hist)
		r.Ops += w.ops.Load()
		for msg, n := range w.errMsg {
			r.AddError(msg, n)
		}
	}
	r.Latency = LatencyOf(&h)
	if elapsed > 0 {
		r.Throughput = float64(r.Ops) / elapsed.Seconds()
	}
	r.HeadlineRate, r.HeadlineLatency = r.Throughput, r.Latency
	return r
}

// startProgress prints a progress line to cfg.Progress until the returned
// function is called. On a terminal the line is redrawn in place.
func startProgress(cfg Config, workers []*worker, start time.Time) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	inPlace := isTerminal(cfg.Progress)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(cfg.ProgressInterval)
		defer tick.Stop()
		var lastOps uint64
		last := start
		for {
			select {
			case <-done:
				if inPlace {
					fmt.Fprintln(cfg.Progress)
				}
				return
			case now := <-tick.C:
				var ops, errs uint64
				for _, w := range workers {
					ops += w.ops.Load()
					errs += w.errors.Load()
				}
				rate := float64(ops-lastOps) / now.Sub(last).Seconds()
				lastOps, last = ops, now
				line := progressLine(cfg, now.Sub(start), ops, errs, rate)
				if inPlace {
					fmt.Fprintf(cfg.Progress, "\r%s", line)
				} else {
					fmt.Fprintln(cfg.Progress, line)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progressLine renders "[name] [=====>    ]  45%  4.5s  12345 ops  2740/s  0 errors".
func progressLine(cfg Config, elapsed time.Duration, ops, errs uint64, rate float64) string {
	var frac float64
	if cfg.Total > 0 {
		frac = float64(ops+errs) / float64(cfg.Total)
	} else if cfg.Duration > 0 {
		frac = elapsed.Seconds() / cfg.Duration.Seconds()
	}
	frac = min(max(frac, 0), 1)
	const width = 30
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	return fmt.Sprintf("[%s] [%s] %3.0f%% %6.1fs %9d ops %8.0f/s %d errors", cfg.Name, bar, frac*100, elapsed.Seconds(), ops, rate, errs)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
