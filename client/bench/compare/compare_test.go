package compare

import (
	"os"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

func run(system, kase string, size, round int, rate, p99 float64, errs uint64) Run {
	r := Run{System: system, Case: kase, Size: size, Round: round, PeakRSSBytes: []int64{10 << 20, 20 << 20}, DiskBytes: []int64{1 << 20, 1 << 20}}
	r.Result = load.Result{Workload: kase, Ops: 100, HeadlineUnit: "ops", HeadlineRate: rate, HeadlineLatency: load.Latency{P99MS: p99}}
	if errs > 0 {
		r.Result.AddError("boom", errs)
	}
	return r
}

func TestSummarizeTakesMediansAndRatios(t *testing.T) {
	runs := []Run{
		run("etcd", "put", 1, 1, 100, 10, 0), run("cairn", "put", 1, 1, 300, 5, 0),
		run("etcd", "put", 1, 2, 200, 30, 0), run("cairn", "put", 1, 2, 100, 1, 0),
		run("etcd", "put", 1, 3, 150, 20, 0), run("cairn", "put", 1, 3, 200, 2, 0),
	}
	rows := Summarize(runs)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	if r.Etcd.Rate != 150 || r.Cairn.Rate != 200 || r.Etcd.P99MS != 20 || r.Cairn.P99MS != 2 {
		t.Fatalf("medians %+v", r)
	}
	if r.RateRatio != 200.0/150 || r.P99Ratio != 0.1 {
		t.Fatalf("ratios %v %v", r.RateRatio, r.P99Ratio)
	}
	if r.Etcd.PeakRSSBytes != 20<<20 || r.Etcd.DiskBytes != 2<<20 {
		t.Fatalf("rss %d disk %d", r.Etcd.PeakRSSBytes, r.Etcd.DiskBytes)
	}
}

func TestOneFailedRunMeansNoRatio(t *testing.T) {
	runs := []Run{
		run("etcd", "txn-cas", 3, 1, 100, 10, 0), run("cairn", "txn-cas", 3, 1, 300, 5, 0),
		run("etcd", "txn-cas", 3, 2, 100, 10, 0), run("cairn", "txn-cas", 3, 2, 300, 5, 7),
	}
	rows := Summarize(runs)
	if rows[0].RateRatio != 0 || rows[0].Cairn.Invalid == "" || !AnyInvalid(rows) {
		t.Fatalf("row %+v", rows[0])
	}
	table := Table(rows)
	if !strings.Contains(table, "no figure¹") || strings.Contains(table, "**") {
		t.Fatalf("table shows a figure for a failed case:\n%s", table)
	}
	if f := Failures(rows); !strings.Contains(f, "boom") {
		t.Fatalf("failures %q", f)
	}
}

func TestNotSupportedIsAGapNotAFailure(t *testing.T) {
	e := run("etcd", "lease", 1, 1, 100, 10, 0)
	c := Run{System: "cairn", Case: "lease", Size: 1, Round: 1, Result: load.Result{Workload: "lease", NotSupported: "Unimplemented"}}
	rows := Summarize([]Run{e, c})
	if AnyInvalid(rows) || rows[0].RateRatio != 0 || !strings.Contains(Table(rows), "not supported") {
		t.Fatalf("rows %+v", rows)
	}
	svg := Chart("t", rows)
	if !strings.Contains(svg, "not supported") {
		t.Fatal("chart does not say not supported")
	}
	doc := RenderDoc(Reports{Main: &Report{Quick: true, Rows: rows}}, "bench/chart.svg", "bench/soak.svg")
	if !strings.Contains(doc, "QUICK") || !strings.Contains(doc, "bench/chart.svg") || !strings.Contains(doc, "make bench-large") {
		t.Fatal("doc lacks the QUICK label, the chart or the large-data section")
	}
}

func TestNextPortStaysInSpan(t *testing.T) {
	p := 24000
	for i := 0; i < 1000; i++ {
		p = nextPort(p, 24000, 3)
		if p < 24000 || p+6 > 24000+portSpan {
			t.Fatalf("port %d outside the span", p)
		}
	}
}

// TestAuthCases: every auth case exists, authenticates as root, and gets
// the flags of its token kind; the JWT flags name key files that exist.
func TestAuthCases(t *testing.T) {
	for name, kind := range authCaseTokens {
		k, err := findCase(name)
		if err != nil {
			t.Fatal(err)
		}
		var o workload.Options
		k.Tune(&o)
		if o.Username != benchRootUser || o.Password != benchRootPassword {
			t.Errorf("%s: clients dial as %q", name, o.Username)
		}
		flags, err := authFlags(kind, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if len(flags) != 2 || flags[0] != "--auth-token" || !strings.HasPrefix(flags[1], kind) {
			t.Fatalf("%s: flags %q", name, flags)
		}
		if kind != authTokenJWT {
			continue
		}
		for _, opt := range strings.Split(flags[1], ",")[1:] {
			if key, path, _ := strings.Cut(opt, "="); key == "pub-key" || key == "priv-key" {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: %s: %v", name, key, err)
				}
			}
		}
	}
}
