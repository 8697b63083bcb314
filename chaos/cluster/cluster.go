package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-db/cairn/chaos/proxy"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Kind names the program the members run.
type Kind string

// Kinds of cluster.
const (
	KindCairn Kind = "cairn"
	KindEtcd  Kind = "etcd"
)

const (
	// DefaultReadyTimeout bounds the wait for a member to serve a Get.
	DefaultReadyTimeout = 30 * time.Second
	// probeDialTimeout and probeRequestTimeout bound the harness's own
	// requests to one member.
	probeDialTimeout    = 2 * time.Second
	probeRequestTimeout = 2 * time.Second
	// stopGracePeriod is how long Stop waits after SIGTERM before SIGKILL;
	// killWaitTimeout how long it waits for a SIGKILLed process to go.
	stopGracePeriod = 10 * time.Second
	killWaitTimeout = 10 * time.Second
	// membersMax bounds the cluster size.
	membersMax = 7
)

// Config describes a cluster to launch.
type Config struct {
	// Kind and Bin are the program and its path.
	Kind Kind
	Bin  string
	// Members is the number of members, 1 to membersMax.
	Members int
	// Dir holds each member's data directory and log; it must exist.
	Dir string
	// HeartbeatInterval and ElectionTimeout are the members'
	// --heartbeat-interval and --election-timeout. Default 50 ms and 500 ms.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// Token is --initial-cluster-token. Default "chaos".
	Token string
	// ExtraFlags are appended to every member's command line.
	ExtraFlags []string
	// Env is added to every member's environment (NAME=value).
	Env []string
	// Seed seeds the proxies' jitter.
	Seed uint64
	// ReadyTimeout bounds each wait for readiness. Default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Direct starts the members without proxies: each advertises its own
	// ports (the benchmark, the e2e tests, a cluster for development). The
	// proxies' faults do nothing to a Direct cluster.
	Direct bool
	// TLS, when set, gives the members https URLs and is what the
	// harness's clients dial with. The members' certificate flags
	// (--cert-file ..., or --auto-tls) go in ExtraFlags.
	TLS *tls.Config
	// Names are the members' names. Default m1, m2, ...
	Names []string
	// Ports, when set, are the members' own client and peer ports, one
	// pair per member (a cluster on well-known ports). Default: free ports.
	Ports []MemberPorts
	// LogLevel is --log-level. Default info.
	LogLevel string
	// Echo, when set, also receives every member's output, each line
	// prefixed with the member's name.
	Echo io.Writer
	// DiskBytes, when > 0, gives every member a disk of its own: a tmpfs
	// of this size mounted under Dir (Linux, root), which Member.FillDisk
	// can fill. tmpfs ignores fsync, so leave it 0 unless disk-full faults
	// are wanted.
	DiskBytes int64
}

func (c *Config) ensureDefaults() {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 50 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.Token == "" {
		c.Token = "chaos"
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if len(c.Names) == 0 {
		for i := range c.Members {
			c.Names = append(c.Names, fmt.Sprintf("m%d", i+1))
		}
	}
}

// MemberPorts are one member's own loopback ports.
type MemberPorts struct{ Client, Peer int }

func (c *Config) validate() error {
	if c.Kind != KindCairn && c.Kind != KindEtcd {
		return fmt.Errorf("cluster: unknown kind %q", c.Kind)
	}
	if c.Members < 1 || c.Members > membersMax {
		return fmt.Errorf("cluster: %d members, want 1 to %d", c.Members, membersMax)
	}
	if st, err := os.Stat(c.Bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("cluster: %s binary %q is not an executable file (run `make build ref`)", c.Kind, c.Bin)
	}
	if len(c.Names) != c.Members {
		return fmt.Errorf("cluster: %d names for %d members", len(c.Names), c.Members)
	}
	if c.Ports != nil && len(c.Ports) != c.Members {
		return fmt.Errorf("cluster: %d port pairs for %d members", len(c.Ports), c.Members)
	}
	if c.DiskBytes > 0 && c.Direct {
		return errors.New("cluster: disks of their own are for chaos runs, not Direct clusters")
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return fmt.Errorf("cluster: election timeout %v < 5 heartbeats of %v", c.ElectionTimeout, c.HeartbeatInterval)
	}
	return nil
}

// Cluster is a running cluster and its proxies.
type Cluster struct {
	cfg Config
	// Network holds the proxies in front of every member's ports.
	Network *proxy.Network
	// Members are the members, in name order m1, m2, ...
	Members []*Member
	// mounts are the members' disks, unmounted by Stop.
	mounts []string

	mu struct {
		sync.Mutex
		// unexpected lists the exits no Kill or Stop caused.
		unexpected []string
	}
}

// Start launches a new cluster and waits until every member serves a
// linearizable Get. On error, whatever started is stopped.
func Start(cfg Config) (*Cluster, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	c.Network = proxy.NewNetwork(proxy.ProcessSource(c.pids), cfg.Seed)
	for i := range cfg.Members {
		m, err := c.newMember(i)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Members = append(c.Members, m)
	}
	if err := c.LaunchAndWait(c.Members); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Config returns the configuration the cluster runs with, defaults filled.
func (c *Cluster) Config() Config { return c.cfg }

func (c *Cluster) newMember(i int) (*Member, error) {
	name := c.cfg.Names[i]
	var clientPort, peerPort int
	if c.cfg.Ports != nil {
		clientPort, peerPort = c.cfg.Ports[i].Client, c.cfg.Ports[i].Peer
	} else {
		var err error
		if clientPort, err = FreePort(); err != nil {
			return nil, err
		}
		if peerPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	m := &Member{
		cluster:    c,
		Name:       name,
		DataDir:    filepath.Join(c.cfg.Dir, name+".data"),
		LogPath:    filepath.Join(c.cfg.Dir, name+".log"),
		ClientAddr: "127.0.0.1:" + strconv.Itoa(clientPort),
		PeerAddr:   "127.0.0.1:" + strconv.Itoa(peerPort),
	}
	if c.cfg.DiskBytes > 0 {
		m.diskDir = filepath.Join(c.cfg.Dir, name+".disk")
		if err := mountDisk(m.diskDir, c.cfg.DiskBytes); err != nil {
			return nil, err
		}
		c.mounts = append(c.mounts, m.diskDir)
		m.DataDir = filepath.Join(m.diskDir, "data")
	}
	if c.cfg.Direct {
		return m, nil
	}
	var err error
	if m.ClientProxy, err = c.Network.Listen(name, proxy.ClientPort, m.ClientAddr); err != nil {
		return nil, err
	}
	if m.PeerProxy, err = c.Network.Listen(name, proxy.PeerPort, m.PeerAddr); err != nil {
		return nil, err
	}
	return m, nil
}

// initialCluster is --initial-cluster: every member's peer proxy.
func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.Members))
	for i, m := range c.Members {
		parts[i] = m.Name + "=" + m.PeerURL()
	}
	return strings.Join(parts, ",")
}

// LaunchAndWait launches the given members together (none of a new or
// wholly restarted cluster is ready before a quorum runs), then waits until
// each is ready.
func (c *Cluster) LaunchAndWait(members []*Member) error {
	for _, m := range members {
		if err := m.Launch(); err != nil {
			return err
		}
	}
	for _, m := range members {
		if err := m.WaitReady(c.cfg.ReadyTimeout); err != nil {
			return err
		}
	}
	return nil
}

// pids maps the running members' process IDs to their names.
func (c *Cluster) pids() map[int]string {
	out := make(map[int]string, len(c.Members))
	for _, m := range c.Members {
		if pid := m.PID(); pid > 0 {
			out[pid] = m.Name
		}
	}
	return out
}

// ClientURLs are the members' proxied client URLs, the workload's endpoints.
func (c *Cluster) ClientURLs() []string {
	urls := make([]string, len(c.Members))
	for i, m := range c.Members {
		urls[i] = m.ClientURL()
	}
	return urls
}

// Member returns the member named name, or nil.
func (c *Cluster) Member(name string) *Member {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (c *Cluster) recordUnexpectedExit(what string) {
	c.mu.Lock()
	c.mu.unexpected = append(c.mu.unexpected, what)
	c.mu.Unlock()
}

// UnexpectedExits lists the member exits no Kill or Stop caused.
func (c *Cluster) UnexpectedExits() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.mu.unexpected...)
}

// Kill SIGKILLs every member and closes the proxies: for a cluster whose
// data is not needed after it (a benchmark's).
func (c *Cluster) Kill() {
	for _, m := range c.Members {
		_ = m.Kill() // a member not running is already what Kill wants
	}
	c.Network.Close()
	for _, dir := range c.mounts {
		_ = unmountDisk(dir)
	}
	c.mounts = nil
}

// Endpoints are the members' advertised client addresses without scheme,
// for gRPC dialing.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Endpoint()
	}
	return out
}

// Stop resumes paused members, stops every member (SIGTERM, then SIGKILL
// after a grace period) and closes the proxies.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Stop()
		}()
	}
	wg.Wait()
	c.Network.Close()
	for _, dir := range c.mounts {
		_ = unmountDisk(dir) // falls back to a lazy unmount; nothing left to do on error
	}
	c.mounts = nil
}

// Leader returns the member every running, unpaused member names as
// leader, or an error saying why there is none.
func (c *Cluster) Leader() (*Member, error) {
	ids := make(map[uint64]*Member)
	leaders := make(map[uint64]bool)
	var problems []string
	for _, m := range c.Members {
		if !m.Serving() {
			continue
		}
		st, err := m.Status()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		ids[st.Header.MemberId] = m
		leaders[st.Leader] = true
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("members name %d leaders", len(leaders))
	}
	for id := range leaders {
		if m := ids[id]; m != nil {
			return m, nil
		}
		return nil, fmt.Errorf("leader %x is not a running member", id)
	}
	return nil, errors.New("no running member")
}

// WaitLeader polls Leader until it answers or timeout passes.
func (c *Cluster) WaitLeader(timeout time.Duration) (*Member, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.Leader()
		if err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader after %v: %w", timeout, err)
		}
		time.Sleep(readyPollInterval)
	}
}

// newClient returns an official client of the given endpoints with short
// timeouts and no logging, dialing with tlsConfig when set.
func newClient(tlsConfig *tls.Config, endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsConfig,
		DialTimeout:          probeDialTimeout,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
}

// probeContext bounds one probe request.
func probeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), probeRequestTimeout)
}
