//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// httpGetTimeout bounds one HTTP request to a member.
const httpGetTimeout = 10 * time.Second

type httpAnswer struct {
	code int
	body string
}

func getHTTP(t *testing.T, url string) httpAnswer {
	t.Helper()
	c := &http.Client{Timeout: httpGetTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return httpAnswer{code: resp.StatusCode, body: string(b)}
}

// sortedLines makes a check list comparable: etcd runs its checks in a
// map's order, cairn in name order.
func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestHTTPEndpointsLikeEtcd: the health and version endpoints on the
// client port answer as etcd's do.
func TestHTTPEndpointsLikeEtcd(t *testing.T) {
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subjectKind(t))
	for _, path := range []string{
		"/health", "/health?serializable=true", "/health?exclude=NOSPACE",
		"/livez", "/livez?verbose", "/livez/serializable_read",
		"/readyz", "/readyz?verbose", "/readyz?exclude=linearizable_read&verbose", "/readyz/non_learner?verbose",
	} {
		want, got := getHTTP(t, ref.ClientURL+path), getHTTP(t, sub.ClientURL+path)
		if want.code != http.StatusOK {
			t.Fatalf("GET %s: harness check: etcd answered %d %q", path, want.code, want.body)
		}
		if got.code != want.code || sortedLines(got.body) != sortedLines(want.body) {
			t.Errorf("GET %s: %s answered %d %q, etcd %d %q", path, sub.Kind, got.code, got.body, want.code, want.body)
		}
	}
	var want, got map[string]string
	for _, side := range []struct {
		m *Member
		v *map[string]string
	}{{ref, &want}, {sub, &got}} {
		a := getHTTP(t, side.m.ClientURL+"/version")
		if err := json.Unmarshal([]byte(a.body), side.v); a.code != http.StatusOK || err != nil {
			t.Fatalf("%s /version: %d %q %v", side.m.Kind, a.code, a.body, err)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("/version %s: %s has %q, etcd %q", k, sub.Kind, got[k], v)
		}
	}
}
