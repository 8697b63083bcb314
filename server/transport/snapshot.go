package transport

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A snapshot travels on its own stream, /cairn.peer.v1.Raft/Snapshot, as a
// sequence of chunks, each a BytesValue whose first byte says what it is:
//
//	'm' the MsgSnap, marshalled
//	'f' the name of the next file of the checkpoint
//	'd' up to node.SnapshotChunkBytesMax of that file
//	'e' the end: everything arrived
//
// The transport only carries bytes: the node's SnapshotReader reads the
// chunks from the sender's checkpoint, and its SnapshotStager writes them
// durably on the receiver, which then hands the MsgSnap, pointing at the
// staged snapshot, to its node. Neither side holds a whole snapshot in
// memory.
const (
	snapshotMethod = "/cairn.peer.v1.Raft/Snapshot"
	chunkMessage   = 'm'
	chunkFile      = 'f'
	chunkData      = 'd'
	chunkEnd       = 'e'
)

// sendSnapshot streams the checkpoint a MsgSnap names and reports to raft
// whether it arrived.
func (p *peer) sendSnapshot(m *raftpb.Message) {
	err := p.streamSnapshot(m)
	if err != nil {
		p.t.cfg.Logger.Warn("snapshot not sent", "peer", fmt.Sprintf("%x", p.id),
			"index", m.GetSnapshot().GetMetadata().GetIndex(), "error", err)
	}
	p.t.cfg.ReportSnapshot(p.id, err == nil)
}

func (p *peer) streamSnapshot(m *raftpb.Message) error {
	r, err := node.OpenSnapshot(p.t.cfg.FS, p.t.cfg.MemberDir, m.GetSnapshot())
	if err != nil {
		return err
	}
	defer r.Close()
	conn, err := p.address.dial(p.t.cfg.TLS)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := conn.NewStream(p.outgoingContext(), &grpc.StreamDesc{ClientStreams: true}, snapshotMethod)
	if err != nil {
		return err
	}
	w := chunkWriter{s: s, sent: func(n int) { p.t.metrics.sent(p.id, n) }}
	msg, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := w.send(chunkMessage, msg); err != nil {
		return err
	}
	if err := sendChunks(w, r); err != nil {
		return err
	}
	if err := w.send(chunkEnd, nil); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return s.RecvMsg(&emptypb.Empty{})
}

func (p *peer) outgoingContext() context.Context {
	return metadata.AppendToOutgoingContext(p.ctx,
		metadataCluster, fmt.Sprintf("%x", p.t.cfg.ClusterID),
		metadataMember, fmt.Sprintf("%x", p.t.cfg.MemberID))
}

// chunkWriter sends snapshot chunks, counting their bytes with sent.
type chunkWriter struct {
	s    grpc.ClientStream
	sent func(bytes int)
}

func (w chunkWriter) send(kind byte, payload []byte) error {
	b := make([]byte, 1+len(payload))
	b[0] = kind
	copy(b[1:], payload)
	if err := w.s.SendMsg(wrapperspb.Bytes(b)); err != nil {
		return err
	}
	w.sent(len(b))
	return nil
}

// sendChunks sends what the reader reads until its end.
func sendChunks(w chunkWriter, r *node.SnapshotReader) error {
	for {
		c, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if c.File != "" {
			err = w.send(chunkFile, []byte(c.File))
		} else {
			err = w.send(chunkData, c.Data)
		}
		if err != nil {
			return err
		}
	}
}

// receiveSnapshot stages a streamed snapshot and hands its MsgSnap to the
// node. One snapshot is received at a time: raft sends a member one at a
// time, and two stagers of the same index must not share a directory.
func (t *Transport) receiveSnapshot(stream grpc.ServerStream) error {
	from, err := t.checkPeer(stream.Context())
	if err != nil {
		return err
	}
	m, err := receiveMessage(stream, t.counter(from))
	if err != nil {
		return err
	}
	if m.GetType() != raftpb.MsgSnap || m.GetFrom() != from || m.GetTo() != t.cfg.MemberID {
		return status.Errorf(codes.InvalidArgument, "snapshot stream carries %s from %x to %x", m.GetType(), m.GetFrom(), m.GetTo())
	}
	t.receivingSnapshot.Lock()
	data, err := t.stageSnapshot(stream, m.GetSnapshot().GetMetadata().GetIndex(), t.counter(from))
	t.receivingSnapshot.Unlock()
	if err != nil {
		return err
	}
	m.Snapshot.Data = data
	t.cfg.Deliver(m)
	return stream.SendMsg(&emptypb.Empty{})
}

// counter counts bytes received from member from.
func (t *Transport) counter(from uint64) func(int) {
	return func(n int) { t.metrics.received(from, n) }
}

func receiveChunk(stream grpc.ServerStream, received func(bytes int)) (byte, []byte, error) {
	c := &wrapperspb.BytesValue{}
	if err := stream.RecvMsg(c); err != nil {
		return 0, nil, err
	}
	received(len(c.Value))
	if len(c.Value) == 0 {
		return 0, nil, status.Error(codes.InvalidArgument, "empty snapshot chunk")
	}
	return c.Value[0], c.Value[1:], nil
}

func receiveMessage(stream grpc.ServerStream, received func(bytes int)) (*raftpb.Message, error) {
	kind, payload, err := receiveChunk(stream, received)
	if err != nil {
		return nil, err
	}
	m := &raftpb.Message{}
	if kind != chunkMessage || proto.Unmarshal(payload, m) != nil {
		return nil, status.Error(codes.InvalidArgument, "snapshot stream does not start with its message")
	}
	return m, nil
}

// stageSnapshot hands the stream's chunks to the node's stager until the
// end chunk, and returns the staged snapshot's Snapshot.Data.
func (t *Transport) stageSnapshot(stream grpc.ServerStream, index uint64, received func(bytes int)) ([]byte, error) {
	st, err := node.StageSnapshot(t.cfg.FS, t.cfg.MemberDir, index)
	if err != nil {
		return nil, err
	}
	for {
		kind, payload, err := receiveChunk(stream, received)
		if err == nil {
			err = stageChunk(st, kind, payload)
		}
		if errors.Is(err, errEndOfSnapshot) {
			return st.Finish()
		}
		if err != nil {
			st.Abort()
			if errors.Is(err, node.ErrBadSnapshotChunk) {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			return nil, err
		}
	}
}

var errEndOfSnapshot = errors.New("end of snapshot")

func stageChunk(st *node.SnapshotStager, kind byte, payload []byte) error {
	switch kind {
	case chunkFile:
		return st.Add(node.SnapshotChunk{File: string(payload)})
	case chunkData:
		return st.Add(node.SnapshotChunk{Data: payload})
	case chunkEnd:
		return errEndOfSnapshot
	}
	return status.Errorf(codes.InvalidArgument, "unknown snapshot chunk %q", kind)
}
