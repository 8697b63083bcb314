package member

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/tmc/grpc-websocket-proxy/wsproxy"
	etcdgw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	electiongw "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb/gw"
	lockgw "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
)

// The JSON gateway: etcd's grpc-gateway API under /v3/ on the HTTP side of
// the client URLs (or --listen-client-http-urls), with the handlers etcd's
// API module generates (etcdserverpb/gw), mapped as etcd maps them: POST
// /v3/kv/put, /v3/kv/range, /v3/watch (a stream of JSON objects), ... As
// etcd's gateway dials its own gRPC server, cairn's calls this member's
// gRPC server, through an in-memory connection: every call passes the
// same interceptors (learner refusals, leader-requiring streams, metrics)
// as a gRPC client's, without a socket or a TLS handshake.
//
// As etcd's, the gateway is wrapped in a websocket proxy (the same
// library, github.com/tmc/grpc-websocket-proxy): a request under /v3/ that
// asks for a websocket upgrade is served by the same handler as a POST,
// each websocket message a line of the request body and each line of the
// answer a websocket text message, so a browser can watch: open
// ws://host:2379/v3/watch, send the create_request, and every watch
// response comes as one message. Sec-WebSocket-Protocol "Bearer, TOKEN"
// (or a "token" cookie) becomes the Authorization header.

// gatewayPipeBytes is the buffer of each in-memory connection between the
// gateway and the gRPC server, per direction.
const gatewayPipeBytes = 1 << 20

// gateway is the JSON gateway of one member.
type gateway struct {
	// listener is served by the member's gRPC server (serve) and dialled
	// by conn.
	listener *bufconn.Listener
	conn     *grpc.ClientConn
	mux      *gwruntime.ServeMux
	// handler is mux behind the websocket proxy.
	handler http.Handler
}

// gatewayWebsocketLineBytesMax bounds one line of a streamed answer that
// the websocket proxy buffers: as etcd's, any message gRPC can carry.
const gatewayWebsocketLineBytesMax = math.MaxInt32

// newGateway registers the gateway's handlers on a connection to a gRPC
// server that is not serving yet: the connection dials when the first
// request comes.
func newGateway(logger *slog.Logger) (*gateway, error) {
	g := &gateway{listener: bufconn.Listen(gatewayPipeBytes)}
	conn, err := grpc.NewClient("passthrough:///cairn-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return g.listener.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("gateway connection: %w", err)
	}
	g.conn = conn
	// etcd's marshalling: field names as in the .proto files (snake case),
	// zero values left out, unknown fields of a request ignored.
	g.mux = gwruntime.NewServeMux(gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard,
		&gwruntime.HTTPBodyMarshaler{Marshaler: &gwruntime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}))
	for _, register := range []func(context.Context, *gwruntime.ServeMux, *grpc.ClientConn) error{
		etcdgw.RegisterKVHandler,
		etcdgw.RegisterWatchHandler,
		etcdgw.RegisterLeaseHandler,
		etcdgw.RegisterClusterHandler,
		etcdgw.RegisterMaintenanceHandler,
		etcdgw.RegisterAuthHandler,
		lockgw.RegisterLockHandler,
		electiongw.RegisterElectionHandler,
	} {
		if err := register(context.Background(), g.mux, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("register gateway handlers: %w", err)
		}
	}
	g.handler = wsproxy.WebsocketProxy(g.mux,
		// A stream's method is POST, whatever the upgrade request's.
		wsproxy.WithRequestMutator(func(_ *http.Request, outgoing *http.Request) *http.Request {
			outgoing.Method = http.MethodPost
			return outgoing
		}),
		wsproxy.WithMaxRespBodyBufferSize(gatewayWebsocketLineBytesMax),
		wsproxy.WithLogger(websocketLogger{logger.With("component", "gateway-websocket")}))
	return g, nil
}

// websocketLogger is the websocket proxy's logger on the member's.
type websocketLogger struct{ logger *slog.Logger }

func (l websocketLogger) Warnln(args ...any)  { l.logger.Warn(fmt.Sprint(args...)) }
func (l websocketLogger) Debugln(args ...any) { l.logger.Debug(fmt.Sprint(args...)) }

// ServeHTTP serves /v3/ and, as etcd still does, /v3beta/ as /v3/, over
// plain HTTP or a websocket.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v3beta/"); ok {
		r.URL.Path = "/v3/" + rest
	}
	g.handler.ServeHTTP(w, r)
}

// close closes the connection to the gRPC server; the server closes the
// listener when it stops.
func (g *gateway) close() {
	g.conn.Close()
}
