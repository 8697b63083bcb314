//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gatewayRequestTimeout bounds one JSON gateway request, and the wait for
// a watch stream's messages.
const gatewayRequestTimeout = 10 * time.Second

// gatewayStep is one request to the JSON gateway. In body, "LEASE" stands
// for the ID of the lease the last lease/grant step granted on that
// member (IDs differ between etcd and cairn).
type gatewayStep struct {
	path, body string
	// grants says the answer's ID is the lease later steps use.
	grants bool
	// fails says etcd answers with an error; every other step must
	// succeed on etcd (the harness's own check).
	fails bool
}

// The JSON gateway against etcd's, request by request: the same curl-style
// POSTs (keys and values base64) must get the same status and the same
// JSON, apart from the header's cluster and member IDs and raft term and
// the lease IDs.
func TestGatewayLikeEtcd(t *testing.T) {
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subjectKind(t))
	leases := map[*Member]string{}
	steps := []gatewayStep{
		{path: "/v3/kv/put", body: `{"key":"Zm9v","value":"YmFy"}`},
		{path: "/v3/kv/range", body: `{"key":"Zm9v"}`},
		{path: "/v3/kv/put", body: `{"key":"Zm9v","value":"YmF6","prev_kv":true}`},
		{path: "/v3/kv/put", body: `{"key":"Zm9vMg==","value":"eA=="}`},
		{path: "/v3/kv/range", body: `{"key":"Zm9v","range_end":"Zm9w","limit":1}`},
		{path: "/v3/kv/range", body: `{"key":"Zm9v","range_end":"Zm9w","count_only":true}`},
		{path: "/v3/kv/range", body: `{"key":"AA==","range_end":"AA==","sort_order":"DESCEND","sort_target":"KEY","keys_only":true}`},
		{path: "/v3/kv/txn", body: `{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],` +
			`"success":[{"request_put":{"key":"Zm9v","value":"cXV4"}},{"request_range":{"key":"Zm9v"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}`},
		{path: "/v3/kv/txn", body: `{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VERSION","version":"1"}],` +
			`"success":[{"request_delete_range":{"key":"Zm9v"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}`},
		{path: "/v3/kv/deleterange", body: `{"key":"Zm9vMg==","prev_kv":true}`},
		{path: "/v3/lease/grant", body: `{"TTL":"60"}`, grants: true},
		{path: "/v3/kv/put", body: `{"key":"bGVhc2Vk","value":"dg==","lease":"LEASE"}`},
		{path: "/v3/lease/timetolive", body: `{"ID":"LEASE","keys":true}`},
		{path: "/v3/lease/leases", body: `{}`},
		{path: "/v3/lease/revoke", body: `{"ID":"LEASE"}`},
		{path: "/v3/kv/range", body: `{"key":"bGVhc2Vk"}`},
		{path: "/v3/kv/compaction", body: `{"revision":"3"}`},
		{path: "/v3/kv/range", body: `{"key":"Zm9v","revision":"2"}`, fails: true},
		{path: "/v3/kv/put", body: `{"key":""}`, fails: true},
		{path: "/v3/kv/range", body: `{not json`, fails: true},
		{path: "/v3/kv/nosuch", body: `{}`, fails: true},
	}
	for _, step := range steps {
		var answers [2]httpAnswer
		for i, m := range []*Member{ref, sub} {
			body := strings.ReplaceAll(step.body, "LEASE", leases[m])
			answers[i] = postGateway(t, m, step.path, body)
			if step.grants {
				leases[m] = leaseID(t, answers[i].body)
			}
		}
		want, got := answers[0], answers[1]
		if (want.code == http.StatusOK) == step.fails {
			t.Fatalf("POST %s %s: harness check: etcd answered %d %s", step.path, step.body, want.code, want.body)
		}
		if got.code != want.code || !sameGatewayJSON(t, want.body, got.body) {
			t.Errorf("POST %s %s:\n%s answered %d %s\netcd answered %d %s", step.path, step.body, sub.Kind, got.code, got.body, want.code, want.body)
		}
	}
	// A watch is a stream of JSON objects, one per response: from a past
	// revision it starts with the creation, then the history.
	watch := `{"create_request":{"key":"Zm9v","range_end":"Zm9w","start_revision":"3","prev_kv":true}}`
	want, got := watchGateway(t, ref, watch, 2), watchGateway(t, sub, watch, 2)
	for i := range want {
		if !sameGatewayJSON(t, want[i], got[i]) {
			t.Errorf("watch message %d: %s sent %s, etcd %s", i, sub.Kind, got[i], want[i])
		}
	}
}

func postGateway(t *testing.T, m *Member, path, body string) httpAnswer {
	t.Helper()
	c := &http.Client{Timeout: gatewayRequestTimeout}
	resp, err := c.Post(m.ClientURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s to %s: %v", path, m.Kind, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s to %s: %v", path, m.Kind, err)
	}
	return httpAnswer{code: resp.StatusCode, body: string(b)}
}

// watchGateway opens a watch with body and returns its first count
// messages, each one JSON object.
func watchGateway(t *testing.T, m *Member, body string, count int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gatewayRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.ClientURL+"/v3/watch", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("watch on %s: %v", m.Kind, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var out []string
	for range count {
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			t.Fatalf("watch on %s: message %d: %v (got %q)", m.Kind, len(out), err, out)
		}
		out = append(out, string(msg))
	}
	return out
}

func leaseID(t *testing.T, body string) string {
	t.Helper()
	var grant struct{ ID string }
	if err := json.Unmarshal([]byte(body), &grant); err != nil || grant.ID == "" {
		t.Fatalf("lease grant answered %q (%v)", body, err)
	}
	return grant.ID
}

// sameGatewayJSON compares two answers as JSON values, without the
// member-specific fields (normalizeGateway).
func sameGatewayJSON(t *testing.T, want, got string) bool {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return bytes.Equal([]byte(want), []byte(got)) // not JSON: compare the text
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return false
	}
	return reflect.DeepEqual(normalizeGateway(w), normalizeGateway(g))
}

// normalizeGateway drops what differs between any two members: the
// header's cluster ID, member ID and raft term; and replaces lease IDs.
func normalizeGateway(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			switch k {
			case "cluster_id", "member_id", "raft_term":
				continue
			case "ID", "lease":
				out[k] = "<lease>"
				continue
			}
			out[k] = normalizeGateway(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeGateway(e)
		}
		return out
	}
	return v
}
