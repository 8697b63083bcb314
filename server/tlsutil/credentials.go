package tlsutil

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials are gRPC server credentials for listeners of both schemes:
// a connection from a Server's Listener completes its TLS handshake here
// (and a refusal is logged), any other connection is served as plain text.
func Credentials(logger *slog.Logger) credentials.TransportCredentials {
	return &serverCredentials{logger: logger}
}

type serverCredentials struct {
	logger *slog.Logger
}

var _ credentials.TransportCredentials = (*serverCredentials)(nil)

func (c *serverCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return conn, plainAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	// gRPC has set a deadline on conn for the handshake.
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
