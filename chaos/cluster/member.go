package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
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
	// are the member's advertised URLs.
	ClientProxy *proxy.Proxy
	PeerProxy   *proxy.Proxy

	mu struct {
		sync.Mutex
		cmd *exec.Cmd
		// exited is closed when the current process has exited.
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

// ClientURL is the member's advertised (proxied) client URL.
func (m *Member) ClientURL() string { return "http://" + m.ClientProxy.Addr() }

// DirectClientURL is the URL the process itself listens on, bypassing the
// proxy: for the harness's probes.
func (m *Member) DirectClientURL() string { return "http://" + m.ClientAddr }

// args is the member's command line.
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
		"--listen-client-urls", "http://" + m.ClientAddr,
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", "http://" + m.PeerAddr,
		"--initial-advertise-peer-urls", "http://" + m.PeerProxy.Addr(),
		"--initial-cluster", m.cluster.initialCluster(),
		"--initial-cluster-state", state,
		"--initial-cluster-token", cfg.Token,
		"--heartbeat-interval", strconv.FormatInt(cfg.HeartbeatInterval.Milliseconds(), 10),
		"--election-timeout", strconv.FormatInt(cfg.ElectionTimeout.Milliseconds(), 10),
		"--log-level", "info",
	}
	return append(args, cfg.ExtraFlags...)
}

// Launch starts the process on the member's data directory without waiting
// for readiness.
func (m *Member) Launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.cmd != nil {
		return fmt.Errorf("%s: launch while running", m.Name)
	}
	logFile, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", m.Name, err)
	}
	m.mu.starts++
	cfg := m.cluster.cfg
	cmd := exec.Command(cfg.Bin, m.argsLocked()...)
	fmt.Fprintf(logFile, "=== start #%d at %s: %s\n", m.mu.starts, time.Now().UTC().Format(time.RFC3339Nano), cmd.String())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: start %s: %w", m.Name, cfg.Bin, err)
	}
	exited := make(chan struct{})
	m.mu.cmd, m.mu.exited, m.mu.expectExit, m.mu.paused = cmd, exited, false, false
	go m.wait(cmd, logFile, exited)
	return nil
}

// wait reaps the process and records its exit if the harness did not cause it.
func (m *Member) wait(cmd *exec.Cmd, logFile *os.File, exited chan struct{}) {
	err := cmd.Wait()
	fmt.Fprintf(logFile, "=== exit at %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), exitStatus(err))
	logFile.Close()
	m.mu.Lock()
	expected := m.mu.expectExit
	if m.mu.cmd == cmd {
		m.mu.cmd = nil
	}
	m.mu.Unlock()
	close(exited)
	if !expected {
		m.cluster.recordUnexpectedExit(fmt.Sprintf("%s (pid %d) exited by itself: %v", m.Name, cmd.Process.Pid, exitStatus(err)))
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// PID is the running process's ID, or 0.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.cmd == nil {
		return 0
	}
	return m.mu.cmd.Process.Pid
}

// Running reports whether the member's process is alive (perhaps paused).
func (m *Member) Running() bool { return m.PID() != 0 }

// Serving reports whether the process is alive and not paused.
func (m *Member) Serving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.cmd != nil && !m.mu.paused
}

// Starts is how many times the member was launched.
func (m *Member) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.starts
}

// signal sends sig to the running process; expectExit marks the exit it
// causes as the harness's doing.
func (m *Member) signal(sig syscall.Signal, expectExit bool) (chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.cmd == nil {
		return nil, fmt.Errorf("%s: not running", m.Name)
	}
	if expectExit {
		m.mu.expectExit = true
	}
	if err := m.mu.cmd.Process.Signal(sig); err != nil {
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
func (m *Member) expectExit() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.cmd == nil {
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
	paused := m.mu.paused
	m.mu.Unlock()
	if paused {
		_ = m.Resume()
	}
	exited, err := m.signal(syscall.SIGTERM, true)
	if err != nil {
		return
	}
	select {
	case <-exited:
	case <-time.After(stopGracePeriod):
		_ = m.Kill()
	}
}

// WaitReady polls the member's own client port with a linearizable Get
// until one succeeds, the process exits, or timeout passes.
func (m *Member) WaitReady(timeout time.Duration) error {
	m.mu.Lock()
	exited := m.mu.exited
	m.mu.Unlock()
	if exited == nil {
		return fmt.Errorf("%s: never launched", m.Name)
	}
	cli, err := newClient(m.DirectClientURL())
	if err != nil {
		return fmt.Errorf("%s: client: %w", m.Name, err)
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (see %s)", m.Name, m.LogPath)
		default:
		}
		ctx, cancel := probeContext()
		_, lastErr = cli.Get(ctx, "chaos-readiness-probe")
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(readyPollInterval)
	}
	return fmt.Errorf("%s not ready after %v: %w", m.Name, timeout, lastErr)
}

// Status asks the member for its Maintenance.Status on its own port.
func (m *Member) Status() (*clientv3.StatusResponse, error) {
	cli, err := newClient(m.DirectClientURL())
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
func (m *Member) Client() (*clientv3.Client, error) { return newClient(m.DirectClientURL()) }
