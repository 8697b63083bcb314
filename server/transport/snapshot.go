package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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
//	'd' up to snapshotChunkBytes of that file
//	'e' the end: everything arrived
//
// The receiver writes the files durably under the member's
// incoming/<index> directory and only then hands the MsgSnap, pointing
// there, to its node. Neither side holds a whole snapshot in memory.
const (
	snapshotMethod     = "/cairn.peer.v1.Raft/Snapshot"
	snapshotChunkBytes = 1 << 20
	chunkMessage       = 'm'
	chunkFile          = 'f'
	chunkData          = 'd'
	chunkEnd           = 'e'
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
	conn, err := grpc.NewClient(p.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := conn.NewStream(p.outgoingContext(), &grpc.StreamDesc{ClientStreams: true}, snapshotMethod)
	if err != nil {
		return err
	}
	w := chunkWriter{s}
	msg, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := w.send(chunkMessage, msg); err != nil {
		return err
	}
	if err := sendFiles(w, filepath.Join(p.t.cfg.MemberDir, string(m.GetSnapshot().GetData()))); err != nil {
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

type chunkWriter struct{ s grpc.ClientStream }

func (w chunkWriter) send(kind byte, payload []byte) error {
	b := make([]byte, 1+len(payload))
	b[0] = kind
	copy(b[1:], payload)
	return w.s.SendMsg(wrapperspb.Bytes(b))
}

func sendFiles(w chunkWriter, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := sendFile(w, dir, name); err != nil {
			return err
		}
	}
	return nil
}

func sendFile(w chunkWriter, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := w.send(chunkFile, []byte(name)); err != nil {
		return err
	}
	buf := make([]byte, snapshotChunkBytes)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := w.send(chunkData, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// receiveSnapshot stages a streamed snapshot and hands its MsgSnap to the
// node.
func (t *Transport) receiveSnapshot(stream grpc.ServerStream) error {
	from, err := t.checkPeer(stream.Context())
	if err != nil {
		return err
	}
	m, err := receiveMessage(stream)
	if err != nil {
		return err
	}
	if m.GetType() != raftpb.MsgSnap || m.GetFrom() != from || m.GetTo() != t.cfg.MemberID {
		return status.Errorf(codes.InvalidArgument, "snapshot stream carries %s from %x to %x", m.GetType(), m.GetFrom(), m.GetTo())
	}
	rel := node.IncomingSnapshotPath(m.GetSnapshot().GetMetadata().GetIndex())
	if err := receiveFiles(stream, filepath.Join(t.cfg.MemberDir, rel)); err != nil {
		return err
	}
	m.Snapshot.Data = []byte(rel)
	t.cfg.Deliver(m)
	return stream.SendMsg(&emptypb.Empty{})
}

func receiveChunk(stream grpc.ServerStream) (byte, []byte, error) {
	c := &wrapperspb.BytesValue{}
	if err := stream.RecvMsg(c); err != nil {
		return 0, nil, err
	}
	if len(c.Value) == 0 {
		return 0, nil, status.Error(codes.InvalidArgument, "empty snapshot chunk")
	}
	return c.Value[0], c.Value[1:], nil
}

func receiveMessage(stream grpc.ServerStream) (*raftpb.Message, error) {
	kind, payload, err := receiveChunk(stream)
	if err != nil {
		return nil, err
	}
	m := &raftpb.Message{}
	if kind != chunkMessage || proto.Unmarshal(payload, m) != nil {
		return nil, status.Error(codes.InvalidArgument, "snapshot stream does not start with its message")
	}
	return m, nil
}

// receiveFiles writes the checkpoint's files into dir, each synced, and
// syncs dir once every file is there.
func receiveFiles(stream grpc.ServerStream, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		kind, payload, err := receiveChunk(stream)
		if err != nil {
			return err
		}
		switch kind {
		case chunkFile:
			if f, err = nextFile(f, dir, string(payload)); err != nil {
				return err
			}
		case chunkData:
			if f == nil {
				return status.Error(codes.InvalidArgument, "snapshot data before a file name")
			}
			if _, err := f.Write(payload); err != nil {
				return err
			}
		case chunkEnd:
			if _, err := nextFile(f, dir, ""); err != nil {
				return err
			}
			f = nil
			return syncDir(dir)
		default:
			return status.Errorf(codes.InvalidArgument, "unknown snapshot chunk %q", kind)
		}
	}
}

// nextFile syncs and closes the current file and creates the next one
// (none when name is empty).
func nextFile(cur *os.File, dir, name string) (*os.File, error) {
	if cur != nil {
		if err := cur.Sync(); err != nil {
			return nil, err
		}
		if err := cur.Close(); err != nil {
			return nil, err
		}
	}
	if name == "" {
		return nil, nil
	}
	if name != filepath.Base(name) || name == "." || name == ".." {
		return nil, status.Errorf(codes.InvalidArgument, "snapshot file name %q", name)
	}
	return os.Create(filepath.Join(dir, name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
