package compare

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/client/bench/workload"
)

// System is a server binary that takes etcd's flags.
type System struct {
	Name string // "etcd" or "cairn"
	Bin  string
	// ExtraFlags are appended to every member's command line.
	ExtraFlags []string
	// TLS serves both ports over https with self-signed certificates
	// (--auto-tls --peer-auto-tls, the same flags for etcd and cairn);
	// clients dial with AutoTLSClient.
	TLS bool
}

// AutoTLSClient is how clients dial a System with TLS: its certificates are
// self-signed, so they are not verified (as etcdctl --insecure-skip-tls-verify).
var AutoTLSClient = &tls.Config{InsecureSkipVerify: true}

func (s System) scheme() string {
	if s.TLS {
		return "https"
	}
	return "http"
}

func (s System) clientTLS() *tls.Config {
	if s.TLS {
		return AutoTLSClient
	}
	return nil
}

// Cluster is a running loopback cluster of fresh members.
type Cluster struct {
	System    System
	Endpoints []string
	dataDirs  []string
	logs      []string
	cmds      []*exec.Cmd
}

// readyTimeout bounds how long a fresh cluster may take to serve a linearizable put.
const readyTimeout = 30 * time.Second

// StartCluster starts size fresh members of sys with data under dir, client
// port basePort+2i and peer port basePort+2i+1, and waits until the cluster
// serves a linearizable write. On error nothing is left running.
func StartCluster(ctx context.Context, sys System, size int, dir string, basePort int) (*Cluster, error) {
	c := &Cluster{System: sys}
	var initial []string
	for i := 0; i < size; i++ {
		initial = append(initial, fmt.Sprintf("m%d=%s://127.0.0.1:%d", i, sys.scheme(), basePort+2*i+1))
	}
	for i := 0; i < size; i++ {
		client := fmt.Sprintf("%s://127.0.0.1:%d", sys.scheme(), basePort+2*i)
		peer := fmt.Sprintf("%s://127.0.0.1:%d", sys.scheme(), basePort+2*i+1)
		data := filepath.Join(dir, fmt.Sprintf("%s-m%d", sys.Name, i))
		logPath := data + ".log"
		if err := os.RemoveAll(data); err != nil {
			c.Stop()
			return nil, err
		}
		args := []string{
			"--name", fmt.Sprintf("m%d", i), "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench-" + sys.Name,
			"--log-level", "warn",
		}
		if sys.TLS {
			args = append(args, "--auto-tls", "--peer-auto-tls")
		}
		args = append(args, sys.ExtraFlags...)
		if err := c.startMember(sys.Bin, args, logPath); err != nil {
			c.Stop()
			return nil, err
		}
		c.Endpoints = append(c.Endpoints, strings.TrimPrefix(client, sys.scheme()+"://"))
		c.dataDirs = append(c.dataDirs, data)
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) startMember(bin string, args []string, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, and killed by the kernel if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	logFile.Close() // the child holds its own descriptor
	c.cmds = append(c.cmds, cmd)
	c.logs = append(c.logs, logPath)
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	clis, err := workload.DialTLS(c.Endpoints, 1, c.System.clientTLS())
	if err != nil {
		return err
	}
	defer workload.CloseAll(clis)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for i, cmd := range c.cmds {
			if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
				return fmt.Errorf("%s member %d exited; log %s:\n%s", c.System.Name, i, c.logs[i], tail(c.logs[i], 10))
			}
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, last = clis[0].Put(pctx, "bench-ready", "x")
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s cluster of %d not ready in %v: %v; log %s:\n%s", c.System.Name, len(c.cmds), readyTimeout, last, c.logs[0], tail(c.logs[0], 10))
}

// PeakRSSBytes returns each member's VmHWM.
func (c *Cluster) PeakRSSBytes() ([]int64, error) {
	return c.procStatus("VmHWM:")
}

// RSSBytes returns each member's current VmRSS.
func (c *Cluster) RSSBytes() ([]int64, error) {
	return c.procStatus("VmRSS:")
}

func (c *Cluster) procStatus(field string) ([]int64, error) {
	out := make([]int64, len(c.cmds))
	for i, cmd := range c.cmds {
		v, err := procStatusField(cmd.Process.Pid, field)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// procStatusField reads a "Field:   123 kB" line of /proc/PID/status, in bytes.
func procStatusField(pid int, field string) (int64, error) {
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

// DiskBytes returns each member's data directory size: allocated blocks, as
// du reports them (etcd preallocates its WAL files, and that space is used).
func (c *Cluster) DiskBytes() ([]int64, error) {
	out := make([]int64, len(c.dataDirs))
	for i, d := range c.dataDirs {
		n, err := dirAllocatedBytes(d)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func dirAllocatedBytes(dir string) (int64, error) {
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

// Stop kills every member (SIGKILL to its process group) and waits for it.
// The data is not needed after a benchmark, so there is no graceful stop.
func (c *Cluster) Stop() {
	for _, cmd := range c.cmds {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	c.cmds = nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
