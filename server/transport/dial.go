package transport

import (
	"fmt"
	"net/url"

	"github.com/cairn-db/cairn/server/tlsutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// peerAddress is where a peer URL points and whether it speaks TLS.
type peerAddress struct {
	target string // host:port
	secure bool   // https
}

func parsePeerURL(raw string) (peerAddress, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return peerAddress{}, fmt.Errorf("transport: invalid peer URL %q", raw)
	}
	switch u.Scheme {
	case "http":
		return peerAddress{target: u.Host}, nil
	case "https":
		return peerAddress{target: u.Host, secure: true}, nil
	}
	return peerAddress{}, fmt.Errorf("transport: peer URL scheme %q is not supported (only http and https): %s", u.Scheme, raw)
}

// dial opens a connection to a peer: TLS configured by tlsClient (a new
// configuration per dial, so a rotated CA bundle is used) for https,
// plain text for http. A nil tlsClient dials https with the system's
// roots and no client certificate.
func (a peerAddress) dial(tlsClient *tlsutil.Client, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if a.secure {
		if tlsClient == nil {
			var err error
			if tlsClient, err = tlsutil.NewClient(tlsutil.Config{}); err != nil {
				return nil, err
			}
		}
		creds = credentials.NewTLS(tlsClient.TLSConfig())
	}
	return grpc.NewClient(a.target, append(opts, grpc.WithTransportCredentials(creds))...)
}

// Dial opens a connection to the member at peerURL, with TLS for an https
// URL (see Config.TLS). The member's forwards to the leader use it.
func Dial(peerURL string, tlsClient *tlsutil.Client, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	a, err := parsePeerURL(peerURL)
	if err != nil {
		return nil, err
	}
	return a.dial(tlsClient, opts...)
}
