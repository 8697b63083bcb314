package etcdapi

import (
	"errors"
	"io"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// RangeStream implements etcdserverpb.KVServer (etcd 3.7's streamed
// range). The core admits the request, waits for its ReadIndex barrier and
// decides every chunk (node.RangeStream); this only sends them. A chunk is
// read only once the previous one is sent, and Send blocks while gRPC's
// flow-control window to the client is full, so a slow client holds at
// most one chunk and the window on this member, however long the range.
func (s *KV) RangeStream(req *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	c, err := s.d.Complete(stream.Context(), node.Request{RangeStream: req, Credentials: credentialsOf(stream.Context())})
	if err != nil {
		return err
	}
	chunks, err := c.Stream()
	if err != nil {
		return err
	}
	for {
		chunk, err := chunks.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(chunk); err != nil {
			return err
		}
	}
}
