package member

import (
	"cmp"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/server/driver"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cairn-db/cairn/server/metrics"
	"github.com/cairn-db/cairn/server/tlsutil"
	"github.com/cairn-db/cairn/server/transport"
	"github.com/cairn-db/cairn/server/watch"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Config is a member's configuration; cmd/cairn fills it from etcd's flags.
type Config struct {
	Name                     string
	DataDir                  string
	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string
	// PeerListeners, when set, are sockets the caller already listens on,
	// one per ListenPeerURLs entry and in its order; the member serves them
	// instead of listening itself (https URLs still get TLS). A caller
	// that must know every peer URL before any member starts holds its
	// ports this way, so no other socket can take one in between.
	PeerListeners []net.Listener
	// ListenMetricsURLs serve HTTP: /health, /livez, /readyz, /version,
	// /metrics, and /debug/pprof when EnablePprof is set
	// (--listen-metrics-urls, --enable-pprof). The client URLs serve the
	// same beside gRPC, unless ListenClientHTTPURLs
	// (--listen-client-http-urls) are given: then those serve HTTP and the
	// client URLs gRPC only.
	ListenMetricsURLs    []string
	ListenClientHTTPURLs []string
	EnablePprof          bool
	// InitialCluster is --initial-cluster; empty means this member alone
	// with its advertised peer URLs.
	InitialCluster      string
	InitialClusterToken string
	// InitialClusterState is "new" (bootstrap with --initial-cluster) or
	// "existing" (join a running cluster that already added this member).
	InitialClusterState string
	// TickInterval is --heartbeat-interval. Default 100 ms.
	TickInterval time.Duration
	// ElectionTimeout is --election-timeout. Default 1 s.
	ElectionTimeout time.Duration
	// SnapshotCount and SnapshotCatchUpEntries bound the raft log
	// (--snapshot-count, --snapshot-catchup-entries); see node.Config.
	SnapshotCount          uint64
	SnapshotCatchUpEntries uint64
	Limits                 etcdapi.Limits
	Logger                 *slog.Logger
	// FS is the filesystem DataDir is on: the node's databases, its
	// snapshots and the identity file. Default vfs.Default. Knobs reach the
	// node as they are. Production leaves both zero; a cairn built with the
	// chaosfailpoints tag sets them, for the chaos self-tests
	// (cmd/cairn/failpoints.go), and tests run members on a vfs.MemFS.
	FS    vfs.FS
	Knobs node.TestingKnobs
	// CorruptCheckTime is --corrupt-check-time: how often the leader
	// compares the members' hashes (0: never). CompactHashCheckTime is
	// --compact-hash-check-time with the CompactHashCheck gate on (0:
	// never). InitialCorruptCheck is the InitialCorruptCheck gate: a
	// restarted member compares its hash with its peers' before it
	// serves. See corrupt.go.
	CorruptCheckTime     time.Duration
	CompactHashCheckTime time.Duration
	InitialCorruptCheck  bool
	// PeerProbeInterval is how often the round trip to each peer is
	// measured for etcd_network_peer_round_trip_time_seconds. Default 5 s.
	PeerProbeInterval time.Duration
	// DisableGRPCGateway is --enable-grpc-gateway=false: no JSON gateway
	// under /v3/ (gateway.go).
	DisableGRPCGateway bool
	// LeaseClock is the node's clock for lease expiry. Default the wall
	// clock; the chaos self-tests plant a wrong one.
	LeaseClock node.Clock
	// MemoryBudgetBytes is --memory-budget: the memory the member's
	// caches of user data share (node.SplitMemoryBudget). Default
	// node.DefaultMemoryBudgetBytes.
	MemoryBudgetBytes int64
	// ClientTLS and PeerTLS are the two ports' TLS (--cert-file, ...,
	// --peer-cert-file, ...; server/tlsutil). ClientAutoTLS and
	// PeerAutoTLS (--auto-tls, --peer-auto-tls) generate self-signed
	// certificates valid for SelfSignedCertValidityYears
	// (--self-signed-cert-validity, default 1) for a port without any.
	ClientTLS                   tlsutil.Config
	PeerTLS                     tlsutil.Config
	ClientAutoTLS               bool
	PeerAutoTLS                 bool
	SelfSignedCertValidityYears uint
	// PeerSkipClientSANVerification turns off the check that a peer's
	// certificate names the address it connects from
	// (--peer-skip-client-san-verification).
	PeerSkipClientSANVerification bool
	// CairnVersion is cairn's own version, shown by /version.
	CairnVersion string
	// MetricsLevel is --metrics: basic (default) or extensive.
	MetricsLevel metrics.Level
	// BcryptCost is --bcrypt-cost: the cost of the bcrypt hash of a
	// password added or changed through the Auth service. Default
	// bcrypt.DefaultCost (10).
	BcryptCost int
	// AuthTokenTTL is --auth-token-ttl: how long a simple auth token stays
	// valid after its last use. Default 300 s (node.Config).
	AuthTokenTTL time.Duration
	// AuthJWT is --auth-token jwt,...: the member issues and accepts JSON
	// Web Tokens with these keys. Default nil: simple tokens.
	AuthJWT *auth.JWT

	// MaxConcurrentStreams bounds the gRPC streams one client connection
	// may open (--max-concurrent-streams). Default math.MaxUint32, etcd's.
	MaxConcurrentStreams uint32
	// GRPCKeepAliveMinTime is the shortest interval at which a client may
	// ping; a client pinging faster is disconnected
	// (--grpc-keepalive-min-time). Zero: gRPC's own 5 minutes; cmd/cairn
	// passes etcd's 5 s.
	GRPCKeepAliveMinTime time.Duration
	// GRPCKeepAliveInterval and GRPCKeepAliveTimeout are how often the
	// member pings an idle client connection and how long it waits for the
	// answer before closing it (--grpc-keepalive-interval, -timeout). Zero:
	// gRPC's defaults, 2 h and 20 s, which are etcd's too.
	GRPCKeepAliveInterval time.Duration
	GRPCKeepAliveTimeout  time.Duration
	// DisablePreVote, InitialElectionTickAdvance, MaxLearners,
	// DisableStrictReconfigCheck and UnsafeNoFsync reach node.Config as
	// they are (--pre-vote=false, --initial-election-tick-advance,
	// --max-learners, --strict-reconfig-check=false, --unsafe-no-fsync).
	DisablePreVote             bool
	InitialElectionTickAdvance bool
	MaxLearners                int
	DisableStrictReconfigCheck bool
	UnsafeNoFsync              bool
	// ForceNewCluster restarts a member with data as a one-member cluster
	// keeping its data (--force-new-cluster; node.Config.ForceNewCluster).
	ForceNewCluster bool
	// LeaseCheckpointInterval reaches node.Config as it is: positive with
	// --feature-gates=LeaseCheckpoint=true (etcd's 5 minutes), else 0.
	LeaseCheckpointInterval time.Duration
	// AutoCompactionMode, AutoCompactionRetention and
	// AutoCompactionRetainRevisions reach node.Config as they are
	// (--auto-compaction-mode, --auto-compaction-retention).
	AutoCompactionMode            node.AutoCompactionMode
	AutoCompactionRetention       time.Duration
	AutoCompactionRetainRevisions int64
	// WatchProgressNotifyInterval is the period of progress notifications
	// (--watch-progress-notify-interval). Zero: the hub's default, 10 min.
	WatchProgressNotifyInterval time.Duration
}

func (c *Config) ensureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.Limits.MaxRequestBytes == 0 {
		c.Limits.MaxRequestBytes = etcdapi.DefaultLimits.MaxRequestBytes
	}
	if c.Limits.QuotaBackendBytes == 0 {
		c.Limits.QuotaBackendBytes = etcdapi.DefaultLimits.QuotaBackendBytes
	}
	if c.Limits.MaxTxnOps == 0 {
		c.Limits.MaxTxnOps = etcdapi.DefaultLimits.MaxTxnOps
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = "etcd-cluster"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.MemoryBudgetBytes == 0 {
		c.MemoryBudgetBytes = node.DefaultMemoryBudgetBytes
	}
	if c.SelfSignedCertValidityYears == 0 {
		c.SelfSignedCertValidityYears = tlsutil.DefaultSelfSignedCertValidityYears
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = math.MaxUint32
	}
}

// Member is a running cairn member.
type Member struct {
	cfg       Config
	node      *node.Node
	driver    *driver.Driver
	grpc      *grpc.Server
	listeners []net.Listener
	// peerGRPC serves the raft transport on peerListeners.
	peerGRPC      *grpc.Server
	peerListeners []net.Listener
	transport     *transport.Transport
	// hub serves watches from the events the driver hands it.
	hub *watch.Hub
	// leaderStreams are the client streams that require a leader; they
	// end when the node reports LeaderLost.
	leaderStreams *etcdapi.LeaderStreams
	httpServers   []*http.Server
	// httpListeners are the listeners of httpServers, in the same order.
	httpListeners []net.Listener
	serveWG       sync.WaitGroup
	stopOnce      sync.Once
	// leaderConns forwards followers' keep-alives and promotions to the
	// leader.
	leaderConns *leaderConns
	// gateway is the JSON gateway of the client URLs' HTTP side
	// (gateway.go); its connection is closed after grpc stops.
	gateway *gateway
	// loopback is the in-process client of this member's own services that
	// the Lock and Election services run on; closed after grpc stops.
	loopback *clientv3.Client
	// Identity is the cluster and member ID this member answers with.
	Identity etcdapi.Identity
	// metrics export the member's metrics under etcd's names.
	metrics *metrics.Registry
	// budget is cfg.MemoryBudgetBytes split among the node's caches and
	// the watch hub's window.
	budget node.MemoryBudget
	// tls is the TLS of both ports (tls.go).
	tls memberTLS
}

// Start opens the member's data and serves clients. It returns once the
// member listens; the log line "ready to serve client requests" follows.
func Start(cfg Config) (*Member, error) {
	cfg.ensureDefaults()
	budget, err := node.SplitMemoryBudget(cfg.MemoryBudgetBytes)
	if err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, budget: budget}
	if err := m.setUpTLS(); err != nil {
		return nil, err
	}
	st, err := m.resolveStart()
	if err != nil {
		return nil, err
	}
	m.Identity = etcdapi.Identity{ClusterID: st.ClusterID, MemberID: st.MemberID}
	if err := m.openNode(st); err != nil {
		return nil, err
	}
	if err := m.saveIdentity(st.identity); err != nil {
		m.node.Close()
		return nil, fmt.Errorf("record member identity: %w", err)
	}
	if err := m.initialCorruptCheck(st); err != nil {
		m.node.Close()
		return nil, err
	}
	if err := m.listen(); err != nil {
		m.node.Close()
		return nil, err
	}
	m.startLoop()
	if err := m.connectPeers(st.peers); err != nil {
		m.Stop(0)
		return nil, err
	}
	if err := m.serveHTTP(); err != nil {
		m.Stop(0)
		return nil, err
	}
	m.serve()
	go m.publishAttributes()
	return m, nil
}

// startLoop starts the transport, the watch hub and the driver loop that
// feeds them.
func (m *Member) startLoop() {
	m.transport = transport.New(transport.Config{
		ClusterID:         m.Identity.ClusterID,
		MemberID:          m.Identity.MemberID,
		Deliver:           func(msg *raftpb.Message) { m.driver.Step(msg) },
		ReportUnreachable: func(id uint64) { m.driver.ReportUnreachable(id) },
		ReportSnapshot:    func(id uint64, ok bool) { m.driver.ReportSnapshot(id, ok) },
		Members:           m.node.Members,
		HashKV:            m.node.HashKV,
		ProbeInterval:     m.cfg.PeerProbeInterval,
		OnRemoved:         func() { m.driver.Abort(node.ErrRemoved) },
		MemberDir:         m.memberDir(),
		FS:                m.cfg.FS,
		TLS:               m.tls.peerDial,
		Logger:            m.cfg.Logger.With("component", "transport"),
	})
	m.hub = watch.New(watch.NodeStore(m.node.Store()), watch.Config{
		RecentBytesMax:         int(m.budget.WatchWindowBytes),
		ProgressNotifyInterval: m.cfg.WatchProgressNotifyInterval,
	}, m.cfg.Logger.With("component", "watch"))
	m.leaderStreams = etcdapi.NewLeaderStreams(func() bool { return m.node.Status().Leader != 0 })
	m.driver = driver.Start(m.node, driver.Config{
		TickInterval:        m.cfg.TickInterval,
		Logger:              m.cfg.Logger,
		Send:                m.transport.Send,
		OnEvents:            m.hub.Notify,
		OnMembershipChanged: m.syncPeers,
		OnSnapshotInstalled: m.hub.Resync,
		OnLeaderLost:        m.leaderStreams.CancelAll,
	})
}

// connectPeers starts streams to the members known before the node knows
// its members itself (a joining member's), then to the node's, and serves
// the peers' streams.
func (m *Member) connectPeers(known []*membershippb.Member) error {
	for _, peer := range append(known, m.node.Members()...) {
		if peer.GetID() == m.Identity.MemberID {
			continue
		}
		if err := m.transport.AddPeer(peer.GetID(), peer.GetRaftAttributes().GetPeerUrls()); err != nil {
			return err
		}
	}
	m.transport.SetMembers(m.node.Members())
	m.peerGRPC = grpc.NewServer(append(m.transport.ServerOptions(),
		grpc.Creds(tlsutil.Credentials(m.cfg.Logger.With("component", "tls", "port", "peer"))))...)
	m.transport.Register(m.peerGRPC)
	// The leader serves followers' forwards.
	pb.RegisterLeaseServer(m.peerGRPC, etcdapi.NewPeerLease(m.driver, m.Identity, m.transport.CheckPeer))
	pb.RegisterClusterServer(m.peerGRPC, etcdapi.NewCluster(m.driver, nil))
	for _, l := range m.peerListeners {
		m.serveWG.Add(1)
		go func() {
			defer m.serveWG.Done()
			if err := m.peerGRPC.Serve(l); err != nil {
				m.cfg.Logger.Error("peer listener stopped", "address", l.Addr().String(), "error", err)
			}
		}()
	}
	return nil
}

// syncPeers makes the transport talk to exactly the node's members. It runs
// on the driver's loop goroutine and must not block: adding and removing
// peers only starts and stops their goroutines.
func (m *Member) syncPeers() {
	members := m.node.Members()
	m.transport.SetMembers(members)
	if len(members) == 0 {
		return // a joining member before its snapshot: keep the peers it asked
	}
	known := map[uint64]bool{}
	for _, peer := range members {
		known[peer.GetID()] = true
		if peer.GetID() != m.Identity.MemberID {
			if err := m.transport.AddPeer(peer.GetID(), peer.GetRaftAttributes().GetPeerUrls()); err != nil {
				m.cfg.Logger.Error("cannot reach new member", "member", fmt.Sprintf("%x", peer.GetID()), "error", err)
			}
		}
	}
	for _, id := range m.transport.Peers() {
		if !known[id] {
			go m.transport.RemovePeer(id)
		}
	}
}

func joinNamed(name string, urls []string) string {
	s := ""
	for i, u := range urls {
		if i > 0 {
			s += ","
		}
		s += name + "=" + u
	}
	return s
}

func (m *Member) openNode(st start) error {
	electionTicks := int(m.cfg.ElectionTimeout / m.cfg.TickInterval)
	var voters []uint64
	for _, f := range st.founding {
		voters = append(voters, f.GetID())
	}
	n, err := node.Open(node.Config{
		ID:                     m.Identity.MemberID,
		InitialVoters:          voters,
		InitialMembers:         st.founding,
		Join:                   st.join,
		Dir:                    m.memberDir(),
		ElectionTicks:          electionTicks,
		SnapshotCount:          m.cfg.SnapshotCount,
		SnapshotCatchUpEntries: m.cfg.SnapshotCatchUpEntries,
		Rand:                   newRand(),
		AuthTokenTTL:           m.cfg.AuthTokenTTL,
		AuthJWT:                m.cfg.AuthJWT,
		Logger:                 raftLogger{m.cfg.Logger.With("component", "raft")},
		TickInterval:           m.cfg.TickInterval,
		Clock:                  cmp.Or[node.Clock](m.cfg.LeaseClock, wallClock{}),
		Limits:                 m.cfg.Limits,
		ClusterID:              m.Identity.ClusterID,
		ClusterToken:           m.cfg.InitialClusterToken,
		FS:                     m.cfg.FS,
		Knobs:                  m.cfg.Knobs,
		CorruptCheckTicks:      ticksOf(m.cfg.CorruptCheckTime, m.cfg.TickInterval),
		CompactHashCheckTicks:  ticksOf(m.cfg.CompactHashCheckTime, m.cfg.TickInterval),
		// A write waits for a leader as long as the driver waits for it.
		RequestTimeoutTicks:     int(requestTimeout / m.cfg.TickInterval),
		CacheBytes:              m.budget.BlockCacheBytes,
		MemTableBytes:           m.budget.MemTableBytes,
		RaftEntryCacheBytes:     m.budget.RaftEntryCacheBytes,
		LatestVersionCacheBytes: m.budget.LatestVersionCacheBytes,
		ReadCacheBytes:          m.budget.ReadCacheBytes,
		LiveKeySetBytes:         m.budget.LiveKeySetBytes,

		DisablePreVote:             m.cfg.DisablePreVote,
		InitialElectionTickAdvance: m.cfg.InitialElectionTickAdvance,
		MaxLearners:                m.cfg.MaxLearners,
		DisableStrictReconfigCheck: m.cfg.DisableStrictReconfigCheck,
		UnsafeNoFsync:              m.cfg.UnsafeNoFsync,

		AutoCompactionMode:            m.cfg.AutoCompactionMode,
		AutoCompactionRetention:       m.cfg.AutoCompactionRetention,
		AutoCompactionRetainRevisions: m.cfg.AutoCompactionRetainRevisions,
		LeaseCheckpointInterval:       m.cfg.LeaseCheckpointInterval,
		ForceNewCluster:               m.cfg.ForceNewCluster,
	})
	if err != nil {
		return fmt.Errorf("open member data in %s: %w", m.cfg.DataDir, err)
	}
	m.node = n
	return nil
}

// requestTimeout bounds how long a write waits for a leader, as etcd's
// request timeout (5 s) plus two default election timeouts.
const requestTimeout = 7 * time.Second

// memberDir is where the node keeps its databases and snapshots, inside
// the data directory (as etcd keeps its under member/).
func (m *Member) memberDir() string { return filepath.Join(m.cfg.DataDir, "member") }

// newRand seeds the node's request-ID source from the operating system.
func newRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("member: read random seed: %v", err))
	}
	// ChaCha8, a cryptographically strong generator: its output includes
	// the random part of auth tokens, which must not be predictable from
	// the lease IDs a client sees.
	return rand.New(rand.NewChaCha8(seed))
}

func (m *Member) listen() error {
	var err error
	if m.listeners, err = listenAll("--listen-client-urls", m.cfg.ListenClientURLs, m.tls.client); err != nil {
		return err
	}
	if m.cfg.PeerListeners != nil {
		m.peerListeners, err = adoptListeners("--listen-peer-urls", m.cfg.ListenPeerURLs, m.cfg.PeerListeners, m.tls.peer)
	} else {
		m.peerListeners, err = listenAll("--listen-peer-urls", m.cfg.ListenPeerURLs, m.tls.peer)
	}
	if err != nil {
		m.closeListeners()
		return err
	}
	return nil
}

// adoptListeners serves sockets the caller opened for urls, wrapped in TLS
// for https as listenURL would.
func adoptListeners(flag string, urls []string, given []net.Listener, tlsServer *tlsutil.Server) ([]net.Listener, error) {
	if len(given) != len(urls) {
		return nil, fmt.Errorf("%s: %d listeners given for %d URLs", flag, len(given), len(urls))
	}
	ls := make([]net.Listener, len(given))
	for i, raw := range urls {
		u, err := parseListenURL(flag, raw, tlsServer)
		if err != nil {
			return nil, err
		}
		ls[i] = given[i]
		if u.Scheme == "https" {
			ls[i] = tlsServer.Listener(given[i])
		}
	}
	return ls, nil
}

// listenAll listens on every URL: plain text for http, TLS from
// tlsServer for https.
func listenAll(flag string, urls []string, tlsServer *tlsutil.Server) ([]net.Listener, error) {
	var ls []net.Listener
	for _, raw := range urls {
		l, err := listenURL(flag, raw, tlsServer)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func listenURL(flag, raw string, tlsServer *tlsutil.Server) (net.Listener, error) {
	u, err := parseListenURL(flag, raw, tlsServer)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", raw, err)
	}
	if u.Scheme == "https" {
		return tlsServer.Listener(l), nil
	}
	return l, nil
}

// parseListenURL checks that raw is an http or https URL this member can
// serve.
func parseListenURL(flag, raw string, tlsServer *tlsutil.Server) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid URL %q: %v", flag, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: scheme %q is not supported (only http and https): %s", flag, u.Scheme, raw)
	}
	if u.Scheme == "https" && tlsServer == nil {
		return nil, fmt.Errorf("%s: %s needs TLS certificates", flag, raw) // setUpTLS said which
	}
	return u, nil
}

func (m *Member) closeListeners() {
	for _, l := range append(m.listeners, m.peerListeners...) {
		l.Close()
	}
}

// clientStreamWorkers is how many goroutines serve client streams: enough
// for the writes one batch commonly waits on (a few hundred concurrent
// clients), each idle worker holding only its stack.
const clientStreamWorkers = 256

func (m *Member) serve() {
	maintenance := etcdapi.NewMaintenance(m.driver)
	m.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(m.cfg.Limits.MaxRequestBytes + etcdapi.GRPCOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(m.cfg.MaxConcurrentStreams),
		// As etcd: a client may ping as often as GRPCKeepAliveMinTime while
		// it has a stream open. gRPC reads zero fields as its defaults.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: m.cfg.GRPCKeepAliveMinTime, PermitWithoutStream: false}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: m.cfg.GRPCKeepAliveInterval, Timeout: m.cfg.GRPCKeepAliveTimeout}),
		// Every unary call otherwise runs on a new goroutine whose stack
		// grows to a handler's depth on each call (runtime.morestack was 9%
		// of the CPU under a put load). Workers keep their grown stacks; a
		// stream that finds them all busy gets its own goroutine as before.
		grpc.NumStreamWorkers(clientStreamWorkers),
		// A put's bytes go to the core undecoded (etcdapi/wireput.go).
		grpc.ForceServerCodecV2(etcdapi.NewCodec(m.metrics)),
		grpc.ChainUnaryInterceptor(etcdapi.LearnerUnaryInterceptor(maintenance.IsLearner),
			etcdapi.CredentialsUnaryInterceptor(m.cfg.ClientTLS.ClientCertAuth)),
		grpc.ChainStreamInterceptor(etcdapi.LearnerStreamInterceptor(maintenance.IsLearner), m.leaderStreams.StreamInterceptor(),
			etcdapi.CredentialsStreamInterceptor(m.cfg.ClientTLS.ClientCertAuth)),
		// Plain text on http listeners, TLS on https ones.
		grpc.Creds(tlsutil.Credentials(m.cfg.Logger.With("component", "tls", "port", "client"))),
	}, m.metrics.GRPCServerOptions()...)...)
	kv := etcdapi.NewKV(m.driver)
	watchService := etcdapi.NewWatch(m.hub, m.Identity, func() uint64 { return m.node.Status().Term }, m.cfg.Limits)
	watchService.Permitted = m.node.CheckWatch
	m.grpc.RegisterService(etcdapi.KVServiceDesc(), kv)
	pb.RegisterWatchServer(m.grpc, watchService)
	m.leaderConns = newLeaderConns(m)
	pb.RegisterClusterServer(m.grpc, etcdapi.NewCluster(m.driver, m.leaderConns.conn))
	pb.RegisterMaintenanceServer(m.grpc, maintenance)
	lease := etcdapi.NewLease(m.driver, m.Identity, m.leaderConns.conn, m.transport.AsPeer)
	pb.RegisterLeaseServer(m.grpc, lease)
	pb.RegisterAuthServer(m.grpc, etcdapi.NewAuth(m.driver, m.cfg.BcryptCost, m.cfg.Logger))
	m.loopback = etcdapi.NewLoopbackClient(kv, lease, watchService)
	v3lockpb.RegisterLockServer(m.grpc, etcdapi.NewLock(m.loopback))
	v3electionpb.RegisterElectionServer(m.grpc, etcdapi.NewElection(m.loopback))
	m.metrics.InitializeGRPC(m.grpc)
	m.serveClientListeners() // http.go
	m.cfg.Logger.Info("ready to serve client requests",
		"name", m.cfg.Name, "member-id", fmt.Sprintf("%x", m.Identity.MemberID),
		"cluster-id", fmt.Sprintf("%x", m.Identity.ClusterID), "client-urls", m.cfg.AdvertiseClientURLs)
}

// Done is closed when the member's loop stopped by itself (a fail-stop).
func (m *Member) Done() <-chan struct{} { return m.driver.Done() }

// Err is why the member stopped, if it failed.
func (m *Member) Err() error { return m.driver.Err() }

// Stop shuts the member down: stops accepting requests, lets in-flight ones
// finish for up to gracePeriod, stops the loop and closes the data.
func (m *Member) Stop(gracePeriod time.Duration) error {
	var err error
	m.stopOnce.Do(func() {
		stopped := make(chan struct{})
		go func() {
			if m.grpc != nil {
				m.grpc.GracefulStop()
			}
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(gracePeriod):
			if m.grpc != nil {
				m.grpc.Stop()
			}
			<-stopped
		}
		if m.loopback != nil {
			m.loopback.Close()
		}
		if m.gateway != nil {
			m.gateway.close()
		}
		if m.peerGRPC != nil {
			m.peerGRPC.Stop()
		}
		for _, h := range m.httpServers {
			h.Close()
		}
		m.serveWG.Wait()
		m.transport.Stop()
		if m.leaderConns != nil {
			m.leaderConns.close()
		}
		m.driver.Stop()
		m.hub.Close()
		var flushErr error
		if m.driver.Err() == nil {
			flushErr = m.node.FlushAppliedState()
		}
		err = errors.Join(flushErr, m.node.Close())
	})
	return err
}
