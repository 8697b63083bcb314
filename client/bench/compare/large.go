package compare

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cairn-db/cairn/client/bench/keys"
	"github.com/cairn-db/cairn/client/bench/load"
	"github.com/cairn-db/cairn/client/bench/workload"
)

// LargeConfig is the large-data scenario: N keys in one member of each system.
type LargeConfig struct {
	Etcd, Cairn System
	N           int           // keys to load
	ValueSize   int           // default 256
	Duration    time.Duration // each read measurement (default 10 s)
	Clients     int           // default 50
	Conns       int           // default 10
	BasePort    int
	WorkDir     string
	Quick       bool
	Progress    io.Writer
}

// LargeRun is one system's figures at size N.
type LargeRun struct {
	System       string      `json:"system"`
	N            int         `json:"n"`
	LoadSeconds  float64     `json:"load_seconds"`
	LoadKeysPerS float64     `json:"load_keys_per_second"`
	RSSBytes     int64       `json:"rss_bytes"`      // after load and reads
	PeakRSSBytes int64       `json:"peak_rss_bytes"` // VmHWM
	DiskBytes    int64       `json:"disk_bytes"`
	Get          load.Result `json:"get"`
	Scan         load.Result `json:"scan"`
	Failure      string      `json:"failure,omitempty"`
}

// Large loads N keys into a fresh single member of each system (etcd first,
// then cairn) and measures memory, disk, and point-read and scan latency.
func Large(ctx context.Context, cfg LargeConfig) []LargeRun {
	if cfg.ValueSize == 0 {
		cfg.ValueSize = 256
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Clients == 0 {
		cfg.Clients = 50
	}
	if cfg.Conns == 0 {
		cfg.Conns = 10
	}
	var out []LargeRun
	for i, sys := range []System{cfg.Etcd, cfg.Cairn} {
		r := largeOne(ctx, cfg, sys, cfg.BasePort+10*i)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "large %s N=%d: load %.0f keys/s, rss %.0f MB, disk %.0f MB, get p99 %.2f ms, scan p99 %.2f ms %s\n",
				r.System, r.N, r.LoadKeysPerS, mb(r.RSSBytes), mb(r.DiskBytes), r.Get.Latency.P99MS, r.Scan.Latency.P99MS, r.Failure)
		}
		out = append(out, r)
	}
	return out
}

// largeKeySpace is the large scenario's keys: 16-byte keys under "large/".
func largeKeySpace(n int) keys.Space { return keys.Space{Prefix: "large/", Size: 16, Count: n} }

func largeOne(ctx context.Context, cfg LargeConfig, sys System, port int) LargeRun {
	r := LargeRun{System: sys.Name, N: cfg.N}
	cl, err := StartCluster(ctx, sys, 1, cfg.WorkDir, port)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer cl.Stop()
	clis, err := workload.Dial(cl.Endpoints, cfg.Conns)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	sp := largeKeySpace(cfg.N)
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "large %s: loading %d keys\n", sys.Name, cfg.N)
	}
	begin := time.Now()
	_, err = workload.Preload(ctx, clis, cfg.N, func(i int) string { return string(sp.Key(nil, i)) }, keys.Value(cfg.ValueSize))
	workload.CloseAll(clis)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	r.LoadSeconds = time.Since(begin).Seconds()
	r.LoadKeysPerS = float64(cfg.N) / r.LoadSeconds
	o := workload.Options{Endpoints: cl.Endpoints, Conns: cfg.Conns, Prefix: sp.Prefix, KeySize: sp.Size, KeyCount: sp.Count, ValueSize: cfg.ValueSize}
	o.Load = load.Config{Clients: cfg.Clients, Duration: cfg.Duration, Progress: cfg.Progress}
	// The keys are there already: read them without the range workload's preload.
	if r.Get, err = workload.ReadOnly(ctx, "large-get", o); err != nil {
		r.Failure = err.Error()
		return r
	}
	o.Scan = true
	if r.Scan, err = workload.ReadOnly(ctx, "large-scan", o); err != nil {
		r.Failure = err.Error()
		return r
	}
	rss, err1 := cl.RSSBytes()
	peak, err2 := cl.PeakRSSBytes()
	disk, err3 := cl.DiskBytes()
	for _, e := range []error{err1, err2, err3} {
		if e != nil {
			r.Failure = e.Error()
			return r
		}
	}
	r.RSSBytes, r.PeakRSSBytes, r.DiskBytes = rss[0], peak[0], disk[0]
	for _, res := range []*load.Result{&r.Get, &r.Scan} {
		if err := res.Valid(); err != nil {
			r.Failure = err.Error()
		}
	}
	return r
}
