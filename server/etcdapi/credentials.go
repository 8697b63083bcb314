package etcdapi

import (
	"context"
	"strings"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// A client's credentials travel with each request to the core
// (node.Credentials), which decides who the request comes from and what
// it may do. This file only reads them off the wire: the token of the
// request's gRPC metadata ("token", or etcd's gateway name
// "authorization" with an optional "Bearer " prefix) and, on a client
// port with --client-cert-auth, the common name of the client's verified
// certificate.

// credentialsKey keys the credentials the interceptors found.
type credentialsKey struct{}

// CredentialsUnaryInterceptor reads each unary request's credentials;
// commonNameIsUser is --client-cert-auth.
func CredentialsUnaryInterceptor(commonNameIsUser bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(context.WithValue(ctx, credentialsKey{}, readCredentials(ctx, commonNameIsUser)), req)
	}
}

// CredentialsStreamInterceptor reads each stream's credentials, once, at
// its start, as etcd does.
func CredentialsStreamInterceptor(commonNameIsUser bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := context.WithValue(ss.Context(), credentialsKey{}, readCredentials(ss.Context(), commonNameIsUser))
		return handler(srv, &credentialedStream{ServerStream: ss, ctx: ctx})
	}
}

type credentialedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *credentialedStream) Context() context.Context { return s.ctx }

// credentialsOf are the credentials of the request ctx carries: those the
// interceptors read, or else (the peer port, which serves forwarded
// requests without them) the token alone.
func credentialsOf(ctx context.Context) node.Credentials {
	if c, ok := ctx.Value(credentialsKey{}).(node.Credentials); ok {
		return c
	}
	return readCredentials(ctx, false)
}

func readCredentials(ctx context.Context, commonNameIsUser bool) node.Credentials {
	var c node.Credentials
	// ValueFromIncomingContext reads the one key; FromIncomingContext
	// copied all of a request's metadata, on every request (1 % of a
	// member's CPU under small puts).
	tokens := metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameGRPC)
	if len(tokens) == 0 {
		tokens = metadata.ValueFromIncomingContext(ctx, rpctypes.TokenFieldNameSwagger)
	}
	if len(tokens) > 0 {
		c.Token = strings.TrimPrefix(tokens[0], "Bearer ")
	}
	if commonNameIsUser {
		c.CommonName = verifiedCommonName(ctx)
	}
	return c
}

// verifiedCommonName is the common name of the client's certificate, if
// it was verified.
func verifiedCommonName(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	for _, chain := range info.State.VerifiedChains {
		if len(chain) > 0 {
			return chain[0].Subject.CommonName
		}
	}
	return ""
}

// forwardCredentials passes the token of the request ctx carries to the
// leader a request is forwarded to, which checks it: tokens are
// registered on every member.
func forwardCredentials(ctx context.Context) context.Context {
	if token := credentialsOf(ctx).Token; token != "" {
		return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, token)
	}
	return ctx
}
