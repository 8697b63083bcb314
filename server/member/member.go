package member

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/cluster"
	"github.com/cairn-db/cairn/server/driver"
	"github.com/cairn-db/cairn/server/etcdapi"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
	// InitialCluster is --initial-cluster; empty means this member alone
	// with its advertised peer URLs.
	InitialCluster      string
	InitialClusterToken string
	// TickInterval is --heartbeat-interval. Default 100 ms.
	TickInterval time.Duration
	// ElectionTimeout is --election-timeout. Default 1 s.
	ElectionTimeout time.Duration
	Limits          etcdapi.Limits
	Logger          *slog.Logger
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
	node      *node.Node
	driver    *driver.Driver
	grpc      *grpc.Server
	listeners []net.Listener
	serveWG   sync.WaitGroup
	stopOnce  sync.Once
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
	m := &Member{cfg: cfg, Identity: etcdapi.Identity{ClusterID: c.ID, MemberID: self.ID}}
	if err := m.openNode(c); err != nil {
		return nil, err
	}
	if err := m.listen(); err != nil {
		m.node.Close()
		return nil, err
	}
	m.driver = driver.Start(m.node, driver.Config{TickInterval: cfg.TickInterval, Logger: cfg.Logger})
	m.serve()
	return m, nil
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
	if len(c.Members) > 1 {
		return cluster.Member{}, cluster.Cluster{}, errors.New("clusters of more than one member are not supported yet: the peer transport is not built")
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
		ID:            m.Identity.MemberID,
		InitialVoters: c.IDs(),
		Dir:           m.cfg.DataDir,
		ElectionTicks: electionTicks,
		Rand:          newRand(),
		Logger:        raftLogger{m.cfg.Logger.With("component", "raft")},
	})
	if err != nil {
		return fmt.Errorf("open member data in %s: %w", m.cfg.DataDir, err)
	}
	m.node = n
	return nil
}

// newRand seeds the node's request-ID source from the operating system.
func newRand() *rand.Rand {
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("member: read random seed: %v", err))
	}
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

func (m *Member) listen() error {
	for _, raw := range m.cfg.ListenClientURLs {
		l, err := listenURL(raw)
		if err != nil {
			m.closeListeners()
			return err
		}
		m.listeners = append(m.listeners, l)
	}
	return nil
}

func listenURL(raw string) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--listen-client-urls: invalid URL %q: %v", raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("--listen-client-urls: scheme %q is not supported yet (only http): %s", u.Scheme, raw)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", raw, err)
	}
	return l, nil
}

func (m *Member) closeListeners() {
	for _, l := range m.listeners {
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
		go func() { m.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(gracePeriod):
			m.grpc.Stop()
			<-stopped
		}
		m.serveWG.Wait()
		m.driver.Stop()
		err = m.node.Close()
	})
	return err
}
