package member

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/server/etcdapi"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// etcdMetricNames are the metrics etcd's documented alerts and dashboards
// read (issue 14's list): each must be exported.
var etcdMetricNames = []string{
	"etcd_server_has_leader", "etcd_server_leader_changes_seen_total",
	"etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total",
	"etcd_server_proposals_pending", "etcd_server_proposals_failed_total", "etcd_server_quota_backend_bytes",
	"etcd_disk_wal_fsync_duration_seconds_bucket", "etcd_disk_backend_commit_duration_seconds_bucket",
	"etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes",
	"etcd_mvcc_put_total", "etcd_mvcc_range_total", "etcd_mvcc_delete_total", "etcd_mvcc_txn_total",
	"etcd_debugging_mvcc_keys_total",
	"etcd_network_client_grpc_received_bytes_total", "etcd_network_client_grpc_sent_bytes_total",
	"grpc_server_started_total", "grpc_server_handled_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total",
	"etcd_server_id", "etcd_server_version", "cairn_pebble_compaction_debt_bytes",
}

// metricValue returns the value of the first sample of name (with any
// labels), or "" if there is none.
func metricValue(body, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[2]
}

// TestMetricsEndpoint: /metrics on the client port exports etcd's names
// with values read from the core.
func TestMetricsEndpoint(t *testing.T) {
	m, c, metricsBase := startWithMetrics(t, etcdapi.Limits{QuotaBackendBytes: 1 << 30})
	ctx := ctxT(t)
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"http://" + m.listeners[0].Addr().String(), metricsBase} {
		code, body := httpGet(t, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("%s/metrics: %d", base, code)
		}
		for _, name := range etcdMetricNames {
			if metricValue(body, name) == "" {
				t.Errorf("%s/metrics has no %s", base, name)
			}
		}
		for name, want := range map[string]string{
			"etcd_server_has_leader":          "1",
			"etcd_mvcc_put_total":             "3",
			"etcd_mvcc_delete_total":          "1",
			"etcd_debugging_mvcc_keys_total":  "2",
			"etcd_server_quota_backend_bytes": "1.073741824e+09",
			"etcd_server_version":             "1",
		} {
			if got := metricValue(body, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		// The codec counts each message with gRPC's 5-byte header: at
		// least the requests' bare encodings.
		wantReceived := 0
		for _, req := range []proto.Message{&pb.PutRequest{Key: []byte("a"), Value: []byte("v")},
			&pb.PutRequest{Key: []byte("b"), Value: []byte("v")}, &pb.PutRequest{Key: []byte("c"), Value: []byte("v")},
			&pb.DeleteRangeRequest{Key: []byte("c")}, &pb.RangeRequest{Key: []byte("a")}} {
			wantReceived += proto.Size(req) + 5
		}
		if got, _ := strconv.ParseFloat(metricValue(body, "etcd_network_client_grpc_received_bytes_total"), 64); got < float64(wantReceived) {
			t.Errorf("received bytes %v, want at least %d", got, wantReceived)
		}
		if got, _ := strconv.ParseFloat(metricValue(body, "etcd_network_client_grpc_sent_bytes_total"), 64); got < 5*5 {
			t.Errorf("sent bytes %v, want at least 5 responses' headers", got)
		}
		if !strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3`) {
			t.Errorf("no count of the 3 puts handled in grpc_server_handled_total")
		}
	}
}
