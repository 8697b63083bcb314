package compare

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/cairn-db/cairn/client/bench/chart"
	"github.com/cairn-db/cairn/client/bench/load"
)

// Machine describes where a run was made.
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	EtcdVersion string `json:"etcd_version"`
	CairnCommit string `json:"cairn_commit"`
}

// DescribeMachine reads /proc and asks the binaries and git.
func DescribeMachine(etcdBin, repo string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(etcdBin, "--version").Output(); err == nil {
		m.EtcdVersion = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if out, err := exec.Command("git", "-C", repo, "describe", "--always", "--dirty").Output(); err == nil {
		m.CairnCommit = strings.TrimSpace(string(out))
	}
	return m
}

// Report is a comparison as saved to JSON and rendered.
type Report struct {
	Date     string  `json:"date"`
	Command  string  `json:"command"`
	Quick    bool    `json:"quick"`
	Machine  Machine `json:"machine"`
	Rounds   int     `json:"rounds"`
	Duration string  `json:"duration"`
	Clients  int     `json:"clients"`
	Conns    int     `json:"conns"`
	Rows     []Row   `json:"rows"`
	Runs     []Run   `json:"runs"`
}

// LargeReport is a large-data scenario as saved and rendered.
type LargeReport struct {
	Date    string     `json:"date"`
	Command string     `json:"command"`
	Quick   bool       `json:"quick"`
	Machine Machine    `json:"machine"`
	Runs    []LargeRun `json:"runs"`
}

// Now is the date format of reports.
func Now() string { return time.Now().UTC().Format("2006-01-02 15:04 UTC") }

// SaveJSON writes v to path.
func SaveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// LoadJSON reads path into v; a missing file leaves v alone and returns false.
func LoadJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// Table renders rows as a markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| case | members | etcd /s | cairn /s | cairn/etcd | etcd p50 / p99 ms | cairn p50 / p99 ms | p99 cairn/etcd | peak RSS etcd / cairn MB | disk etcd / cairn MB |\n")
	b.WriteString("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, r := range rows {
		ratio, p99ratio := "—", "—"
		if r.RateRatio > 0 {
			ratio, p99ratio = fmt.Sprintf("**%.2f**", r.RateRatio), fmt.Sprintf("%.2f", r.P99Ratio)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Case, r.Size,
			rate(r.Etcd), rate(r.Cairn), ratio, lat(r.Etcd), lat(r.Cairn), p99ratio, mem(r.Etcd.PeakRSSBytes, r.Cairn.PeakRSSBytes, r), mem(r.Etcd.DiskBytes, r.Cairn.DiskBytes, r))
	}
	return b.String()
}

func rate(f Figure) string {
	if f.Invalid != "" {
		if isNotSupported(f.Invalid) {
			return "not supported"
		}
		return "no figure¹"
	}
	unit := ""
	if f.Unit != "ops" {
		unit = " " + f.Unit
	}
	return fmt.Sprintf("%.0f%s", f.Rate, unit)
}

func lat(f Figure) string {
	if f.Invalid != "" {
		return "—"
	}
	return fmt.Sprintf("%.2f / %.2f", f.P50MS, f.P99MS)
}

func mem(e, c int64, r Row) string {
	es, cs := "—", "—"
	if r.Etcd.Invalid == "" {
		es = fmt.Sprintf("%.0f", mb(e))
	}
	if r.Cairn.Invalid == "" {
		cs = fmt.Sprintf("%.0f", mb(c))
	}
	return es + " / " + cs
}

// Failures lists why figures are missing, for the footnote.
func Failures(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		for _, f := range []struct {
			sys string
			fig Figure
		}{{"etcd", r.Etcd}, {"cairn", r.Cairn}} {
			if f.fig.Invalid != "" && !isNotSupported(f.fig.Invalid) {
				fmt.Fprintf(&b, "- %s, %d member(s), %s: %s\n", r.Case, r.Size, f.sys, oneLine(f.fig.Invalid))
			}
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Chart renders rows as the comparison SVG.
func Chart(title string, rows []Row) string {
	byCase := map[string]*chart.Row{}
	var order []string
	for _, r := range rows {
		cr, ok := byCase[r.Case]
		if !ok {
			unit := r.Etcd.Unit
			if unit == "" {
				unit = r.Cairn.Unit
			}
			if unit == "" {
				unit = "ops"
			}
			cr = &chart.Row{Title: r.Case, RateUnit: unit + "/s"}
			byCase[r.Case] = cr
			order = append(order, r.Case)
		}
		for _, s := range []struct {
			name  string
			fig   Figure
			color string
		}{{"etcd", r.Etcd, "#9e9e9e"}, {"cairn", r.Cairn, "#1f77b4"}} {
			label := fmt.Sprintf("%s ×%d", s.name, r.Size)
			note := ""
			if s.fig.Invalid != "" {
				note = "errors: no figure"
				if isNotSupported(s.fig.Invalid) {
					note = "not supported"
				}
			}
			cr.Rate = append(cr.Rate, chart.Bar{Label: label, Value: s.fig.Rate, Note: note, Color: s.color})
			cr.LatencyP99 = append(cr.LatencyP99, chart.Bar{Label: label, Value: s.fig.P99MS, Note: note, Color: s.color})
		}
	}
	var out []chart.Row
	for _, n := range order {
		out = append(out, *byCase[n])
	}
	return chart.SVG(title, out)
}

// LargeTable renders a large-data report.
func LargeTable(rs []LargeRun) string {
	var b strings.Builder
	b.WriteString("| system | keys | load keys/s | RSS MB | peak RSS MB | disk MB | get /s | get p50 / p99 ms | scan(100) /s | scan p50 / p99 ms | note |\n")
	b.WriteString("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n",
			r.System, r.N, r.LoadKeysPerS, mb(r.RSSBytes), mb(r.PeakRSSBytes), mb(r.DiskBytes),
			readCells(&r.Get), readCells(&r.Scan), oneLine(r.Failure))
	}
	return b.String()
}

// readCells is "rate | p50 / p99", or no figure when the reads had errors.
func readCells(res *load.Result) string {
	if res.Valid() != nil {
		return "no figure | —"
	}
	return fmt.Sprintf("%.0f | %.2f / %.2f", res.Throughput, res.Latency.P50MS, res.Latency.P99MS)
}
