package member

import (
	crand "crypto/rand"
	"encoding/binary"
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
	"github.com/cairn-db/cairn/server/cluster"
	"github.com/cairn-db/cairn/server/driver"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cairn-db/cairn/server/transport"
	"github.com/cairn-db/cairn/server/watch"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
)

// Config is a member's configuration; cmd/cairn fills it from etcd's flags.
type Config struct {
	Name                     string
	DataDir                  string
	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string
	// ListenMetricsURLs serve HTTP: /health, and /debug/pprof when
	// EnablePprof is set (--listen-metrics-urls, --enable-pprof).
	ListenMetricsURLs []string
	EnablePprof       bool
	// InitialCluster is --initial-cluster; empty means this member alone
	// with its advertised peer URLs.
	InitialCluster      string
	InitialClusterToken string
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
}

func (c *Config) ensureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.Limits.MaxRequestBytes == 0 {
		c.Limits.MaxRequestBytes = etcdapi.DefaultLimits.MaxRequestBytes
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
}

// Member is a running cairn member.
type Member struct {
	cfg       Config
	cluster   cluster.Cluster
	node      *node.Node
	driver    *driver.Driver
	grpc      *grpc.Server
	listeners []net.Listener
	// peerGRPC serves the raft transport on peerListeners.
	peerGRPC      *grpc.Server
	peerListeners []net.Listener
	transport     *transport.Transport
	// hub serves watches from the events the driver hands it.
	hub         *watch.Hub
	httpServers []*http.Server
	serveWG     sync.WaitGroup
	stopOnce    sync.Once
	// Identity is the cluster and member ID this member answers with.
	Identity etcdapi.Identity
}

// Start opens the member's data and serves clients. It returns once the
// member listens; the log line "ready to serve client requests" follows.
func Start(cfg Config) (*Member, error) {
	cfg.ensureDefaults()
	self, c, err := resolveCluster(cfg)
	if err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, cluster: c, Identity: etcdapi.Identity{ClusterID: c.ID, MemberID: self.ID}}
	if err := m.openNode(c); err != nil {
		return nil, err
	}
	if err := m.listen(); err != nil {
		m.node.Close()
		return nil, err
	}
	m.transport = transport.New(transport.Config{
		ClusterID:         c.ID,
		MemberID:          self.ID,
		Deliver:           func(msg *raftpb.Message) { m.driver.Step(msg) },
		ReportUnreachable: func(id uint64) { m.driver.ReportUnreachable(id) },
		ReportSnapshot:    func(id uint64, ok bool) { m.driver.ReportSnapshot(id, ok) },
		MemberDir:         m.memberDir(),
		Logger:            cfg.Logger.With("component", "transport"),
	})
	m.hub = watch.New(watch.NodeStore(m.node.Store()), watch.Config{Logger: cfg.Logger.With("component", "watch")})
	m.driver = driver.Start(m.node, driver.Config{
		TickInterval: cfg.TickInterval,
		Logger:       cfg.Logger,
		Send:         m.transport.Send,
		OnEvents:     m.hub.Notify,
	})
	if err := m.connectPeers(); err != nil {
		m.Stop(0)
		return nil, err
	}
	if err := m.serveHTTP(); err != nil {
		m.Stop(0)
		return nil, err
	}
	m.serve()
	return m, nil
}

// connectPeers starts the streams to the other founding members and serves
// theirs.
func (m *Member) connectPeers() error {
	for _, peer := range m.cluster.Members {
		if peer.ID == m.Identity.MemberID {
			continue
		}
		if err := m.transport.AddPeer(peer.ID, peer.PeerURLs); err != nil {
			return err
		}
	}
	m.peerGRPC = grpc.NewServer(m.transport.ServerOptions()...)
	m.transport.Register(m.peerGRPC)
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

func resolveCluster(cfg Config) (cluster.Member, cluster.Cluster, error) {
	initial := cfg.InitialCluster
	if initial == "" {
		initial = joinNamed(cfg.Name, cfg.InitialAdvertisePeerURLs)
	}
	c, err := cluster.Parse(initial, cfg.InitialClusterToken)
	if err != nil {
		return cluster.Member{}, cluster.Cluster{}, err
	}
	self, ok := c.Find(cfg.Name)
	if !ok {
		return cluster.Member{}, cluster.Cluster{}, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
	}
	return self, c, nil
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

func (m *Member) openNode(c cluster.Cluster) error {
	electionTicks := int(m.cfg.ElectionTimeout / m.cfg.TickInterval)
	n, err := node.Open(node.Config{
		ID:                     m.Identity.MemberID,
		InitialVoters:          c.IDs(),
		Dir:                    m.memberDir(),
		ElectionTicks:          electionTicks,
		SnapshotCount:          m.cfg.SnapshotCount,
		SnapshotCatchUpEntries: m.cfg.SnapshotCatchUpEntries,
		Rand:                   newRand(),
		Logger:                 raftLogger{m.cfg.Logger.With("component", "raft")},
	})
	if err != nil {
		return fmt.Errorf("open member data in %s: %w", m.cfg.DataDir, err)
	}
	m.node = n
	return nil
}

// memberDir is where the node keeps its databases and snapshots, inside
// the data directory (as etcd keeps its under member/).
func (m *Member) memberDir() string { return filepath.Join(m.cfg.DataDir, "member") }

// newRand seeds the node's request-ID source from the operating system.
func newRand() *rand.Rand {
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("member: read random seed: %v", err))
	}
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

func (m *Member) listen() error {
	var err error
	if m.listeners, err = listenAll("--listen-client-urls", m.cfg.ListenClientURLs); err != nil {
		return err
	}
	if len(m.cluster.Members) == 1 {
		return nil // a lone member needs no peer listener
	}
	if m.peerListeners, err = listenAll("--listen-peer-urls", m.cfg.ListenPeerURLs); err != nil {
		m.closeListeners()
		return err
	}
	return nil
}

func listenAll(flag string, urls []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, raw := range urls {
		l, err := listenURL(flag, raw)
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

func listenURL(flag, raw string) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid URL %q: %v", flag, raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: scheme %q is not supported yet (only http): %s", flag, u.Scheme, raw)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", raw, err)
	}
	return l, nil
}

func (m *Member) closeListeners() {
	for _, l := range append(m.listeners, m.peerListeners...) {
		l.Close()
	}
}

func (m *Member) serve() {
	m.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(m.cfg.Limits.MaxRequestBytes+etcdapi.GRPCOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
	)
	pb.RegisterKVServer(m.grpc, etcdapi.NewKV(m.driver, m.Identity, m.cfg.Limits))
	pb.RegisterWatchServer(m.grpc, etcdapi.NewWatch(m.hub, m.Identity, func() uint64 { return m.node.Status().Term }, m.cfg.Limits))
	pb.RegisterMaintenanceServer(m.grpc, etcdapi.NewMaintenance(m.driver, m.Identity, m.node.DiskSpaceUsage))
	for _, l := range m.listeners {
		m.serveWG.Add(1)
		go func() {
			defer m.serveWG.Done()
			if err := m.grpc.Serve(l); err != nil {
				m.cfg.Logger.Error("client listener stopped", "address", l.Addr().String(), "error", err)
			}
		}()
	}
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
		if m.peerGRPC != nil {
			m.peerGRPC.Stop()
		}
		for _, h := range m.httpServers {
			h.Close()
		}
		m.serveWG.Wait()
		m.transport.Stop()
		m.driver.Stop()
		m.hub.Close()
		err = m.node.Close()
	})
	return err
}
