package member

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-db/cairn/server/etcdapi"
)

// websocketTestTimeout bounds the handshake and each read of the test.
const websocketTestTimeout = 10 * time.Second

// TestGatewayWatchOverWebsocket: a watch opened on the client port's
// /v3/watch with a websocket upgrade sends its create_request as a
// message and gets the creation and each event as one JSON message each,
// as etcd's gateway does; closing the websocket ends the watch.
func TestGatewayWatchOverWebsocket(t *testing.T) {
	m, c := startMember(t, t.TempDir(), etcdapi.Limits{})
	ctx := ctxT(t)
	put, err := c.Put(ctx, "ws-key", "v1")
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{HandshakeTimeout: websocketTestTimeout}
	conn, _, err := d.Dial("ws://"+m.listeners[0].Addr().String()+"/v3/watch", nil)
	if err != nil {
		t.Fatalf("websocket upgrade of /v3/watch: %v", err)
	}
	defer conn.Close()
	// "d3Mta2V5" is base64 of ws-key.
	create := `{"create_request":{"key":"d3Mta2V5","start_revision":"` + strconv.FormatInt(put.Header.Revision, 10) + `"}}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(create)); err != nil {
		t.Fatal(err)
	}
	type watchMessage struct {
		Result struct {
			Created bool `json:"created"`
			Events  []struct {
				Kv struct {
					Key         []byte `json:"key"`
					Value       []byte `json:"value"`
					ModRevision string `json:"mod_revision"`
				} `json:"kv"`
			} `json:"events"`
		} `json:"result"`
	}
	read := func() watchMessage {
		t.Helper()
		if err := conn.SetReadDeadline(time.Now().Add(websocketTestTimeout)); err != nil {
			t.Fatal(err)
		}
		kind, data, err := conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			t.Fatalf("websocket read: type %d, %v", kind, err)
		}
		var msg watchMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			t.Fatalf("watch message %q: %v", data, err)
		}
		return msg
	}
	if msg := read(); !msg.Result.Created {
		t.Fatalf("first message %+v, want the creation", msg)
	}
	msg := read()
	if len(msg.Result.Events) != 1 || string(msg.Result.Events[0].Kv.Key) != "ws-key" || string(msg.Result.Events[0].Kv.Value) != "v1" {
		t.Fatalf("second message %+v, want the put of ws-key=v1", msg)
	}
	// A put after the watch started comes as the next message.
	if _, err := c.Put(ctx, "ws-key", "v2"); err != nil {
		t.Fatal(err)
	}
	if msg := read(); len(msg.Result.Events) != 1 || string(msg.Result.Events[0].Kv.Value) != "v2" {
		t.Fatalf("third message %+v, want the put of ws-key=v2", msg)
	}
}
