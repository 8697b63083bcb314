package compare

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
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

func (s System) clientTLS() *tls.Config {
	if s.TLS {
		return AutoTLSClient
	}
	return nil
}

// Cluster is a running loopback cluster of fresh members, started by the
// launcher of chaos/cluster without its proxies.
type Cluster struct {
	System    System
	Endpoints []string
	cluster   *cluster.Cluster
	// dataDirs are the members' data directories, which outlive Stop.
	dataDirs []string
}

// readyTimeout bounds how long a fresh cluster may take to serve a linearizable put.
const readyTimeout = 30 * time.Second

// StartCluster starts size fresh members of sys with data under dir, client
// port basePort+2i and peer port basePort+2i+1, and waits until the cluster
// serves a linearizable write. On error nothing is left running.
func StartCluster(ctx context.Context, sys System, size int, dir string, basePort int) (*Cluster, error) {
	kind := cluster.KindCairn
	if sys.Name == "etcd" {
		kind = cluster.KindEtcd
	}
	clusterDir := filepath.Join(dir, sys.Name)
	if err := os.RemoveAll(clusterDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(clusterDir, 0o755); err != nil {
		return nil, err
	}
	cfg := cluster.Config{
		Kind: kind, Bin: sys.Bin, Members: size, Dir: clusterDir, Direct: true,
		Token: "bench-" + sys.Name, TLS: sys.clientTLS(), LogLevel: "warn", ReadyTimeout: readyTimeout,
		// etcd's defaults, which the benchmark has always measured.
		HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: time.Second,
		ExtraFlags: sys.ExtraFlags,
	}
	if sys.TLS {
		cfg.ExtraFlags = append([]string{"--auto-tls", "--peer-auto-tls"}, sys.ExtraFlags...)
	}
	for i := range size {
		cfg.Names = append(cfg.Names, fmt.Sprintf("m%d", i))
		cfg.Ports = append(cfg.Ports, cluster.MemberPorts{Client: basePort + 2*i, Peer: basePort + 2*i + 1})
	}
	cl, err := cluster.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s cluster of %d: %w", sys.Name, size, err)
	}
	c := &Cluster{System: sys, Endpoints: cl.Endpoints(), cluster: cl}
	for _, m := range cl.Members {
		c.dataDirs = append(c.dataDirs, m.DataDir)
	}
	if err := c.waitWritable(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitWritable waits until the cluster acknowledges a linearizable put
// (every member already serves a linearizable Get).
func (c *Cluster) waitWritable(ctx context.Context) error {
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
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, last = clis[0].Put(pctx, "bench-ready", "x")
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s cluster of %d not writable in %v: %v; log %s", c.System.Name, len(c.Endpoints), readyTimeout, last, c.cluster.Members[0].LogPath)
}

// PeakRSSBytes returns each member's VmHWM.
func (c *Cluster) PeakRSSBytes() ([]int64, error) {
	return c.perMember((*cluster.Member).PeakRSSBytes)
}

// RSSBytes returns each member's current VmRSS.
func (c *Cluster) RSSBytes() ([]int64, error) {
	return c.perMember((*cluster.Member).RSSBytes)
}

// DiskBytes returns each member's data directory size: allocated blocks, as
// du reports them (etcd preallocates its WAL files, and that space is used).
func (c *Cluster) DiskBytes() ([]int64, error) {
	return c.perMember((*cluster.Member).DiskBytes)
}

func (c *Cluster) perMember(measure func(*cluster.Member) (int64, error)) ([]int64, error) {
	out := make([]int64, len(c.cluster.Members))
	for i, m := range c.cluster.Members {
		v, err := measure(m)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Stop kills every member (SIGKILL) and waits for it. The data is not
// needed after a benchmark, so there is no graceful stop.
func (c *Cluster) Stop() {
	if c.cluster != nil {
		c.cluster.Kill()
		c.cluster = nil
	}
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
