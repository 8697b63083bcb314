package compare

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// EtcdToolReport is a run of `make bench-etcdtool`: etcd's own benchmark
// tool against a fresh single member of each system, alternating rounds
// (tools/bench/compare.sh), as saved to JSON and rendered.
type EtcdToolReport struct {
	Date      string             `json:"date"`
	Command   string             `json:"command"`
	Machine   Machine            `json:"machine"`
	Workloads []EtcdToolWorkload `json:"workloads"`
}

// EtcdToolWorkload is one workload's rounds, in the order they ran.
type EtcdToolWorkload struct {
	Name  string          `json:"name"`
	Etcd  []EtcdToolRound `json:"etcd"`
	Cairn []EtcdToolRound `json:"cairn"`
}

// EtcdToolRound is what the tool printed for one run. P99MS is 0 when the
// tool printed no 99th percentile.
type EtcdToolRound struct {
	ReqsPerS float64 `json:"reqs_per_s"`
	P99MS    float64 `json:"p99_ms,omitempty"`
}

// ParseEtcdToolRecord reads the lines compare.sh appends to $RECORD, one
// per run: "WORKLOAD SERVER ROUND REQS_PER_S P99_MS", P99_MS "?" when the
// tool printed none. Workloads keep the order of their first line.
func ParseEtcdToolRecord(r io.Reader) ([]EtcdToolWorkload, error) {
	var workloads []EtcdToolWorkload
	index := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			return nil, fmt.Errorf("etcdtool record line %d: want 5 fields (workload server round req/s p99), got %q", n, sc.Text())
		}
		reqs, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("etcdtool record line %d: req/s %q: %v", n, f[3], err)
		}
		var p99 float64
		if f[4] != "?" {
			if p99, err = strconv.ParseFloat(f[4], 64); err != nil {
				return nil, fmt.Errorf("etcdtool record line %d: p99 %q: %v", n, f[4], err)
			}
		}
		i, ok := index[f[0]]
		if !ok {
			i = len(workloads)
			index[f[0]] = i
			workloads = append(workloads, EtcdToolWorkload{Name: f[0]})
		}
		round := EtcdToolRound{ReqsPerS: reqs, P99MS: p99}
		switch f[1] {
		case "etcd":
			workloads[i].Etcd = append(workloads[i].Etcd, round)
		case "cairn":
			workloads[i].Cairn = append(workloads[i].Cairn, round)
		default:
			return nil, fmt.Errorf("etcdtool record line %d: server %q is neither etcd nor cairn", n, f[1])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(workloads) == 0 {
		return nil, fmt.Errorf("etcdtool record: no runs")
	}
	return workloads, nil
}

// etcdToolLabels name compare.sh's workloads in the table.
var etcdToolLabels = map[string]string{
	"put":                "put",
	"range":              "range (linearizable)",
	"range-serializable": "range (serializable)",
}

// EtcdToolTable renders the workloads: every round's rate and p99, and the
// ratio of the medians of the rates.
func EtcdToolTable(workloads []EtcdToolWorkload) string {
	var b strings.Builder
	b.WriteString("| workload | etcd req/s (rounds) | cairn req/s (rounds) | cairn/etcd | etcd p99 ms | cairn p99 ms |\n")
	b.WriteString("| --- | --- | --- | ---: | --- | --- |\n")
	for _, w := range workloads {
		label := etcdToolLabels[w.Name]
		if label == "" {
			label = w.Name
		}
		ratio := "—"
		if e, c := medianRate(w.Etcd), medianRate(w.Cairn); e > 0 && c > 0 {
			ratio = fmt.Sprintf("**%.2f**", c/e)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", label,
			joinRounds(w.Etcd, func(r EtcdToolRound) string { return thousands(r.ReqsPerS) }),
			joinRounds(w.Cairn, func(r EtcdToolRound) string { return thousands(r.ReqsPerS) }),
			ratio, joinRounds(w.Etcd, p99Cell), joinRounds(w.Cairn, p99Cell))
	}
	return b.String()
}

// medianRate is the median of the rounds' rates, 0 without rounds.
func medianRate(rounds []EtcdToolRound) float64 {
	rates := make([]float64, len(rounds))
	for i, r := range rounds {
		rates[i] = r.ReqsPerS
	}
	return median(rates)
}

func joinRounds(rounds []EtcdToolRound, cell func(EtcdToolRound) string) string {
	if len(rounds) == 0 {
		return "—"
	}
	cells := make([]string, len(rounds))
	for i, r := range rounds {
		cells[i] = cell(r)
	}
	return strings.Join(cells, " / ")
}

func p99Cell(r EtcdToolRound) string {
	if r.P99MS == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", r.P99MS)
}

// thousands formats a rate as a whole number with comma separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
