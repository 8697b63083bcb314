package member

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/cairn-db/cairn/server/etcdapi"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestQuotaRefusesWritesThatAddData: over --quota-backend-bytes, puts and
// txns with puts fail with etcd's "database space exceeded", while deletes,
// which free space, still pass.
func TestQuotaRefusesWritesThatAddData(t *testing.T) {
	_, c := startMember(t, t.TempDir(), etcdapi.Limits{QuotaBackendBytes: 1})
	ctx := ctxT(t)
	if _, err := c.Put(ctx, "a", "1"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put over the quota: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := c.Delete(ctx, "a"); err != nil {
		t.Fatalf("delete over the quota: %v", err)
	}
}

// TestHealthEndpoint: /health on --listen-metrics-urls answers as etcd's.
func TestHealthEndpoint(t *testing.T) {
	cfg := testConfig(t.TempDir(), etcdapi.Limits{})
	cfg.ListenMetricsURLs = []string{"http://127.0.0.1:0"}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(0)
	waitPublished(t, m)
	resp, err := http.Get("http://" + m.httpListeners[0].Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Health, Reason string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.Health != "true" || body.Reason != "" {
		t.Fatalf("health: %d %+v", resp.StatusCode, body)
	}
}
