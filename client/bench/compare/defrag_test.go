package compare

import (
	"strings"
	"testing"
	"time"
)

// The phases are kept apart: an operation recorded before the defragment
// does not count during it, and the rates divide by each phase's length.
func TestSummarizePhaseKeepsPhasesApart(t *testing.T) {
	reader, writer := &defragWorker{}, &defragWorker{write: true}
	for range 100 {
		reader.hists[phaseBefore].Record(time.Millisecond)
		writer.hists[phaseBefore].Record(2 * time.Millisecond)
	}
	reader.hists[phaseDuring].Record(500 * time.Millisecond)
	writer.errors[phaseDuring] = map[string]uint64{"etcdserver: request timed out": 3}
	workers := []*defragWorker{reader, writer}
	before := summarizePhase(workers, phaseBefore, 10*time.Second)
	during := summarizePhase(workers, phaseDuring, 2*time.Second)
	if before.Reads.Count != 100 || before.Writes.Count != 100 || before.ReadsPerS != 10 || before.Errors != 0 {
		t.Fatalf("before %+v", before)
	}
	if before.Reads.P99MS > 1.1 || before.Writes.P99MS < 1.9 {
		t.Fatalf("before p99 read %.2f write %.2f", before.Reads.P99MS, before.Writes.P99MS)
	}
	if during.Reads.Count != 1 || during.Writes.Count != 0 || during.ReadsPerS != 0.5 || during.Errors != 3 {
		t.Fatalf("during %+v", during)
	}
	if during.Reads.MaxMS < 499 {
		t.Fatalf("during max %.1f ms", during.Reads.MaxMS)
	}
}

func TestDefragTableShowsPhasesErrorsAndFailures(t *testing.T) {
	ok := DefragRun{System: "etcd", Keys: 1000, DefragSeconds: 2.5, DBSizeBeforeBytes: 100 << 20, DBSizeAfterBytes: 60 << 20,
		Before: DefragPhase{Seconds: 10, ReadsPerS: 900},
		During: DefragPhase{Seconds: 2.5, Errors: 4, ErrorSamples: map[string]uint64{"a": 1, "etcdserver: request timed out": 3}}}
	ok.Before.Reads.Count, ok.Before.Reads.P99MS = 9000, 1.25
	failed := DefragRun{System: "cairn", Keys: 1000, Failure: "preload keys 0..99: boom"}
	table := DefragTable([]DefragRun{ok, failed})
	for _, want := range []string{"| etcd | 1000 | 2.5 | 100 (0) → 60 (0) | before (10 s) | 900 | ", "1.25", "| during |",
		"4 (3× etcdserver: request timed out)", "none completed", "| cairn | 1000 | failed: preload keys 0..99: boom"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestDocHasDefragSectionWithPlaceholderUntilRun(t *testing.T) {
	doc := RenderDoc(Reports{}, "bench/chart.svg", "bench/soak.svg")
	if !strings.Contains(doc, "make bench-defrag") || !strings.Contains(doc, "not run yet") {
		t.Fatal("doc lacks the defragment section's placeholder")
	}
	rep := &DefragReport{Date: "d", Command: "make bench-defrag", Keys: 7, Readers: 8, Writers: 8, Baseline: "10s",
		Runs: []DefragRun{{System: "etcd", Keys: 7, DefragSeconds: 1}}}
	doc = RenderDoc(Reports{Defrag: rep}, "bench/chart.svg", "bench/soak.svg")
	if strings.Contains(doc, "not run yet on this checkout.** The reference") || !strings.Contains(doc, "| etcd | 7 | 1.0 |") {
		t.Fatalf("doc with a run:\n%s", doc)
	}
}
