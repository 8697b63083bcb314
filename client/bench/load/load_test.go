package load

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTotalIssuesExactlyTotal(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Config{Name: "t", Clients: 7, Total: 1000}, func(int) Op {
		return func(context.Context) error { calls.Add(1); return nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1000 || res.Ops != 1000 || res.Errors != 0 || res.Latency.Count != 1000 {
		t.Fatalf("calls %d, result %+v", calls.Load(), res)
	}
	if err := res.Valid(); err != nil {
		t.Fatalf("valid run: %v", err)
	}
}

func TestErrorsMakeResultInvalid(t *testing.T) {
	// Every tenth operation fails, whichever client runs it: how the
	// clients share the operations is up to the scheduler.
	var n atomic.Int64
	res, err := Run(context.Background(), Config{Name: "t", Clients: 2, Total: 100}, func(int) Op {
		return func(context.Context) error {
			if n.Add(1)%10 == 0 {
				return errors.New("boom")
			}
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Ops+res.Errors != 100 || res.ErrorSamples["boom"] != res.Errors {
		t.Fatalf("result %+v", res)
	}
	if v := res.Valid(); v == nil || !strings.Contains(v.Error(), "boom") {
		t.Fatalf("Valid = %v, want an error naming boom", v)
	}
}

func TestErrorKindsAreBounded(t *testing.T) {
	var r Result
	for i := 0; i < 100; i++ {
		r.AddError(strings.Repeat("x", i+1), 1)
	}
	if len(r.ErrorSamples) > maxErrorKinds+1 || r.Errors != 100 || r.ErrorSamples["other"] == 0 {
		t.Fatalf("%d kinds, %d errors", len(r.ErrorSamples), r.Errors)
	}
}

func TestRateLimitHoldsThroughput(t *testing.T) {
	res, err := Run(context.Background(), Config{Name: "t", Clients: 4, Duration: 500 * time.Millisecond, Rate: 200}, func(int) Op {
		return func(context.Context) error { return nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 0.5 s is 100 operations; allow for scheduling at the edges.
	if res.Ops < 80 || res.Ops > 102 {
		t.Fatalf("%d ops at 200/s for 0.5 s", res.Ops)
	}
}

func TestDurationStopsAndMeasuresLatency(t *testing.T) {
	res, err := Run(context.Background(), Config{Name: "t", Clients: 3, Duration: 300 * time.Millisecond}, func(int) Op {
		return func(context.Context) error { time.Sleep(2 * time.Millisecond); return nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ElapsedS < 0.29 || res.ElapsedS > 1 {
		t.Fatalf("elapsed %v s for a 0.3 s run", res.ElapsedS)
	}
	if res.Latency.P50MS < 2 || res.Latency.MaxMS < res.Latency.P99MS || res.Latency.P99MS < res.Latency.P50MS {
		t.Fatalf("latency %+v for 2 ms operations", res.Latency)
	}
	if res.HeadlineRate != res.Throughput || res.HeadlineUnit != "ops" {
		t.Fatalf("headline %v %q", res.HeadlineRate, res.HeadlineUnit)
	}
}

func TestCancelStopsWithoutCountingErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	res, err := Run(ctx, Config{Name: "t", Clients: 2, Duration: time.Hour}, func(int) Op {
		return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.ElapsedS > 5 {
		t.Fatalf("result %+v", res)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{{Clients: -1}, {Clients: 1, Total: 5, Duration: time.Second}, {Clients: 1, Rate: -1}}
	for _, c := range bad {
		if _, err := Run(context.Background(), c, func(int) Op { return nil }); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	r := Result{Workload: "w", NotSupported: "Unimplemented"}
	if r.Valid() == nil {
		t.Error("a not-supported result is valid")
	}
	if (&Result{Workload: "w"}).Valid() == nil {
		t.Error("a result with no operations is valid")
	}
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	_, err := Run(context.Background(), Config{Name: "p", Clients: 1, Duration: 250 * time.Millisecond, Progress: &buf, ProgressInterval: 50 * time.Millisecond}, func(int) Op {
		return func(context.Context) error { time.Sleep(time.Millisecond); return nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "[p] [") || !strings.Contains(buf.String(), "ops") {
		t.Fatalf("progress output %q", buf.String())
	}
	line := progressLine(Config{Name: "x", Total: 100}, time.Second, 50, 0, 10)
	if !strings.Contains(line, " 50%") {
		t.Fatalf("half-way line %q", line)
	}
}
