package etcdapi

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/watch"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Watch implements etcdserverpb.WatchServer on a member's watch hub.
type Watch struct {
	pb.UnimplementedWatchServer
	hub  *watch.Hub
	id   Identity
	term func() uint64
	// maxRequestBytes is the size past which a response to a watcher that
	// asked for fragments is split, as etcd does (--max-request-bytes).
	maxRequestBytes int
	// Permitted, if set, is the core's decision whether the client that
	// presented the credentials may watch [key, rangeEnd)
	// (node.Node.CheckWatch); a refusal is answered as etcd does.
	Permitted func(c node.Credentials, key, rangeEnd []byte) error
	// pause waits, between two takes, as long as the hub says
	// (watch.Stream.Pause); tests replace it.
	pause func(ctx context.Context, d time.Duration) error
}

// sleep is Watch.pause outside tests: a timer, like a slower socket; what
// a client receives is still decided by the hub, which merges the events
// of the pause into the responses still queued.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewWatch returns the Watch service; term reports the current raft term
// for response headers.
func NewWatch(hub *watch.Hub, id Identity, term func() uint64, limits Limits) *Watch {
	if limits.MaxRequestBytes == 0 {
		limits.MaxRequestBytes = DefaultLimits.MaxRequestBytes
	}
	return &Watch{hub: hub, id: id, term: term, maxRequestBytes: limits.MaxRequestBytes, pause: sleep}
}

// Watch implements etcdserverpb.WatchServer: one goroutine reads requests
// into the hub stream, this one sends what the stream queues, in order.
// Like etcd, the stream lives until the client goes, even after it closed
// its sending side.
func (s *Watch) Watch(stream pb.Watch_WatchServer) error {
	ws := s.hub.NewStream()
	defer ws.Close()
	recvc := make(chan error, 1)
	creds := credentialsOf(stream.Context())
	go func() { recvc <- s.recvLoop(stream, ws, creds) }()
	for {
		select {
		case <-ws.Ready():
			for _, r := range ws.Take() {
				if err := s.send(stream, r); err != nil {
					return err
				}
			}
			if pause := ws.Pause(); pause > 0 {
				if err := s.pause(stream.Context(), pause); err != nil {
					return rpctypes.ErrGRPCWatchCanceled
				}
			}
		case err := <-recvc:
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return rpctypes.ErrGRPCWatchCanceled
				}
				return err
			}
			recvc = nil // the client closed its side; keep sending
		case <-stream.Context().Done():
			return rpctypes.ErrGRPCWatchCanceled
		}
	}
}

// recvLoop hands requests to the stream until the client closes its side
// (nil) or the stream fails.
func (s *Watch) recvLoop(stream pb.Watch_WatchServer, ws *watch.Stream, creds node.Credentials) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case req.GetCreateRequest() != nil:
			s.create(ws, req.GetCreateRequest(), creds)
		case req.GetCancelRequest() != nil:
			ws.Cancel(req.GetCancelRequest().GetWatchId())
		case req.GetProgressRequest() != nil:
			ws.RequestProgress()
		}
	}
}

// create checks, as etcd does after refusing a negative start revision,
// that the client may read the range, and creates the watcher.
func (s *Watch) create(ws *watch.Stream, req *pb.WatchCreateRequest, creds node.Credentials) {
	if s.Permitted != nil && req.GetStartRevision() >= 0 {
		if err := s.Permitted(creds, req.GetKey(), req.GetRangeEnd()); err != nil {
			ws.Refuse(err)
			return
		}
	}
	ws.Create(req)
}

func (s *Watch) send(stream pb.Watch_WatchServer, r watch.Response) error {
	resp := r.WatchResponse
	resp.Header.ClusterId = s.id.ClusterID
	resp.Header.MemberId = s.id.MemberID
	resp.Header.RaftTerm = s.term()
	if !r.Fragment {
		return stream.Send(resp)
	}
	return sendFragments(resp, s.maxRequestBytes, stream.Send)
}

// sendFragments splits a response that reaches maxBytes into fragments of
// whole events, each but the last marked fragment, as etcd does; a single
// event is never split.
func sendFragments(resp *pb.WatchResponse, maxBytes int, send func(*pb.WatchResponse) error) error {
	if proto.Size(resp) < maxBytes || len(resp.Events) < 2 {
		return send(resp)
	}
	for rest := resp.Events; len(rest) > 0; {
		cur := &pb.WatchResponse{
			Header: resp.Header, WatchId: resp.WatchId, Created: resp.Created, Canceled: resp.Canceled,
			CompactRevision: resp.CompactRevision, CancelReason: resp.CancelReason, Fragment: true,
		}
		n := fragmentLength(cur, rest, maxBytes)
		cur.Events, rest = rest[:n], rest[n:]
		cur.Fragment = len(rest) > 0
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}

// fragmentLength is how many of evs fit in one fragment: at least one, and
// then as long as the fragment stays below maxBytes.
func fragmentLength(cur *pb.WatchResponse, evs []*mvccpb.Event, maxBytes int) int {
	size := proto.Size(cur)
	n := 0
	for _, ev := range evs {
		// An event adds its size plus a tag and a length prefix.
		add := eventFieldSize(ev)
		if n > 0 && size+add >= maxBytes {
			break
		}
		size += add
		n++
	}
	return n
}

func eventFieldSize(ev *mvccpb.Event) int {
	n := proto.Size(ev)
	return 1 + varintSize(uint64(n)) + n
}

func varintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
