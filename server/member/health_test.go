package member

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/server/etcdapi"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// startWithMetrics starts a member that serves HTTP on a metrics URL and
// returns it, a client, and the URL's base.
func startWithMetrics(t *testing.T, limits etcdapi.Limits) (*Member, *clientv3.Client, string) {
	t.Helper()
	cfg := testConfig(t.TempDir(), limits)
	cfg.ListenMetricsURLs = []string{"http://127.0.0.1:0"}
	cfg.CairnVersion = "9.9.9-test"
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(0) })
	waitPublished(t, m)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.listeners[0].Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return m, c, "http://" + m.httpListeners[0].Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestNoSpaceAlarmEndToEnd: a put past the quota raises this member's
// NOSPACE alarm, which the alarm list, Status, /health and /readyz show;
// disarming it (and freeing space by raising no further puts) clears
// them, as in etcd.
func TestNoSpaceAlarmEndToEnd(t *testing.T) {
	m, c, base := startWithMetrics(t, etcdapi.Limits{QuotaBackendBytes: 1})
	ctx := ctxT(t)
	if code, body := httpGet(t, base+"/health"); code != http.StatusOK || body != `{"health":"true","reason":""}` {
		t.Fatalf("/health before the alarm: %d %q", code, body)
	}
	if _, err := c.Put(ctx, "a", "1"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put over the quota: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	want := &pb.AlarmMember{MemberID: m.Identity.MemberID, Alarm: pb.AlarmType_NOSPACE}
	list, err := c.AlarmList(ctx)
	if err != nil || len(list.Alarms) != 1 || list.Alarms[0].MemberID != want.MemberID || list.Alarms[0].Alarm != want.Alarm {
		t.Fatalf("alarm list: %v %v, want %v", list, err, want)
	}
	st, err := c.Status(ctx, m.listeners[0].Addr().String())
	if err != nil || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "alarm:NOSPACE") {
		t.Fatalf("status errors: %v %v", st, err)
	}
	if code, body := httpGet(t, base+"/health"); code != http.StatusServiceUnavailable || body != `{"health":"false","reason":"ALARM NOSPACE"}`+"\n" {
		t.Fatalf("/health under NOSPACE: %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/health?exclude=NOSPACE"); code != http.StatusOK {
		t.Fatalf("/health excluding NOSPACE: %d", code)
	}
	if code, body := httpGet(t, base+"/readyz?verbose"); code != http.StatusOK ||
		body != "[+]data_corruption ok\n[+]linearizable_read ok\n[+]non_learner ok\n[+]serializable_read ok\nok\n" {
		t.Fatalf("/readyz?verbose under NOSPACE (not a readiness failure): %d %q", code, body)
	}
	if _, err := c.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: want.MemberID, Alarm: want.Alarm}); err != nil {
		t.Fatal(err)
	}
	if list, err := c.AlarmList(ctx); err != nil || len(list.Alarms) != 0 {
		t.Fatalf("alarm list after disarm: %v %v", list, err)
	}
	if code, _ := httpGet(t, base+"/health"); code != http.StatusOK {
		t.Fatalf("/health after disarm: %d", code)
	}
}

// TestCorruptAlarmFailsReadiness: a CORRUPT alarm fails /readyz (its
// data_corruption check) unless excluded, and refuses every write.
func TestCorruptAlarmFailsReadiness(t *testing.T) {
	m, c, base := startWithMetrics(t, etcdapi.Limits{})
	ctx := ctxT(t)
	if _, err := pb.NewMaintenanceClient(c.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE,
		MemberID: m.Identity.MemberID, Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "a"); !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("delete under CORRUPT: %v, want %v", err, rpctypes.ErrCorrupt)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "[-]data_corruption failed: alarm activated: CORRUPT\n") {
		t.Fatalf("/readyz under CORRUPT: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz?exclude=data_corruption"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz excluding data_corruption: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/livez/serializable_read?verbose"); code != http.StatusOK || body != "[+]serializable_read ok\nok\n" {
		t.Fatalf("/livez/serializable_read: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/health"); code != http.StatusServiceUnavailable || !strings.Contains(body, "ALARM CORRUPT") {
		t.Fatalf("/health under CORRUPT: %d %q", code, body)
	}
}

// TestVersionEndpoint: /version has etcd's fields and cairn's version.
func TestVersionEndpoint(t *testing.T) {
	_, _, base := startWithMetrics(t, etcdapi.Limits{})
	code, body := httpGet(t, base+"/version")
	var v map[string]string
	if err := json.Unmarshal([]byte(body), &v); code != http.StatusOK || err != nil {
		t.Fatalf("/version: %d %q %v", code, body, err)
	}
	if v["etcdserver"] != "3.7.3" || v["etcdcluster"] != "3.7.0" || v["storage"] != "3.7.0" || v["cairn"] != "9.9.9-test" {
		t.Fatalf("/version: %v", v)
	}
}

// TestClientPortServesHTTP: the client URL serves gRPC and HTTP/1.1 on one
// port, as etcd's does, including requests shorter than HTTP/2's preface
// and connections that close before sending anything.
func TestClientPortServesHTTP(t *testing.T) {
	m, c, _ := startWithMetrics(t, etcdapi.Limits{})
	base := "http://" + m.listeners[0].Addr().String()
	if _, err := c.Put(ctxT(t), "a", "1"); err != nil {
		t.Fatalf("gRPC on the client port: %v", err)
	}
	if code, body := httpGet(t, base+"/health"); code != http.StatusOK || body != `{"health":"true","reason":""}` {
		t.Fatalf("/health on the client port: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/livez"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/livez on the client port: %d %q", code, body)
	}
	conn, err := net.Dial("tcp", m.listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	short, err := net.Dial("tcp", m.listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if _, err := short.Write([]byte("GET /version HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(short)
	if err != nil || !strings.HasPrefix(string(reply), "HTTP/1.0 200 OK") || !strings.Contains(string(reply), `"etcdserver":"3.7.3"`) {
		t.Fatalf("HTTP/1.0 /version: %q %v", reply, err)
	}
	if resp, err := c.Get(ctxT(t), "a"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("gRPC after HTTP: %v %v", resp, err)
	}
}

// TestClientHTTPURLs: with --listen-client-http-urls, HTTP moves there and
// the client URL serves gRPC only.
func TestClientHTTPURLs(t *testing.T) {
	cfg := testConfig(t.TempDir(), etcdapi.Limits{})
	cfg.ListenClientHTTPURLs = []string{"http://127.0.0.1:0"}
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(0)
	waitPublished(t, m)
	if code, _ := httpGet(t, "http://"+m.httpListeners[0].Addr().String()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz on the client HTTP URL: %d", code)
	}
	resp, err := http.Get("http://" + m.listeners[0].Addr().String() + "/health")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/1.1 on a gRPC-only client URL answered %d", resp.StatusCode)
	}
}
