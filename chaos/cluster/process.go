package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ProcessConfig describes one run of a server process.
type ProcessConfig struct {
	// Bin and Args are the program and its command line.
	Bin  string
	Args []string
	// Env is added to the harness's own environment (NAME=value).
	Env []string
	// LogPath collects stdout and stderr; every run is appended after a
	// "=== start #Start" line and followed by an "=== exit" line.
	LogPath string
	Start   int
	// Echo, when set, also receives every output line, prefixed with
	// EchoPrefix (a foreground cluster printing its members' logs).
	Echo       io.Writer
	EchoPrefix string
}

// Process is one running server process of the launcher: in its own
// process group (a terminal's Ctrl-C reaches only the harness) with a
// parent-death SIGKILL (a crashed harness leaves nothing behind), its output
// in its log. Every launcher of cairn and etcd processes in the repository
// starts them through StartProcess.
type Process struct {
	cmd *exec.Cmd
	// exited is closed when the process has exited; waitErr is valid then.
	exited  chan struct{}
	waitErr error
}

// StartProcess starts a process as cfg describes, without waiting for it to
// serve anything.
func StartProcess(cfg ProcessConfig) (*Process, error) {
	logFile, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(cfg.Bin, cfg.Args...)
	fmt.Fprintf(logFile, "=== start #%d at %s: %s\n", cfg.Start, time.Now().UTC().Format(time.RFC3339Nano), cmd.String())
	var out io.Writer = logFile
	if cfg.Echo != nil {
		out = io.MultiWriter(logFile, &linePrefixer{w: cfg.Echo, prefix: cfg.EchoPrefix})
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Bin, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(logFile, "=== exit at %s: %v\n", time.Now().UTC().Format(time.RFC3339Nano), ExitStatus(p.waitErr))
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err is how the process exited (nil for status 0); valid once Exited is
// closed.
func (p *Process) Err() error {
	<-p.exited
	return p.waitErr
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitExit waits up to timeout for the process to exit and reports whether
// it did.
func (p *Process) WaitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// Kill sends SIGKILL and waits up to killWaitTimeout for the exit.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil && p.Running() {
		return fmt.Errorf("pid %d: SIGKILL: %w", p.PID(), err)
	}
	if !p.WaitExit(killWaitTimeout) {
		return fmt.Errorf("pid %d still running %v after SIGKILL", p.PID(), killWaitTimeout)
	}
	return nil
}

// Terminate sends SIGTERM (and SIGCONT, in case it is paused), and SIGKILL
// if the process has not exited grace later.
func (p *Process) Terminate(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	if p.WaitExit(grace) {
		return nil
	}
	return p.Kill()
}

// PeakRSSBytes is the process's peak resident set (VmHWM).
func (p *Process) PeakRSSBytes() (int64, error) { return procStatusBytes(p.PID(), "VmHWM:") }

// RSSBytes is the process's resident set now (VmRSS).
func (p *Process) RSSBytes() (int64, error) { return procStatusBytes(p.PID(), "VmRSS:") }

// ExitStatus renders a process's exit error.
func ExitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// linePrefixer writes each line it is given to w with prefix in front.
type linePrefixer struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	midLine bool
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	var out bytes.Buffer
	for len(b) > 0 {
		if !l.midLine {
			out.WriteString(l.prefix)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out.Write(b)
			l.midLine = true
			break
		}
		out.Write(b[:i+1])
		l.midLine = false
		b = b[i+1:]
	}
	_, err := l.w.Write(out.Bytes())
	return n, err
}

// Readiness: a member is ready when a linearizable Get on its own client
// URL succeeds (it has a leader and has applied up to the read index).
const (
	readyPollTimeout  = time.Second
	readyPollInterval = 100 * time.Millisecond
	readyDialTimeout  = 5 * time.Second
	// readyProbeKey is the key the readiness probe reads; it is never
	// written.
	readyProbeKey = "cluster-readiness-probe"
)

// ErrExited is returned by WaitReady when the process exited first.
var ErrExited = errors.New("exited before it was ready")

// WaitReady polls the process's client URL with a linearizable Get, dialing
// with tlsConfig (nil for plain http), until one succeeds (or is refused
// for want of a user: auth is enabled, and the member serves), the
// process exits (ErrExited), or timeout passes.
func (p *Process) WaitReady(clientURL string, tlsConfig *tls.Config, timeout time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{clientURL}, TLS: tlsConfig, DialTimeout: readyDialTimeout, Logger: zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("client of %s: %w", clientURL, err)
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("%w: %s", ErrExited, ExitStatus(p.waitErr))
		}
		ctx, cancel := context.WithTimeout(context.Background(), readyPollTimeout)
		_, lastErr = cli.Get(ctx, readyProbeKey)
		cancel()
		// A member with auth enabled refuses an anonymous read with
		// "user name is empty": it is serving.
		if lastErr == nil || errors.Is(lastErr, rpctypes.ErrUserEmpty) {
			return nil
		}
		time.Sleep(readyPollInterval)
	}
	return fmt.Errorf("not ready after %v: %w", timeout, lastErr)
}

// procStatusBytes reads a "Field:   123 kB" line of /proc/PID/status, in
// bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			return parseKB(rest)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected /proc status value %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n * 1024, err
}

// DirAllocatedBytes is the size of a directory tree in allocated blocks, as
// du reports it (etcd preallocates its WAL files, and that space is used).
func DirAllocatedBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file removed while walking (compaction)
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// Ports are handed out from [portsLow, portsHigh), below the kernel's
// ephemeral range (32768 and up on Linux by default), so an outgoing
// connection cannot take one between the pick and the member's bind; and
// each only once per process, in sequence from a start chosen by the
// process ID, so two members never get the same port (asking the kernel for
// port 0 and closing the listener can return the same port twice).
const (
	portsLow  = 15000
	portsHigh = 32000
)

var ports struct {
	sync.Mutex
	next int
}

// FreePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before (until the range wraps).
func FreePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.next == 0 {
		ports.next = portsLow + os.Getpid()%(portsHigh-portsLow)
	}
	for range portsHigh - portsLow {
		p := ports.next
		ports.next++
		if ports.next == portsHigh {
			ports.next = portsLow
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // taken by another process
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("pick a free port: none free in [%d, %d)", portsLow, portsHigh)
}
