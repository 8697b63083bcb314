package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
	"github.com/cairn-db/cairn/chaos/workload"
	lin "github.com/cairn-db/cairn/linearizability"
)

// Config describes one chaos run. Zero fields take the defaults
// EnsureDefaults documents.
type Config struct {
	// Target is the program under test; Bin its path.
	Target cluster.Kind
	Bin    string
	// Members is the cluster size, 3 or 5 (1 is allowed for tests).
	Members int
	// Duration is how long faults are injected. Default 5 minutes.
	Duration time.Duration
	// Seed fixes the schedule of faults and the workload's choices.
	Seed uint64
	// Faults are the names the schedule draws from. Default AllFaults.
	Faults []string
	// ReportRoot is where the run's report folder is created. Default
	// "chaos-out".
	ReportRoot string
	// Clients, OpsPerSecond and Keys shape the workload. Defaults 6, 150
	// operations per second in all, 8 keys.
	Clients      int
	OpsPerSecond int
	Keys         int
	// LeaseClients is the number of clients granting and keeping alive
	// leases, one pinned to each member and the rest balanced. Default
	// one more than Members.
	LeaseClients int
	// LeaseTTLSeconds is the TTL of every lease. Default 2 s (etcd's
	// minimum is 1.5 election timeouts, 1 s with the clusters' 500 ms).
	LeaseTTLSeconds int64
	// LockClients is the number of clients taking etcd-recipe locks on
	// Locks lock names and writing under them with fencing. Defaults 3
	// and 2; the session TTL is LeaseTTLSeconds.
	LockClients int
	Locks       int
	// ElectionClients is the number of clients campaigning in Elections
	// elections (etcd's election recipe); each member also has one
	// observer per election. Defaults 3 and 2; the session TTL is
	// LeaseTTLSeconds.
	ElectionClients int
	Elections       int
	// RequestTimeout bounds every workload request. Default 2 s.
	RequestTimeout time.Duration
	// LivenessBound is how long the cluster may take to commit a write
	// after a fault heals. Default 30 s.
	LivenessBound time.Duration
	// CheckTimeout bounds porcupine's search. Default 3 minutes, or a
	// quarter of Duration for runs longer than 12 minutes (the history
	// grows with the run); a search
	// that runs out is a failed check, never a pass.
	CheckTimeout time.Duration
	// Env is added to every member's environment (failpoints).
	Env []string
	// Rerun is the command line that reruns this schedule, printed when
	// the run fails.
	Rerun string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Target == "" {
		c.Target = cluster.KindCairn
	}
	if c.Members == 0 {
		c.Members = 3
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Minute
	}
	if len(c.Faults) == 0 {
		c.Faults = AllFaults
	}
	if c.ReportRoot == "" {
		c.ReportRoot = "chaos-out"
	}
	if c.Clients == 0 {
		c.Clients = 6
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 150
	}
	if c.Keys == 0 {
		c.Keys = 8
	}
	if c.LeaseClients == 0 {
		c.LeaseClients = c.Members + 1
	}
	if c.LeaseTTLSeconds == 0 {
		c.LeaseTTLSeconds = 2
	}
	if c.LockClients == 0 {
		c.LockClients = 3
	}
	if c.Locks == 0 {
		c.Locks = 2
	}
	if c.ElectionClients == 0 {
		c.ElectionClients = 3
	}
	if c.Elections == 0 {
		c.Elections = 2
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.LivenessBound == 0 {
		c.LivenessBound = 30 * time.Second
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = max(3*time.Minute, c.Duration/4)
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Validate rejects a configuration that cannot run.
func (c *Config) Validate() error {
	if c.Bin == "" {
		return errors.New("chaos: no binary")
	}
	if c.Members < 1 {
		return fmt.Errorf("chaos: %d members", c.Members)
	}
	return CheckFaults(c.Faults)
}

// TimelineEntry is one injected fault.
type TimelineEntry struct {
	// At, Healed and Live are offsets from the start of the run: when the
	// fault was injected, healed, and the cluster next committed a write.
	At, Healed, Live time.Duration
	Fault            string
	Detail           string
	// Err says what went wrong injecting or healing, if anything.
	Err string
}

func (e TimelineEntry) String() string {
	s := fmt.Sprintf("%8.3fs %-18s %s", e.At.Seconds(), e.Fault, e.Detail)
	if e.Healed > 0 {
		s += fmt.Sprintf("; healed %.3fs", e.Healed.Seconds())
	}
	if e.Live > 0 {
		s += fmt.Sprintf("; committed %.3fs", e.Live.Seconds())
	}
	if e.Err != "" {
		s += "; ERROR: " + e.Err
	}
	return s
}

// runner is the state of one run.
type runner struct {
	cfg Config
	c   *cluster.Cluster
	w   *workload.Workload
	// leases keeps leases alive beside the KV traffic; locks takes locks
	// and writes under them; elections campaigns, proclaims and observes.
	leases    *workload.LeaseWorkload
	locks     *workload.LockWorkload
	elections *workload.ElectionWorkload
	// watchers watch every key through each member's client proxy; they
	// run until the checks have seen them catch up.
	watchers     []*workload.Watcher
	stopWatching context.CancelFunc
	watchersDone sync.WaitGroup
	recorder     *lin.Recorder
	start        time.Time
	reportDir    string

	mu struct {
		sync.Mutex
		timeline []TimelineEntry
		// livenessMax is the longest wait for a commit after a heal.
		livenessMax time.Duration
		// livenessFailures describes heals after which nothing committed
		// within the bound.
		livenessFailures []string
		// recoveryFailures describes faults that could not be injected
		// or healed (a member that did not come back, say).
		recoveryFailures []string
		probeClientID    int
	}
}

// clusterStartAttempts bounds the attempts to start the cluster: a port
// picked free can be taken by another process before the member binds it.
const clusterStartAttempts = 3

// startCluster starts a cluster in a fresh subdirectory of cfg.Dir, trying
// again with new ports if an attempt fails.
func startCluster(cfg cluster.Config) (*cluster.Cluster, error) {
	base := cfg.Dir
	var errs []error
	for attempt := 1; attempt <= clusterStartAttempts; attempt++ {
		cfg.Dir = filepath.Join(base, fmt.Sprintf("attempt%d", attempt))
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, err
		}
		c, err := cluster.Start(cfg)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	return nil, errors.Join(errs...)
}

// startRevision is the revision of a fresh etcd or cairn store.
const startRevision = 1

// diskBytes is the size of each member's disk in runs with disk-full
// faults: room for etcd's 64 MiB preallocated WAL segments and cairn's
// Pebble WAL and memtables, with space to spare.
const diskBytes = 256 << 20

// Run performs one chaos run and returns its result. An error means the run
// could not be performed at all (no binary, no cluster); a run that found a
// violation returns a Result that did not pass.
func Run(cfg Config) (*Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg}
	r.reportDir = filepath.Join(cfg.ReportRoot, fmt.Sprintf("%s-%dm-seed%d-%s", cfg.Target, cfg.Members, cfg.Seed, time.Now().UTC().Format("20060102T150405.000")))
	if err := os.MkdirAll(r.reportDir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: report dir: %w", err)
	}
	workDir, err := os.MkdirTemp("", "cairn-chaos-")
	if err != nil {
		return nil, fmt.Errorf("chaos: work dir: %w", err)
	}
	defer os.RemoveAll(workDir)
	cfg.Logf("chaos: starting %d %s members in %s", cfg.Members, cfg.Target, workDir)
	clusterCfg := cluster.Config{Kind: cfg.Target, Bin: cfg.Bin, Members: cfg.Members, Dir: workDir, Env: cfg.Env, Seed: cfg.Seed}
	if slices.Contains(cfg.Faults, FaultDiskFull) {
		clusterCfg.DiskBytes = diskBytes
	}
	r.c, err = startCluster(clusterCfg)
	if err != nil {
		return nil, fmt.Errorf("chaos: start cluster: %w", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.c.Stop()
		}
	}
	defer stop()
	r.start = time.Now()
	r.recorder = lin.NewRecorder(startRevision, func() int64 { return int64(time.Since(r.start)) })
	r.w = workload.New(workload.Config{
		Endpoints: r.c.ClientURLs(), Clients: cfg.Clients, Pinned: true, OpsPerSecond: cfg.OpsPerSecond,
		Keys: cfg.Keys, RequestTimeout: cfg.RequestTimeout, Seed: cfg.Seed,
	}, r.recorder)

	ttl := time.Duration(cfg.LeaseTTLSeconds) * time.Second
	r.leases = workload.NewLeases(workload.LeaseConfig{
		Endpoints: r.c.ClientURLs(), Clients: cfg.LeaseClients, TTLSeconds: cfg.LeaseTTLSeconds,
		KeepAliveInterval: ttl / leaseCallsPerTTL, HoldMin: ttl, HoldMax: leaseHoldTTLsMax * ttl,
		RevokePercent: leaseRevokePercent, KeysMax: leaseKeysMax, RequestTimeout: cfg.RequestTimeout, Seed: cfg.Seed,
	}, r.clock)
	r.locks = workload.NewLocks(workload.LockConfig{
		Endpoints: r.c.ClientURLs(), Clients: cfg.LockClients, Locks: cfg.Locks,
		SessionTTLSeconds: int(cfg.LeaseTTLSeconds), WritesMax: lockWritesMax, Pause: lockPause,
		LockTimeout: lockTimeout, RequestTimeout: cfg.RequestTimeout, Seed: cfg.Seed,
	})
	r.elections = workload.NewElections(workload.ElectionConfig{
		Endpoints: r.c.ClientURLs(), Clients: cfg.ElectionClients, Elections: cfg.Elections,
		SessionTTLSeconds: int(cfg.LeaseTTLSeconds), ProclaimsMax: electionProclaimsMax, Pause: lockPause,
		CampaignTimeout: lockTimeout, RequestTimeout: cfg.RequestTimeout, Seed: cfg.Seed,
	})

	ctx, cancel := context.WithCancel(context.Background())
	workloads := []func(context.Context) error{r.w.Run, r.leases.Run, r.locks.Run, r.elections.Run}
	workloadDone := make(chan error, len(workloads))
	for _, run := range workloads {
		go func() { workloadDone <- run(ctx) }()
	}
	r.startWatchers()
	defer r.stopWatchers()
	r.injectFaults()
	if err := healAll(r.c); err != nil {
		r.recoveryFailure("final heal: %v", err)
	}
	r.awaitCommit("final heal")
	cancel()
	for range workloads {
		if err := <-workloadDone; err != nil {
			r.recoveryFailure("workload: %v", err)
		}
	}
	cfg.Logf("chaos: workload stopped after %v; checking", time.Since(r.start).Round(time.Millisecond))
	result := r.check()
	stop()
	r.writeReport(result, workDir)
	return result, nil
}

// The lease traffic's shape, in units of the lease TTL: calls on a held
// lease come leaseCallsPerTTL times per TTL (a few may fail without the
// lease expiring); a lease is held one to leaseHoldTTLsMax TTLs, then
// revoked (leaseRevokePercent of them) or abandoned to expire; zero to
// leaseKeysMax keys are attached to it.
const (
	leaseCallsPerTTL   = 6
	leaseHoldTTLsMax   = 8
	leaseRevokePercent = 30
	leaseKeysMax       = 3
)

// The lock traffic's shape: one to lockWritesMax fenced writes per
// acquisition, lockPause apart; a lock is waited for at most lockTimeout.
// The election traffic's is the same, with one to electionProclaimsMax
// proclamations per term.
const (
	lockWritesMax        = 3
	lockPause            = 50 * time.Millisecond
	lockTimeout          = 5 * time.Second
	electionProclaimsMax = 3
)

// clock is the run's clock: the time since it started.
func (r *runner) clock() time.Duration { return time.Since(r.start) }

// injectFaults runs the schedule until the run's duration is spent.
func (r *runner) injectFaults() {
	s := &scheduler{c: r.c, rng: rand.New(rand.NewPCG(r.cfg.Seed, 0xc4a05)), faults: r.cfg.Faults}
	end := r.start.Add(r.cfg.Duration)
	for {
		quiet := s.quiet()
		if time.Now().Add(quiet).After(end) {
			return
		}
		time.Sleep(quiet)
		name := s.next()
		entry := TimelineEntry{At: time.Since(r.start), Fault: name}
		inj, err := injectors[name](s)
		entry.Detail = inj.detail
		if err != nil {
			entry.Err = err.Error()
			r.recoveryFailure("%s: %v", name, err)
		}
		if inj.heal != nil {
			hold := min(inj.hold, max(time.Until(end), 0))
			time.Sleep(hold)
			if err := inj.heal(); err != nil {
				entry.Err = strings.TrimPrefix(entry.Err+"; ", "; ") + "heal: " + err.Error()
				r.recoveryFailure("heal %s: %v", name, err)
			}
			entry.Healed = time.Since(r.start)
		}
		if at, ok := r.awaitCommit(name); ok {
			entry.Live = at
		}
		r.cfg.Logf("chaos: %s", entry)
		r.mu.Lock()
		r.mu.timeline = append(r.mu.timeline, entry)
		r.mu.Unlock()
	}
}

// probeTimeout bounds each liveness probe request.
const probeTimeout = 2 * time.Second

// awaitCommit retries a recorded put through every endpoint until one is
// acknowledged or LivenessBound passes; it returns when the put committed.
func (r *runner) awaitCommit(after string) (time.Duration, bool) {
	begin := time.Now()
	cli, err := workload.NewClient(r.c.ClientURLs())
	if err != nil {
		r.livenessFailure("after %s: client: %v", after, err)
		return 0, false
	}
	defer cli.Close()
	for attempt := 0; time.Since(begin) < r.cfg.LivenessBound; attempt++ {
		r.mu.Lock()
		r.mu.probeClientID++
		id := r.mu.probeClientID
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		ok := r.w.Probe(ctx, cli, id, fmt.Sprintf("probe.%d", id))
		cancel()
		if ok {
			waited := time.Since(begin)
			r.mu.Lock()
			r.mu.livenessMax = max(r.mu.livenessMax, waited)
			r.mu.Unlock()
			return time.Since(r.start), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.livenessFailure("after %s: no write committed within %v", after, r.cfg.LivenessBound)
	return 0, false
}

func (r *runner) livenessFailure(format string, args ...any) {
	r.mu.Lock()
	r.mu.livenessFailures = append(r.mu.livenessFailures, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *runner) recoveryFailure(format string, args ...any) {
	r.mu.Lock()
	r.mu.recoveryFailures = append(r.mu.recoveryFailures, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// startWatchers starts one resuming watcher per member, from the first
// revision the workload can create.
func (r *runner) startWatchers() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopWatching = cancel
	for _, url := range r.c.ClientURLs() {
		w := workload.NewWatcher(url, startRevision+1)
		r.watchers = append(r.watchers, w)
		r.watchersDone.Add(1)
		go func() {
			defer r.watchersDone.Done()
			if err := w.Run(ctx); err != nil {
				r.recoveryFailure("watcher of %s: %v", w.Endpoint(), err)
			}
		}()
	}
}

// stopWatchers ends every watcher and waits for them; it may be called
// more than once.
func (r *runner) stopWatchers() {
	if r.stopWatching != nil {
		r.stopWatching()
	}
	r.watchersDone.Wait()
}
