package member

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// monitoringDir holds the Grafana dashboard and Prometheus alert rules.
const monitoringDir = "../../deploy/monitoring"

// metricNamePattern finds metric names in PromQL expressions: every
// expression in the monitoring files selects its metric by job, so a name
// is followed by a label selector (a label name such as grpc_code is not).
var metricNamePattern = regexp.MustCompile(`\b((?:etcd|grpc|cairn|go|process)_[a-z0-9_]+)\{`)

// usedMetrics returns the metric names the monitoring files use.
func usedMetrics(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(monitoringDir, "*"))
	if err != nil || len(files) < 2 {
		t.Fatalf("monitoring files %v: %v", files, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricNamePattern.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// missingMetrics returns the names that have no sample in a /metrics body.
func missingMetrics(body string, names []string) []string {
	var missing []string
	for _, name := range names {
		if metricValue(body, name) == "" {
			missing = append(missing, name)
		}
	}
	return missing
}

// TestMonitoringUsesExportedMetrics: every metric the dashboard and the
// alert rules read is exported by a member.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	// Two members, so that the peer metrics have samples; the pair's
	// first write gives the gRPC counters theirs.
	_, base := startPairWithMetrics(t)
	body := scrapeUntil(t, base, "etcd_network_peer_round_trip_time_seconds_bucket")
	names := usedMetrics(t)
	if len(names) < 15 {
		t.Fatalf("only %d metric names found in %s: %v", len(names), monitoringDir, names)
	}
	if missing := missingMetrics(body, names); len(missing) > 0 {
		t.Fatalf("used by %s but not exported: %v", monitoringDir, missing)
	}
	// The check can fail: a metric cairn does not export is reported.
	if missing := missingMetrics(body, []string{"etcd_network_snapshot_send_success"}); len(missing) != 1 {
		t.Fatalf("a metric cairn does not export was not reported missing")
	}
}
