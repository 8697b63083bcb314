package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	sendMethod       = "/cairn.peer.v1.Raft/Send"
	metadataCluster  = "cairn-cluster-id"
	metadataMember   = "cairn-member-id"
	defaultQueueSize = 4096
	maxBackoff       = time.Second
)

// Config configures a Transport.
type Config struct {
	ClusterID uint64
	MemberID  uint64
	// Deliver hands a received message to the local member; it may block,
	// which pushes back on the sender through gRPC flow control.
	Deliver func(*raftpb.Message)
	// ReportUnreachable tells the local member a peer could not be reached.
	ReportUnreachable func(id uint64)
	// ReportSnapshot tells the local member whether a snapshot it sent
	// arrived.
	ReportSnapshot func(id uint64, delivered bool)
	// Members lists the cluster's members: for members joining it, and to
	// refuse members that were removed.
	Members func() []*membershippb.Member
	// HashKV answers a peer's initial corruption check (hashkv.go); nil
	// answers none.
	HashKV func(*pb.HashKVRequest) (*pb.HashKVResponse, error)
	// OnRemoved is called when a peer says this member was removed from
	// the cluster; the member must stop.
	OnRemoved func()
	// MemberDir is the node's directory: snapshots to send are read from it
	// and received ones staged in it.
	MemberDir string
	// FS is the filesystem MemberDir is on, the node's. Default vfs.Default.
	FS vfs.FS
	// QueueLength bounds the messages waiting for one peer; beyond it they
	// are dropped. Default 4096.
	QueueLength int
	// MaxMessageBytes bounds one message on the wire (a raft append of
	// MaxSizePerMsg plus slack). Default 64 MiB.
	MaxMessageBytes int
	// ProbeInterval is how often the round-trip time to each peer is
	// measured (metrics.go). Default 5 s.
	ProbeInterval time.Duration
	// TLS configures dialling https peer URLs (--peer-cert-file,
	// --peer-trusted-ca-file, ...); nil dials them with the system's roots.
	TLS    *tlsutil.Client
	Logger *slog.Logger
}

// Transport sends and receives raft messages. Send and the peer methods are
// safe for concurrent use.
type Transport struct {
	cfg Config

	mu sync.Mutex
	// peers is guarded by mu.
	peers map[uint64]*peer
	// memberSet is the current members' IDs (SetMembers).
	memberSet atomic.Pointer[map[uint64]bool]
	// receivingSnapshot is held while a received snapshot is staged.
	receivingSnapshot sync.Mutex
	// metrics are the peer network metrics (metrics.go).
	metrics *peerMetrics
}

// New returns a transport with no peers.
func New(cfg Config) *Transport {
	if cfg.QueueLength == 0 {
		cfg.QueueLength = defaultQueueSize
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = defaultProbeInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.Members == nil {
		cfg.Members = func() []*membershippb.Member { return nil }
	}
	if cfg.OnRemoved == nil {
		cfg.OnRemoved = func() {}
	}
	return &Transport{cfg: cfg, peers: map[uint64]*peer{}, metrics: newPeerMetrics()}
}

// AddPeer starts sending to member id at its peer URLs.
func (t *Transport) AddPeer(id uint64, peerURLs []string) error {
	if len(peerURLs) == 0 {
		return fmt.Errorf("transport: member %x has no peer URL", id)
	}
	address, err := parsePeerURL(peerURLs[0])
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.peers[id]; ok || id == t.cfg.MemberID {
		return nil
	}
	p := newPeer(t, id, address)
	t.peers[id] = p
	t.metrics.addPeer(id)
	go p.run()
	return nil
}

// Peers returns the IDs of the members messages are sent to.
func (t *Transport) Peers() []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]uint64, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	return ids
}

// RemovePeer stops sending to member id.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if ok {
		p.stop()
	}
}

// Send queues messages for their peers; it never blocks.
func (t *Transport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p, ok := t.peers[m.GetTo()]
		if !ok {
			continue
		}
		if m.GetType() == raftpb.MsgSnap {
			// raft sends one snapshot at a time to a member and waits for
			// its report, so this goroutine is bounded by the peers.
			go p.sendSnapshot(m)
			continue
		}
		p.enqueue(m)
	}
}

// Stop closes every outgoing stream.
func (t *Transport) Stop() {
	t.mu.Lock()
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
}

// Register adds the receiving side to a gRPC server on the peer URLs.
func (t *Transport) Register(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "cairn.peer.v1.Raft",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Members", Handler: t.membersHandler},
			{MethodName: "HashKV", Handler: t.hashKVHandler},
			{MethodName: "Probe", Handler: t.probeHandler},
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Send",
			Handler:       func(_ any, stream grpc.ServerStream) error { return t.receive(stream) },
			ClientStreams: true,
		}, {
			StreamName:    "Snapshot",
			Handler:       func(_ any, stream grpc.ServerStream) error { return t.receiveSnapshot(stream) },
			ClientStreams: true,
		}},
	}, t)
}

// ServerOptions are the gRPC server options the peer listener needs.
func (t *Transport) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(t.cfg.MaxMessageBytes)}
}

// ErrClusterIDMismatch is returned to a peer of another cluster.
var ErrClusterIDMismatch = status.Error(codes.FailedPrecondition, "etcdserver: cluster ID mismatch")

func (t *Transport) receive(stream grpc.ServerStream) error {
	from, err := t.checkPeer(stream.Context())
	if err != nil {
		return err
	}
	for {
		m := &raftpb.Message{}
		if err := stream.RecvMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				return stream.SendMsg(&emptypb.Empty{})
			}
			return err
		}
		if !t.isMember(from) {
			return ErrMemberRemoved
		}
		t.metrics.received(from, proto.Size(m))
		if m.GetFrom() != from || m.GetTo() != t.cfg.MemberID {
			return status.Errorf(codes.InvalidArgument, "message from %x to %x on a stream from member %x to %x", m.GetFrom(), m.GetTo(), from, t.cfg.MemberID)
		}
		t.cfg.Deliver(m)
	}
}

// checkPeer refuses streams from another cluster.
func (t *Transport) checkPeer(ctx context.Context) (uint64, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	cluster, err1 := parseID(md.Get(metadataCluster))
	from, err2 := parseID(md.Get(metadataMember))
	if err1 != nil || err2 != nil {
		return 0, status.Error(codes.InvalidArgument, "transport: stream without cluster and member ID")
	}
	if cluster != t.cfg.ClusterID {
		t.cfg.Logger.Error("refused a peer from another cluster", "local-cluster-id", fmt.Sprintf("%x", t.cfg.ClusterID),
			"remote-cluster-id", fmt.Sprintf("%x", cluster), "remote-member-id", fmt.Sprintf("%x", from))
		return 0, ErrClusterIDMismatch
	}
	if !t.isMember(from) {
		t.cfg.Logger.Warn("refused a removed member", "remote-member-id", fmt.Sprintf("%x", from))
		return 0, ErrMemberRemoved
	}
	return from, nil
}

// ErrMemberRemoved is returned to a member that is no longer in the
// cluster; it stops when it gets it.
var ErrMemberRemoved = status.Error(codes.FailedPrecondition, "etcdserver: the member has been permanently removed from the cluster")

// isMember reports whether id is in the member list (an empty list, before
// a joining member's first snapshot, knows nobody and refuses nobody).
func (t *Transport) isMember(id uint64) bool {
	set := t.memberSet.Load()
	return set == nil || len(*set) == 0 || (*set)[id]
}

// SetMembers tells the transport who the members are; messages from
// anyone else are refused.
func (t *Transport) SetMembers(members []*membershippb.Member) {
	set := make(map[uint64]bool, len(members))
	for _, m := range members {
		set[m.GetID()] = true
	}
	t.memberSet.Store(&set)
}

func parseID(values []string) (uint64, error) {
	if len(values) != 1 {
		return 0, errors.New("missing")
	}
	return strconv.ParseUint(values[0], 16, 64)
}

// peer is the sending side towards one member.
type peer struct {
	t       *Transport
	id      uint64
	address peerAddress
	queue   chan *raftpb.Message
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	// dropped counts messages dropped since the last log line; owned by
	// enqueue callers under t.mu.
	dropped int
}

func newPeer(t *Transport, id uint64, address peerAddress) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	return &peer{t: t, id: id, address: address, queue: make(chan *raftpb.Message, t.cfg.QueueLength),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// enqueue drops the message when the queue is full. REQUIRES: t.mu held.
func (p *peer) enqueue(m *raftpb.Message) {
	select {
	case p.queue <- m:
	default:
		p.t.metrics.failed(p.id, 1)
		p.dropped++
		if p.dropped == 1 || p.dropped%1000 == 0 {
			p.t.cfg.Logger.Warn("dropped raft messages: the queue to the peer is full", "peer", fmt.Sprintf("%x", p.id), "dropped", p.dropped)
		}
	}
}

func (p *peer) stop() {
	p.cancel()
	<-p.done
}

func (p *peer) run() {
	defer close(p.done)
	backoff := 50 * time.Millisecond
	lastTLSError := ""
	for p.ctx.Err() == nil {
		err := p.stream()
		if status.Convert(err).Message() == status.Convert(ErrMemberRemoved).Message() {
			p.t.cfg.Logger.Error("a peer says this member was removed from the cluster", "peer", fmt.Sprintf("%x", p.id))
			p.t.cfg.OnRemoved()
			return
		}
		if err != nil && p.ctx.Err() == nil {
			p.logBroken(err, &lastTLSError)
			p.t.cfg.ReportUnreachable(p.id)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = 50 * time.Millisecond
		lastTLSError = ""
	}
}

// logBroken logs why a stream broke: at debug level (peers restart, and
// raft copes), except a TLS failure (a certificate one side refuses),
// which does not heal by itself: a warning, once until the error changes.
func (p *peer) logBroken(err error, lastTLSError *string) {
	msg := err.Error()
	if !strings.Contains(msg, "tls: ") {
		p.t.cfg.Logger.Debug("peer stream broke", "peer", fmt.Sprintf("%x", p.id), "error", msg)
		return
	}
	if msg != *lastTLSError {
		p.t.cfg.Logger.Warn("cannot reach peer: TLS failed", "peer", fmt.Sprintf("%x", p.id), "address", p.address.target, "error", msg)
	}
	*lastTLSError = msg
}

// stream connects and sends queued messages until the stream breaks.
func (p *peer) stream() error {
	conn, err := p.address.dial(p.t.cfg.TLS,
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(p.t.cfg.MaxMessageBytes)))
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := conn.NewStream(p.outgoingContext(), &grpc.StreamDesc{ClientStreams: true}, sendMethod)
	if err != nil {
		return err
	}
	probeCtx, stopProbe := context.WithCancel(p.outgoingContext())
	defer stopProbe()
	go p.probe(probeCtx, conn)
	for {
		select {
		case m := <-p.queue:
			if err := s.SendMsg(m); err != nil {
				p.t.metrics.failed(p.id, 1)
				return p.explain(s, err)
			}
			p.t.metrics.sent(p.id, proto.Size(m))
		case <-p.ctx.Done():
			s.CloseSend()
			return nil
		}
	}
}

// explain turns an io.EOF from SendMsg into the stream's real status, so a
// cluster ID mismatch is logged as such.
func (p *peer) explain(s grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	if rerr := s.RecvMsg(&emptypb.Empty{}); rerr != nil {
		if status.Code(rerr) == codes.FailedPrecondition {
			p.t.cfg.Logger.Error("peer refused this member", "peer", fmt.Sprintf("%x", p.id), "error", rerr)
		}
		return rerr
	}
	return err
}
