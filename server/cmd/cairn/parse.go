package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/server/etcdapi"
	"github.com/cairn-db/cairn/server/member"
)

// invocation is what the command line, the environment and the
// configuration file ask of cairn.
type invocation struct {
	cfg         member.Config
	log         logOptions
	showVersion bool
	// checkConfig is --check-config: report and exit once the settings
	// are checked.
	checkConfig bool
	// notices are logged once the logger exists: ignored flags and gates,
	// unrecognised ETCD_* variables, a configuration file's unknown keys.
	notices []string
}

// envPrefix starts the environment variables that set flags, as in etcd:
// ETCD_INITIAL_CLUSTER sets --initial-cluster.
const envPrefix = "ETCD_"

// parseFlags reads cairn's settings as etcd reads its own: the command
// line; then, if --config-file names a file, that file alone (the other
// flags and the environment are ignored, as etcd ignores them); otherwise
// ETCD_* variables of env for the flags the command line left unset.
func parseFlags(args, env []string) (invocation, error) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return invocation{}, errHelp
		}
		return invocation{}, err
	}
	if fs.NArg() > 0 {
		return invocation{}, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	// As etcd, --version answers before the environment and the
	// configuration file are read, and the values of flags are checked.
	if o.showVersion {
		return invocation{showVersion: true}, nil
	}
	if o.configFile == "" {
		o.configFile = envValue(env, envPrefix+"CONFIG_FILE")
	}
	var notices []string
	if o.configFile != "" {
		path, checkConfig := o.configFile, o.checkConfig
		o = options{}
		fs = newFlagSet(&o) // sets every flag's default
		o.checkConfig = checkConfig
		fileNotices, err := applyConfigFile(fs, path)
		if err != nil {
			return invocation{}, fmt.Errorf("--config-file %s: %w", path, err)
		}
		notices = append(fileNotices, "loaded configuration file "+path+"; other flags and environment variables are ignored")
	} else {
		envNotices, err := applyEnv(fs, env)
		if err != nil {
			return invocation{}, err
		}
		notices = envNotices
	}
	return finish(fs, &o, notices)
}

// finish checks the parsed flags and builds the invocation.
func finish(fs *flag.FlagSet, o *options, notices []string) (invocation, error) {
	flagNotices, err := checkEtcdOnlyFlags(fs)
	if err != nil {
		return invocation{}, err
	}
	gateNotices, err := o.featureGates.check()
	if err != nil {
		return invocation{}, err
	}
	if notice := o.adjustWatchProgressNotifyInterval(); notice != "" {
		gateNotices = append(gateNotices, notice)
	}
	cfg, err := o.config()
	if err != nil {
		return invocation{}, err
	}
	tokenNotices, err := o.authTokenConfig(&cfg, os.ReadFile)
	if err != nil {
		return invocation{}, err
	}
	notices = append(notices, tokenNotices...)
	log, err := o.logOptions()
	if err != nil {
		return invocation{}, err
	}
	notices = append(append(notices, flagNotices...), gateNotices...)
	return invocation{cfg: cfg, log: log, checkConfig: o.checkConfig, notices: notices}, nil
}

// applyEnv sets each flag the command line left unset from its ETCD_*
// variable. Like etcd, a variable for a flag the command line set is an
// error (one of the two would be silently lost), an empty variable sets
// nothing, and an ETCD_* variable naming no flag is only reported.
// ETCD_VERSION never sets --version, as in etcd.
func applyEnv(fs *flag.FlagSet, env []string) (notices []string, err error) {
	setOnCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setOnCommandLine[f.Name] = true })
	env = slices.Clone(env)
	slices.Sort(env)
	for _, kv := range env {
		key, value, _ := strings.Cut(kv, "=")
		suffix, ok := strings.CutPrefix(key, envPrefix)
		if !ok {
			continue
		}
		name := strings.ReplaceAll(strings.ToLower(suffix), "_", "-")
		switch {
		case setOnCommandLine[name]:
			return nil, fmt.Errorf("conflicting environment variable %q is shadowed by corresponding command-line flag (either unset environment variable or disable flag)", key)
		case name == "version":
			notices = append(notices, "cannot set special environment variable "+kv)
		case fs.Lookup(name) == nil || value == "":
			notices = append(notices, "unrecognized environment variable "+kv)
		default:
			if err := fs.Set(name, value); err != nil {
				return nil, fmt.Errorf("invalid value %q for %s: %v", value, key, err)
			}
		}
	}
	return notices, nil
}

// envValue is the value of variable key in env, or "".
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// etcd's watch server keeps its default progress notification interval
// for a --watch-progress-notify-interval that is not positive, and raises
// a positive one below minWatchProgressNotifyInterval to it, with a
// warning.
const (
	defaultWatchProgressNotifyInterval = 10 * time.Minute
	minWatchProgressNotifyInterval     = 100 * time.Millisecond
)

// adjustWatchProgressNotifyInterval applies etcd's rule to the flag and
// returns the warning to log, if any.
func (o *options) adjustWatchProgressNotifyInterval() string {
	switch d := o.watchProgressNotifyInterval; {
	case d <= 0:
		o.watchProgressNotifyInterval = defaultWatchProgressNotifyInterval
	case d < minWatchProgressNotifyInterval:
		o.watchProgressNotifyInterval = minWatchProgressNotifyInterval
		return fmt.Sprintf("adjusting watch progress notify interval %v to the minimum period %v", d, minWatchProgressNotifyInterval)
	}
	return ""
}

// config checks the implemented flags and turns them into a member.Config.
// etcdLeaseCheckpointInterval is how often etcd 3.7.3 checkpoints leases
// under the LeaseCheckpoint gate (no flag sets it).
const etcdLeaseCheckpointInterval = 5 * time.Minute

func (o *options) config() (member.Config, error) {
	if o.initialClusterState != "new" && o.initialClusterState != "existing" {
		return member.Config{}, fmt.Errorf("--initial-cluster-state: %q is not 'new' or 'existing'", o.initialClusterState)
	}
	if o.heartbeatMs == 0 || o.electionMs < 5*o.heartbeatMs {
		return member.Config{}, fmt.Errorf("--election-timeout[%vms] should be at least 5 times as --heartbeat-interval[%vms]", o.electionMs, o.heartbeatMs)
	}
	if o.snapshotCatchUpEntries == 0 || o.snapshotCount == 0 {
		return member.Config{}, fmt.Errorf("--snapshot-count and --snapshot-catchup-entries must be positive")
	}
	if err := etcdapi.ValidateBcryptCost(o.bcryptCost); err != nil {
		return member.Config{}, err
	}
	budgetBytes, err := parseBytes(o.memoryBudget)
	if err != nil {
		return member.Config{}, fmt.Errorf("--memory-budget: %w", err)
	}
	if _, err := node.SplitMemoryBudget(budgetBytes); err != nil {
		return member.Config{}, fmt.Errorf("--memory-budget: %w", err)
	}
	if o.maxConcurrentStreams == 0 || o.maxConcurrentStreams > math.MaxUint32 {
		return member.Config{}, fmt.Errorf("--max-concurrent-streams: %d is not between 1 and %d", o.maxConcurrentStreams, uint64(math.MaxUint32))
	}
	if o.maxLearners < 1 {
		return member.Config{}, fmt.Errorf("--max-learners: %d is not positive", o.maxLearners)
	}
	if o.grpcKeepAliveMinTime < 0 || o.grpcKeepAliveInterval < 0 || o.grpcKeepAliveTimeout < 0 {
		return member.Config{}, fmt.Errorf("--grpc-keepalive-min-time, -interval and -timeout cannot be negative")
	}
	compaction, err := o.autoCompaction()
	if err != nil {
		return member.Config{}, err
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = o.name + ".cairn"
	}
	cfg := member.Config{
		Name:                     o.name,
		DataDir:                  dataDir,
		ListenClientURLs:         splitURLs(o.listenClientURLs),
		AdvertiseClientURLs:      splitURLs(o.advertiseClientURLs),
		ListenPeerURLs:           splitURLs(o.listenPeerURLs),
		InitialAdvertisePeerURLs: splitURLs(o.initialAdvertisePeerURLs),
		InitialCluster:           o.initialCluster,
		InitialClusterToken:      o.initialClusterToken,
		InitialClusterState:      o.initialClusterState,
		TickInterval:             time.Duration(o.heartbeatMs) * time.Millisecond,
		ElectionTimeout:          time.Duration(o.electionMs) * time.Millisecond,
		ListenMetricsURLs:        splitURLs(o.listenMetricsURLs),
		EnablePprof:              o.enablePprof,
		SnapshotCount:            o.snapshotCount,
		SnapshotCatchUpEntries:   o.snapshotCatchUpEntries,
		Limits:                   etcdapi.Limits{MaxRequestBytes: int(o.maxRequestBytes), MaxTxnOps: int(o.maxTxnOps), QuotaBackendBytes: o.quotaBackendBytes},
		MemoryBudgetBytes:        budgetBytes,
		BcryptCost:               o.bcryptCost,
		AuthTokenTTL:             time.Duration(o.authTokenTTLSeconds) * time.Second,
		MaxConcurrentStreams:     uint32(o.maxConcurrentStreams),
		GRPCKeepAliveMinTime:     o.grpcKeepAliveMinTime,
		// etcd passes no keepalive parameters unless both are positive;
		// gRPC then uses its defaults, 2 h and 20 s.
		GRPCKeepAliveInterval:         keepAliveIf(o.grpcKeepAliveInterval > 0 && o.grpcKeepAliveTimeout > 0, o.grpcKeepAliveInterval),
		GRPCKeepAliveTimeout:          keepAliveIf(o.grpcKeepAliveInterval > 0 && o.grpcKeepAliveTimeout > 0, o.grpcKeepAliveTimeout),
		WatchProgressNotifyInterval:   o.watchProgressNotifyInterval,
		DisablePreVote:                !o.preVote,
		InitialElectionTickAdvance:    o.initialElectionTickAdvance,
		DisableStrictReconfigCheck:    !o.strictReconfigCheck,
		MaxLearners:                   o.maxLearners,
		UnsafeNoFsync:                 o.unsafeNoFsync,
		ForceNewCluster:               o.forceNewCluster,
		AutoCompactionMode:            compaction.mode,
		AutoCompactionRetention:       compaction.retention,
		AutoCompactionRetainRevisions: compaction.retainRevisions,
	}
	if o.featureGates.gates["LeaseCheckpoint"] {
		cfg.LeaseCheckpointInterval = etcdLeaseCheckpointInterval
	}
	if err := o.tls.apply(&cfg); err != nil {
		return member.Config{}, err
	}
	if err := o.ops.apply(&cfg, &o.featureGates); err != nil {
		return member.Config{}, err
	}
	return cfg, nil
}

// authTokenConfig reads --auth-token as etcd reads it, at start rather
// than when the member first opens its data, with etcd's errors: simple
// tokens (any options ignored), or JSON Web Tokens with the keys it names,
// read with readFile. It returns etcd's warning about unknown JWT
// options, if any.
func (o *options) authTokenConfig(cfg *member.Config, readFile func(string) ([]byte, error)) (notices []string, err error) {
	opts, err := auth.ParseTokenOptions(o.authToken)
	if err != nil {
		return nil, fmt.Errorf("--auth-token: %w", err)
	}
	switch opts.Kind {
	case auth.TokenKindSimple:
		return nil, nil
	case auth.TokenKindJWT:
		if cfg.AuthJWT, err = auth.NewJWT(opts.Options, readFile); err != nil {
			return nil, fmt.Errorf("--auth-token: %w", err)
		}
		if unknown := opts.UnknownJWTOptions(); len(unknown) > 0 {
			notices = append(notices, "unknown JWT options: "+strings.Join(unknown, ", "))
		}
		return notices, nil
	}
	// etcd starts with an empty kind, and then refuses every Authenticate;
	// cairn refuses it at start.
	return nil, fmt.Errorf("--auth-token: %w: unknown token type %q", auth.ErrInvalidAuthOpts, opts.Kind)
}

// autoCompaction is --auto-compaction-mode and --auto-compaction-retention,
// checked.
type autoCompaction struct {
	mode            node.AutoCompactionMode
	retention       time.Duration
	retainRevisions int64
}

// autoCompaction reads the retention as etcd does: 0 is off; in periodic
// mode a bare integer is hours and anything else a duration ("30m"); in
// revision mode an integer count of revisions.
func (o *options) autoCompaction() (autoCompaction, error) {
	n, intErr := strconv.ParseInt(o.autoCompactionRetention, 10, 64)
	if intErr == nil && n == 0 {
		return autoCompaction{}, nil
	}
	switch o.autoCompactionMode {
	case "periodic":
		if intErr == nil && n > 0 && n <= math.MaxInt64/int64(time.Hour) {
			return autoCompaction{mode: node.AutoCompactionPeriodic, retention: time.Duration(n) * time.Hour}, nil
		}
		d, err := time.ParseDuration(o.autoCompactionRetention)
		if err != nil || d < 0 {
			return autoCompaction{}, fmt.Errorf("--auto-compaction-retention: %q is not a number of hours or a duration", o.autoCompactionRetention)
		}
		if d == 0 {
			return autoCompaction{}, nil
		}
		return autoCompaction{mode: node.AutoCompactionPeriodic, retention: d}, nil
	case "revision":
		if intErr != nil || n < 0 {
			return autoCompaction{}, fmt.Errorf("--auto-compaction-retention: %q is not a number of revisions", o.autoCompactionRetention)
		}
		return autoCompaction{mode: node.AutoCompactionRevision, retainRevisions: n}, nil
	}
	return autoCompaction{}, fmt.Errorf("--auto-compaction-mode: %q is not periodic or revision", o.autoCompactionMode)
}

// keepAliveIf is d when both keepalive parameters are set, else zero.
func keepAliveIf(bothSet bool, d time.Duration) time.Duration {
	if bothSet {
		return d
	}
	return 0
}

// logLevels are --log-level's values. etcd's panic and fatal keep only
// the lines that stop the process; cairn logs those at error level, so
// both keep only errors above error: none but a fail-stop's.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	"panic": slog.LevelError + 4, "fatal": slog.LevelError + 4,
}
