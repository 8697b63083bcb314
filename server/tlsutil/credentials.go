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
	if w, wraps := conn.(TLSConnWrapper); wraps {
		tc, ok = w.TLSConn()
	}
	if !ok {
		return conn, plainAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	// gRPC clears the deadline once the connection is set up (after the
	// client's HTTP/2 preface); until then this one bounds it.
	if err := Handshake(tc, c.logger); err != nil {
		return nil, nil, err
	}
	return conn, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// TLSConnWrapper is a connection that wraps a TLS connection, such as one
// whose first bytes a listener read to route it; Credentials see through it.
type TLSConnWrapper interface {
	TLSConn() (*tls.Conn, bool)
}

// Handshake completes tc's TLS handshake within HandshakeTimeout, and logs
// a refusal. It leaves the deadline set: the caller clears it once the
// client has also sent what must follow the handshake. A handshake already
// done returns its result at once.
func Handshake(tc *tls.Conn, logger *slog.Logger) error {
	if err := tc.SetDeadline(time.Now().Add(HandshakeTimeout)); err != nil {
		return err
	}
	if err := tc.HandshakeContext(context.Background()); err != nil {
		logger.Warn("refused a TLS connection", "remote-address", tc.RemoteAddr().String(),
			"local-address", tc.LocalAddr().String(), "error", err.Error())
		return err
	}
	return nil
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
