package etcdapi

import (
	"context"
	"fmt"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// A put's bytes go from the socket to the core once: the codec copies the
// received message straight into a node.WirePut, whose buffer becomes the
// raft entry, and the core decodes the put around those bytes (node's
// wire.go says why). Every other message takes gRPC's proto codec.

// wirePutRequest is what the KV service's Put handler asks the codec to
// decode into: the core's request, made from the received bytes.
type wirePutRequest struct {
	req node.Request
}

// Codec is the client server's gRPC codec (grpc.ForceServerCodecV2): gRPC's
// proto codec, except that a put is decoded by the core from its wire bytes.
// It also counts the bytes of every message it decodes and encodes.
type Codec struct {
	proto encoding.CodecV2
	bytes ByteCounter
}

// ByteCounter counts the bytes of the messages a server receives and
// sends, as they cross the wire: each message's encoding and the 5-byte
// gRPC message header before it (uncompressed: etcd's clients do not
// compress). etcd counts its etcd_network_client_grpc_*_bytes_total so.
type ByteCounter interface {
	Received(bytes int)
	Sent(bytes int)
}

// grpcMessageHeaderBytes is the prefix gRPC frames each message with: a
// compression flag and a 4-byte length.
const grpcMessageHeaderBytes = 5

// NewCodec returns the codec, built on the registered proto codec; bytes
// may be nil.
func NewCodec(bytes ByteCounter) Codec {
	return Codec{proto: encoding.GetCodecV2("proto"), bytes: bytes}
}

// Name is the proto codec's: the content subtype clients ask for.
func (c Codec) Name() string { return c.proto.Name() }

// Marshal encodes as the proto codec does.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.proto.Marshal(v)
	if err == nil && c.bytes != nil {
		c.bytes.Sent(out.Len() + grpcMessageHeaderBytes)
	}
	return out, err
}

// Unmarshal decodes a put into its core request; anything else as the
// proto codec does.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if c.bytes != nil {
		c.bytes.Received(data.Len() + grpcMessageHeaderBytes)
	}
	w, ok := v.(*wirePutRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	put := node.NewWirePut(data.Len())
	data.CopyTo(put.Bytes())
	req, err := put.Request()
	if err != nil {
		return err
	}
	w.req = req
	return nil
}

// KVServiceDesc is etcd's KV service with the Put method decoding through
// the Codec: register kv with it instead of etcdserverpb.RegisterKVServer.
func KVServiceDesc() *grpc.ServiceDesc {
	desc := pb.KV_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Put" {
			desc.Methods[i].Handler = handleWirePut
			return &desc
		}
	}
	panic(fmt.Sprintf("etcdapi: %s has no Put method", desc.ServiceName))
}

// handleWirePut is the Put method's gRPC handler, as the generated one but
// decoding into a wirePutRequest. Interceptors see a *wirePutRequest.
func handleWirePut(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := &wirePutRequest{}
	if err := dec(in); err != nil {
		return nil, err
	}
	kv := srv.(*KV)
	if interceptor == nil {
		return kv.putWire(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: pb.KV_Put_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return kv.putWire(ctx, req.(*wirePutRequest))
	})
}

// putWire serves a put decoded by the core.
func (s *KV) putWire(ctx context.Context, in *wirePutRequest) (*pb.PutResponse, error) {
	return serve[*pb.PutResponse](ctx, s.d, in.req)
}
