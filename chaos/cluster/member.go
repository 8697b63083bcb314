package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/chaos/proxy"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one member process. Its ports, proxies and data directory stay
// the same across Kill and Launch.
type Member struct {
	cluster *Cluster
	Name    string
	DataDir string
	// LogPath collects stdout and stderr of every run.
	LogPath string
	// diskDir is the mount of the member's own disk, holding DataDir, when
	// Config.DiskBytes is set; "" otherwise.
	diskDir string
	// ClientAddr and PeerAddr are the host:port the process listens on.
	ClientAddr string
	PeerAddr   string
	// ClientProxy and PeerProxy stand in front of them; their addresses
	// are the member's advertised URLs. Both are nil in a Direct cluster.
	ClientProxy *proxy.Proxy
	PeerProxy   *proxy.Proxy

	mu struct {
		sync.Mutex
		proc *Process
		// exited is closed once the current process has exited and proc
		// is nil again (so a Launch right after a Kill finds it clear).
		exited chan struct{}
		// expectExit is set before the harness kills or stops the
		// process, so its exit is not unexpected.
		expectExit bool
		paused     bool
		starts     int
		// joined is set once the member was re-added to a running
		// cluster: it then starts with --initial-cluster-state existing.
		joined bool
	}
}

// scheme is the URLs' scheme: https when the cluster has TLS.
func (m *Member) scheme() string {
	if m.cluster.cfg.TLS != nil {
		return "https://"
	}
	return "http://"
}

// ClientURL is the member's advertised client URL: its client proxy's, or
// its own port's in a Direct cluster.
func (m *Member) ClientURL() string {
	if m.ClientProxy == nil {
		return m.DirectClientURL()
	}
	return m.scheme() + m.ClientProxy.Addr()
}

// PeerURL is the member's advertised peer URL: its peer proxy's, or its own
// port's in a Direct cluster.
func (m *Member) PeerURL() string {
	if m.PeerProxy == nil {
		return m.scheme() + m.PeerAddr
	}
	return m.scheme() + m.PeerProxy.Addr()
}

// DirectClientURL is the URL the process itself listens on, bypassing the
// proxy: for the harness's probes.
func (m *Member) DirectClientURL() string { return m.scheme() + m.ClientAddr }

// Endpoint is ClientURL without its scheme, for gRPC dialing.
func (m *Member) Endpoint() string {
	return strings.TrimPrefix(strings.TrimPrefix(m.ClientURL(), "http://"), "https://")
}

// argsLocked is the member's command line.
// REQUIRES: m.mu is held.
func (m *Member) argsLocked() []string {
	cfg := m.cluster.cfg
	state := "new"
	if m.mu.joined {
		state = "existing"
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.scheme() + m.ClientAddr,
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.scheme() + m.PeerAddr,
		"--initial-advertise-peer-urls", m.PeerURL(),
		"--initial-cluster", m.cluster.initialCluster(),
		"--initial-cluster-state", state,
		"--initial-cluster-token", cfg.Token,
		"--heartbeat-interval", strconv.FormatInt(cfg.HeartbeatInterval.Milliseconds(), 10),
		"--election-timeout", strconv.FormatInt(cfg.ElectionTimeout.Milliseconds(), 10),
		"--log-level", cfg.LogLevel,
	}
	return append(args, cfg.ExtraFlags...)
}

// Launch starts the process on the member's data directory without waiting
// for readiness.
func (m *Member) Launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.proc != nil {
		return fmt.Errorf("%s: launch while running", m.Name)
	}
	cfg := m.cluster.cfg
	pcfg := ProcessConfig{Bin: cfg.Bin, Args: m.argsLocked(), Env: cfg.Env, LogPath: m.LogPath, Start: m.mu.starts + 1}
	if cfg.Echo != nil {
		pcfg.Echo, pcfg.EchoPrefix = cfg.Echo, m.Name+" | "
	}
	proc, err := StartProcess(pcfg)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	m.mu.starts++
	exited := make(chan struct{})
	m.mu.proc, m.mu.exited, m.mu.expectExit, m.mu.paused = proc, exited, false, false
	go m.wait(proc, exited)
	return nil
}

// wait records the process's exit if the harness did not cause it.
func (m *Member) wait(proc *Process, exited chan struct{}) {
	err := proc.Err()
	m.mu.Lock()
	expected := m.mu.expectExit
	if m.mu.proc == proc {
		m.mu.proc = nil
	}
	m.mu.Unlock()
	close(exited)
	if !expected {
		m.cluster.recordUnexpectedExit(fmt.Sprintf("%s (pid %d) exited by itself: %v", m.Name, proc.PID(), ExitStatus(err)))
	}
}

// PID is the running process's ID, or 0.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.proc == nil {
		return 0
	}
	return m.mu.proc.PID()
}

// Running reports whether the member's process is alive (perhaps paused).
func (m *Member) Running() bool { return m.PID() != 0 }

// Serving reports whether the process is alive and not paused.
func (m *Member) Serving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.proc != nil && !m.mu.paused
}

// Starts is how many times the member was launched.
func (m *Member) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.starts
}

// process returns the running process, or nil.
func (m *Member) process() *Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.proc
}

// signal sends sig to the running process; expectExit marks the exit it
// causes as the harness's doing.
func (m *Member) signal(sig syscall.Signal, expectExit bool) (chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.proc == nil {
		return nil, fmt.Errorf("%s: not running", m.Name)
	}
	if expectExit {
		m.mu.expectExit = true
	}
	if err := m.mu.proc.Signal(sig); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", m.Name, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		m.mu.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		m.mu.paused = false
	}
	return m.mu.exited, nil
}

// expectExit marks the running process's coming exit as the harness's
// doing (a removed member stops by itself) and returns its exit channel.
func (m *Member) expectExit() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.proc == nil {
		return nil
	}
	m.mu.expectExit = true
	return m.mu.exited
}

// Kill sends SIGKILL and waits for the process to exit.
func (m *Member) Kill() error {
	exited, err := m.signal(syscall.SIGKILL, true)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(killWaitTimeout):
		return fmt.Errorf("%s: still running %v after SIGKILL", m.Name, killWaitTimeout)
	}
}

// Pause stops the process with SIGSTOP.
func (m *Member) Pause() error {
	_, err := m.signal(syscall.SIGSTOP, false)
	return err
}

// Resume continues a paused process with SIGCONT.
func (m *Member) Resume() error {
	_, err := m.signal(syscall.SIGCONT, false)
	return err
}

// Restart launches a killed member again and waits until it is ready.
func (m *Member) Restart() error {
	if err := m.Launch(); err != nil {
		return err
	}
	return m.WaitReady(m.cluster.cfg.ReadyTimeout)
}

// Stop resumes the process if paused, sends SIGTERM, and SIGKILL if it has
// not exited after stopGracePeriod. A member not running is left alone.
func (m *Member) Stop() {
	m.mu.Lock()
	proc, exited := m.mu.proc, m.mu.exited
	if proc != nil {
		m.mu.expectExit = true
		m.mu.paused = false
	}
	m.mu.Unlock()
	if proc != nil {
		if proc.Terminate(stopGracePeriod) == nil {
			<-exited
		}
	}
}

// WaitReady polls the member's own client port with a linearizable Get
// until one succeeds, the process exits, or timeout passes.
func (m *Member) WaitReady(timeout time.Duration) error {
	proc := m.process()
	if proc == nil {
		return fmt.Errorf("%s: not running (see %s)", m.Name, m.LogPath)
	}
	if err := proc.WaitReady(m.DirectClientURL(), m.cluster.cfg.TLS, timeout); err != nil {
		return fmt.Errorf("%s: %w (see %s)", m.Name, err, m.LogPath)
	}
	return nil
}

// PeakRSSBytes is the running process's peak resident set (VmHWM).
func (m *Member) PeakRSSBytes() (int64, error) {
	proc := m.process()
	if proc == nil {
		return 0, fmt.Errorf("%s: not running", m.Name)
	}
	return proc.PeakRSSBytes()
}

// RSSBytes is the running process's resident set now (VmRSS).
func (m *Member) RSSBytes() (int64, error) {
	proc := m.process()
	if proc == nil {
		return 0, fmt.Errorf("%s: not running", m.Name)
	}
	return proc.RSSBytes()
}

// DiskBytes is the size of the member's data directory in allocated blocks.
func (m *Member) DiskBytes() (int64, error) { return DirAllocatedBytes(m.DataDir) }

// Status asks the member for its Maintenance.Status on its own port.
func (m *Member) Status() (*clientv3.StatusResponse, error) {
	cli, err := m.Client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := probeContext()
	defer cancel()
	st, err := cli.Status(ctx, m.DirectClientURL())
	if err != nil {
		return nil, err
	}
	if st.Header == nil {
		return nil, errors.New("status without header")
	}
	return st, nil
}

// Client returns an official client of the member's own port; the caller
// closes it.
func (m *Member) Client() (*clientv3.Client, error) {
	return newClient(m.cluster.cfg.TLS, m.DirectClientURL())
}
