package tlsutil

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
)

// Credentials are gRPC server credentials for listeners of both schemes:
// a connection from a Server's Listener completes its TLS handshake here
// (and a refusal is logged), any other connection is served as plain text.
func Credentials(logger *slog.Logger) credentials.TransportCredentials {
	return &serverCredentials{logger: logger}
}

// HandshakeTimeout bounds a TLS handshake and the HTTP/2 preface that
// follows it on a server, as etcd bounds its handshakes; a client that
// takes longer is dropped.
const HandshakeTimeout = 10 * time.Second

type serverCredentials struct {
	logger *slog.Logger
}

var _ credentials.TransportCredentials = (*serverCredentials)(nil)

func (c *serverCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return conn, plainAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	// gRPC clears the deadline once the connection is set up (after the
	// client's HTTP/2 preface); until then this one bounds it.
	if err := conn.SetDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return nil, nil, err
	}
	if err := tc.HandshakeContext(context.Background()); err != nil {
		c.logger.Warn("refused a TLS connection", "remote-address", conn.RemoteAddr().String(),
			"local-address", conn.LocalAddr().String(), "error", err.Error())
		return nil, nil, err
	}
	return tc, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

func (c *serverCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	panic("tlsutil: server credentials used to dial")
}

func (c *serverCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *serverCredentials) Clone() credentials.TransportCredentials {
	return &serverCredentials{logger: c.logger}
}

func (c *serverCredentials) OverrideServerName(string) error { return nil }

// plainAuthInfo describes a plain-text connection, as gRPC's insecure
// credentials do.
type plainAuthInfo struct {
	credentials.CommonAuthInfo
}

func (plainAuthInfo) AuthType() string { return "insecure" }
