//go:build e2e

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The JSON gateway's streams over a websocket, as a browser uses etcd's: a
// watch opened on ws://…/v3/watch sends its create_request as a message
// and gets every watch response as one message; a lease keep-alive
// (/v3/lease/keepalive) gets one answer per request message. etcd and
// cairn must send the same messages, apart from the header's
// member-specific fields and the lease IDs. (A unary call over a websocket
// gets no answer from either: the gateway reads a unary request's whole
// body, which ends only when the websocket closes.)
func TestGatewayWebsocketLikeEtcd(t *testing.T) {
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subjectKind(t))
	var got [2][]string
	for i, m := range []*Member{ref, sub} {
		if a := postGateway(t, m, "/v3/kv/put", `{"key":"d3M=","value":"MQ=="}`); a.code != http.StatusOK {
			t.Fatalf("put on %s: %d %s", m.Kind, a.code, a.body)
		}
		watch := dialGatewayWebsocket(t, m, "/v3/watch")
		// From revision 2: the creation, then the put above.
		sendWebsocket(t, m, watch, `{"create_request":{"key":"d3M=","start_revision":"2","prev_kv":true}}`)
		got[i] = append(got[i], readWebsocket(t, m, watch), readWebsocket(t, m, watch))
		// A put after the watch started comes as the next message.
		if a := postGateway(t, m, "/v3/kv/put", `{"key":"d3M=","value":"Mg==","prev_kv":true}`); a.code != http.StatusOK {
			t.Fatalf("put on %s: %d %s", m.Kind, a.code, a.body)
		}
		got[i] = append(got[i], readWebsocket(t, m, watch))
		// A lease keep-alive stream: one answer per request message.
		lease := leaseID(t, postGateway(t, m, "/v3/lease/grant", `{"TTL":"60"}`).body)
		keepAlive := dialGatewayWebsocket(t, m, "/v3/lease/keepalive")
		for range 2 {
			sendWebsocket(t, m, keepAlive, `{"ID":"`+lease+`"}`)
			got[i] = append(got[i], readWebsocket(t, m, keepAlive))
		}
	}
	want := got[0]
	if !strings.Contains(want[0], `"created":true`) || !strings.Contains(want[2], `"prev_kv"`) || !strings.Contains(want[4], `"TTL":"60"`) {
		t.Fatalf("harness check: etcd sent %q", want)
	}
	for i := range want {
		if !sameGatewayJSON(t, want[i], got[1][i]) {
			t.Errorf("websocket message %d: %s sent %s, etcd %s", i, sub.Kind, got[1][i], want[i])
		}
	}
}

// A websocket upgrade of a path the gateway does not map is answered as
// etcd answers it: the upgrade succeeds and the gateway's error (404,
// {"code":5,...}) comes as the one message.
func TestGatewayWebsocketUnknownPathLikeEtcd(t *testing.T) {
	var got [2]string
	for i, kind := range []Kind{KindEtcd, subjectKind(t)} {
		m := StartMember(t, kind)
		c := dialGatewayWebsocket(t, m, "/v3/kv/nosuch")
		sendWebsocket(t, m, c, `{}`)
		got[i] = readWebsocket(t, m, c)
	}
	if !sameGatewayJSON(t, got[0], got[1]) {
		t.Errorf("unknown path: cairn sent %s, etcd %s", got[1], got[0])
	}
}

func dialGatewayWebsocket(t *testing.T, m *Member, path string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(m.ClientURL, "http") + path
	d := websocket.Dialer{HandshakeTimeout: gatewayRequestTimeout}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("websocket %s on %s: %v (status %d)", url, m.Kind, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendWebsocket(t *testing.T, m *Member, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("websocket send to %s: %v", m.Kind, err)
	}
}

func readWebsocket(t *testing.T, m *Member, c *websocket.Conn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(gatewayRequestTimeout)); err != nil {
		t.Fatal(err)
	}
	kind, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read from %s: %v", m.Kind, err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("websocket message from %s of type %d, want text", m.Kind, kind)
	}
	return string(msg)
}
