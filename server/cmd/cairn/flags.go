package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/server/etcdapi"
	"golang.org/x/crypto/bcrypt"
)

// The flag table. Every flag of `etcd --help` (3.7.3) is in exactly one
// of three places:
//
//   - implemented: registered by options.register with etcd's name and
//     default, and read into member.Config by options.config;
//   - ignored: in etcdOnlyFlags with status flagIgnored, accepted with any
//     value and reported once in the log, where etcd users expect a
//     setting to have no visible effect (tuning of bbolt, which cairn
//     does not use, and thresholds of log lines);
//   - refused: in etcdOnlyFlags with status flagRefused, accepted only
//     with the value that describes what cairn does anyway (usually etcd's
//     default, so that a configuration file listing every key still
//     starts cairn), otherwise refused with one line naming the flag.
//
// To implement a flag: add its field to options, register it in
// options.register, read it in options.config, and delete its line from
// etcdOnlyFlags (registering both panics, so TestEveryEtcdFlagIsAccountedFor
// catches a flag left in two places). docs/compatibility.md lists the
// same three groups.

// flagStatus is how cairn answers an etcd flag it does not implement.
type flagStatus int

const (
	// flagIgnored accepts any value and has no effect.
	flagIgnored flagStatus = iota + 1
	// flagRefused accepts only acceptedValue.
	flagRefused
)

// valueKind says how a flag's text compares with another and how a
// configuration file writes it.
type valueKind int

const (
	kindString valueKind = iota
	kindBool
	kindInt
	// kindDuration is written as "10m" on the command line and as integer
	// nanoseconds in a configuration file, as etcd reads it.
	kindDuration
)

// etcdOnlyFlag is an etcd flag cairn does not implement.
type etcdOnlyFlag struct {
	name   string
	kind   valueKind
	status flagStatus
	// acceptedValue is, for a refused flag, the one value accepted: what
	// cairn does anyway.
	acceptedValue string
	// reason says why it is ignored or refused (logged, and in the docs).
	reason string
}

const (
	reasonBbolt     = "cairn stores its data in Pebble, not bbolt"
	reasonNoWAL     = "cairn keeps its raft log in Pebble, truncated by --snapshot-count, not in WAL and snapshot files"
	reasonDiscovery = "discovery is not supported: bootstrap with --initial-cluster"
	reasonLogLine   = "cairn does not log slow requests by this threshold"
	reasonTracing   = "only read with --enable-distributed-tracing, which cairn refuses"
	reasonNoGateway = "cairn's JSON gateway does not restrict origins or hosts"
)

// etcdOnlyFlags are etcd's flags that cairn accepts without implementing,
// in the order of `etcd --help`.
var etcdOnlyFlags = []etcdOnlyFlag{
	{name: "wal-dir", status: flagRefused, reason: "cairn keeps its raft log in Pebble inside --data-dir"},
	{name: "max-snapshots", kind: kindInt, status: flagIgnored, reason: reasonNoWAL},
	{name: "max-wals", kind: kindInt, status: flagIgnored, reason: reasonNoWAL},
	{name: "memory-mlock", kind: kindBool, status: flagRefused, acceptedValue: "false", reason: "cairn does not lock its memory"},
	{name: "backend-bbolt-freelist-type", status: flagIgnored, reason: reasonBbolt},
	{name: "backend-batch-interval", kind: kindDuration, status: flagIgnored, reason: reasonBbolt + "; it commits once per raft batch"},
	{name: "backend-batch-limit", kind: kindInt, status: flagIgnored, reason: reasonBbolt + "; it commits once per raft batch"},
	{name: "socket-reuse-port", kind: kindBool, status: flagRefused, acceptedValue: "false", reason: "SO_REUSEPORT is not supported"},
	{name: "socket-reuse-address", kind: kindBool, status: flagRefused, acceptedValue: "false", reason: "SO_REUSEADDR is not supported"},
	{name: "raft-read-timeout", kind: kindDuration, status: flagIgnored, reason: "cairn's peer transport is gRPC streams with their own keepalives"},
	{name: "raft-write-timeout", kind: kindDuration, status: flagIgnored, reason: "cairn's peer transport is gRPC streams with their own keepalives"},

	{name: "discovery", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-token", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-endpoints", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-dial-timeout", kind: kindDuration, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-request-timeout", kind: kindDuration, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-keepalive-time", kind: kindDuration, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-keepalive-timeout", kind: kindDuration, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-insecure-transport", kind: kindBool, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-insecure-skip-tls-verify", kind: kindBool, status: flagIgnored, reason: "only read with --discovery-endpoints, which cairn refuses"},
	{name: "discovery-cert", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-key", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-cacert", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-user", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-password", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-fallback", status: flagRefused, acceptedValue: "exit", reason: reasonDiscovery},
	{name: "discovery-proxy", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-srv", status: flagRefused, reason: reasonDiscovery},
	{name: "discovery-srv-name", status: flagRefused, reason: reasonDiscovery},
	{name: "v2-deprecation", status: flagIgnored, reason: "etcd 3.7 enforces its default and ignores the value too; cairn has no v2 store"},

	{name: "cors", status: flagRefused, acceptedValue: "*", reason: reasonNoGateway},
	{name: "host-whitelist", status: flagRefused, acceptedValue: "*", reason: reasonNoGateway},

	{name: "enable-log-rotation", kind: kindBool, status: flagRefused, acceptedValue: "false", reason: "log rotation is not supported: rotate with logrotate's copytruncate or log to stderr"},
	{name: "log-rotation-config-json", status: flagIgnored, reason: "only read with --enable-log-rotation, which cairn refuses"},
	{name: "warning-unary-request-duration", kind: kindDuration, status: flagIgnored, reason: reasonLogLine},

	{name: "enable-distributed-tracing", kind: kindBool, status: flagRefused, acceptedValue: "false", reason: "distributed tracing is not supported"},
	{name: "distributed-tracing-address", status: flagIgnored, reason: reasonTracing},
	{name: "distributed-tracing-service-name", status: flagIgnored, reason: reasonTracing},
	{name: "distributed-tracing-instance-id", status: flagIgnored, reason: reasonTracing},
	{name: "distributed-tracing-sampling-rate", kind: kindInt, status: flagIgnored, reason: reasonTracing},

	{name: "compaction-batch-limit", kind: kindInt, status: flagIgnored, reason: "cairn bounds the keys one compaction step removes by itself, so compaction never stops the world"},
	{name: "warning-apply-duration", kind: kindDuration, status: flagIgnored, reason: reasonLogLine},
	{name: "bootstrap-defrag-threshold-megabytes", kind: kindInt, status: flagIgnored, reason: "Pebble reclaims free space by its own compactions; there is nothing to defragment at start"},
	{name: "compaction-sleep-interval", kind: kindDuration, status: flagIgnored, reason: "cairn spreads compaction over ticks by itself"},
	{name: "downgrade-check-time", kind: kindDuration, status: flagIgnored, reason: "cluster downgrades are not supported"},
}

// refusedError is a flag, gate or configuration key cairn refuses.
type refusedError struct{ setting string }

func (e refusedError) Error() string {
	return e.setting + " is not supported (see docs/compatibility.md)"
}

// options are the values of cairn's implemented flags, before they are
// checked and turned into a member.Config.
type options struct {
	configFile               string
	name                     string
	dataDir                  string
	listenClientURLs         string
	advertiseClientURLs      string
	listenPeerURLs           string
	initialAdvertisePeerURLs string
	initialCluster           string
	initialClusterToken      string
	initialClusterState      string
	heartbeatMs              uint
	electionMs               uint
	snapshotCount            uint64
	snapshotCatchUpEntries   uint64
	maxRequestBytes          uint
	quotaBackendBytes        int64
	maxTxnOps                uint
	bcryptCost               int
	authToken                string
	authTokenTTLSeconds      uint
	listenMetricsURLs        string
	enablePprof              bool
	logger                   string
	logOutputs               string
	logLevel                 string
	logFormat                string
	memoryBudget             string
	featureGates             featureGates
	showVersion              bool
	checkConfig              bool

	maxConcurrentStreams        uint64
	grpcKeepAliveMinTime        time.Duration
	grpcKeepAliveInterval       time.Duration
	grpcKeepAliveTimeout        time.Duration
	watchProgressNotifyInterval time.Duration
	preVote                     bool
	initialElectionTickAdvance  bool
	strictReconfigCheck         bool
	maxLearners                 int
	unsafeNoFsync               bool
	forceNewCluster             bool
	autoCompactionMode          string
	autoCompactionRetention     string

	// tls and ops are the TLS flags (tlsflags.go) and the operations
	// flags (ops_flags.go), which register and apply themselves.
	tls *tlsFlags
	ops opsFlags
}

// register adds the implemented flags to fs, with etcd's names and defaults.
func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.configFile, "config-file", "", "Path to the server configuration file (etcd's YAML format). Other flags and ETCD_* variables are then ignored.")
	fs.StringVar(&o.name, "name", "default", "Human-readable name for this member.")
	fs.StringVar(&o.dataDir, "data-dir", "", "Path to the data directory (default \"${name}.cairn\").")
	fs.StringVar(&o.listenClientURLs, "listen-client-urls", "http://localhost:2379", "List of URLs to listen on for client traffic.")
	fs.StringVar(&o.advertiseClientURLs, "advertise-client-urls", "http://localhost:2379", "List of this member's client URLs to advertise to the public.")
	fs.StringVar(&o.listenPeerURLs, "listen-peer-urls", "http://localhost:2380", "List of URLs to listen on for peer traffic.")
	fs.StringVar(&o.initialAdvertisePeerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.StringVar(&o.initialCluster, "initial-cluster", "", "Initial cluster configuration for bootstrapping (default \"${name}=${initial-advertise-peer-urls}\").")
	fs.StringVar(&o.initialClusterToken, "initial-cluster-token", "etcd-cluster", "Initial cluster token for the cluster during bootstrap.")
	fs.StringVar(&o.initialClusterState, "initial-cluster-state", "new", "Initial cluster state ('new' or 'existing').")
	fs.UintVar(&o.heartbeatMs, "heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&o.electionMs, "election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
	fs.Uint64Var(&o.snapshotCount, "snapshot-count", 10000, "Number of committed transactions to trigger a snapshot.")
	fs.Uint64Var(&o.snapshotCatchUpEntries, "snapshot-catchup-entries", 5000, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	fs.UintVar(&o.maxRequestBytes, "max-request-bytes", uint(etcdapi.DefaultLimits.MaxRequestBytes), "Maximum client request size in bytes the server will accept.")
	fs.Int64Var(&o.quotaBackendBytes, "quota-backend-bytes", etcdapi.DefaultLimits.QuotaBackendBytes, "Maximum size of the database on disk, in bytes; beyond it, writes that add keys fail with database space exceeded. 0 means the default.")
	fs.UintVar(&o.maxTxnOps, "max-txn-ops", uint(etcdapi.DefaultLimits.MaxTxnOps), "Maximum number of operations permitted in a transaction.")
	fs.IntVar(&o.bcryptCost, "bcrypt-cost", bcrypt.DefaultCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	fs.StringVar(&o.authToken, "auth-token", auth.TokenKindSimple, "Specify auth token specific options: 'simple', or 'jwt,pub-key=<path>,priv-key=<path>,sign-method=<method>,ttl=<duration>'.")
	fs.UintVar(&o.authTokenTTLSeconds, "auth-token-ttl", 300, "The lifetime in seconds of the auth token.")
	fs.StringVar(&o.listenMetricsURLs, "listen-metrics-urls", "", "List of URLs to listen on for the HTTP endpoints /health, /livez, /readyz, /version, /metrics and, with --enable-pprof, /debug/pprof.")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server (under /debug/pprof on --listen-metrics-urls).")
	fs.StringVar(&o.logger, "logger", "zap", "Structured logging; only 'zap' (etcd's name for it) is accepted.")
	fs.StringVar(&o.logOutputs, "log-outputs", "default", "Comma-separated log targets: 'default' or 'stderr', 'stdout', 'systemd/journal' (stderr, which systemd keeps in its journal) or file paths.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Configures log level: debug, info, warn, error, panic or fatal.")
	fs.StringVar(&o.logFormat, "log-format", "json", "Configures log format: json or console.")
	fs.StringVar(&o.memoryBudget, "memory-budget", formatBytes(node.DefaultMemoryBudgetBytes), "Memory the member's caches of user data and the Go runtime share, in bytes or with a KiB, MiB or GiB suffix; resident memory stays within it under sustained writes (see docs/architecture.md, Memory budgets).")
	fs.Var(&o.featureGates, "feature-gates", "Comma-separated Gate=true|false pairs of etcd's feature gates (see docs/compatibility.md for the ones cairn accepts).")
	fs.BoolVar(&o.showVersion, "version", false, "Print the version and exit.")
	fs.BoolVar(&o.checkConfig, "check-config", false, "Check the flags, ETCD_* variables and configuration file, print what cairn ignores, and exit: status 0 if cairn accepts them all, 2 if not.")
	fs.Uint64Var(&o.maxConcurrentStreams, "max-concurrent-streams", math.MaxUint32, "Maximum concurrent streams that each client can open at a time.")
	fs.DurationVar(&o.grpcKeepAliveMinTime, "grpc-keepalive-min-time", 5*time.Second, "Minimum duration interval that a client should wait before pinging server.")
	fs.DurationVar(&o.grpcKeepAliveInterval, "grpc-keepalive-interval", 2*time.Hour, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&o.grpcKeepAliveTimeout, "grpc-keepalive-timeout", 20*time.Second, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	fs.BoolVar(&o.preVote, "pre-vote", true, "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.")
	fs.BoolVar(&o.initialElectionTickAdvance, "initial-election-tick-advance", true, "Whether to fast-forward initial election ticks on boot for faster election.")
	fs.BoolVar(&o.strictReconfigCheck, "strict-reconfig-check", true, "Reject reconfiguration requests that would cause quorum loss.")
	fs.IntVar(&o.maxLearners, "max-learners", 1, "Set the max number of learner members allowed in the cluster membership.")
	fs.BoolVar(&o.unsafeNoFsync, "unsafe-no-fsync", false, "Disables fsync, unsafe, will cause data loss. For tests only.")
	fs.BoolVar(&o.forceNewCluster, "force-new-cluster", false, "Force to create a new one-member cluster.")
	fs.StringVar(&o.autoCompactionMode, "auto-compaction-mode", "periodic", "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.")
	fs.StringVar(&o.autoCompactionRetention, "auto-compaction-retention", "0", "Auto compaction retention length. 0 means disable auto compaction.")
	fs.DurationVar(&o.watchProgressNotifyInterval, "watch-progress-notify-interval", defaultWatchProgressNotifyInterval, "Duration of periodical watch progress notification.")
	o.tls = addTLSFlags(fs)
	o.ops = addOpsFlags(fs)
}

// newFlagSet returns a flag set of every flag cairn accepts, reading into
// o, that prints nothing itself: run reports errors in one line.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o.register(fs)
	for i := range etcdOnlyFlags {
		f := &etcdOnlyFlags[i]
		fs.Var(&etcdOnlyValue{spec: f}, f.name, f.reason)
	}
	return fs
}

// etcdOnlyValue holds the text given to an etcd flag cairn does not
// implement.
type etcdOnlyValue struct {
	spec  *etcdOnlyFlag
	value string
	set   bool
}

func (v *etcdOnlyValue) String() string {
	if v == nil || v.spec == nil {
		return ""
	}
	return v.value
}

func (v *etcdOnlyValue) Set(s string) error {
	if err := checkKind(v.spec.kind, s); err != nil {
		return err
	}
	v.value, v.set = s, true
	return nil
}

// IsBoolFlag lets a boolean flag stand alone (--memory-mlock).
func (v *etcdOnlyValue) IsBoolFlag() bool { return v.spec.kind == kindBool }

// checkKind refuses text that etcd would not parse as the flag's kind.
func checkKind(kind valueKind, s string) error {
	var err error
	switch kind {
	case kindBool:
		_, err = strconv.ParseBool(s)
	case kindInt:
		_, err = strconv.ParseInt(s, 10, 64)
	case kindDuration:
		_, err = time.ParseDuration(s)
	}
	return err
}

// sameValue reports whether a and b mean the same value of kind.
func sameValue(kind valueKind, a, b string) bool {
	switch kind {
	case kindBool:
		x, errX := strconv.ParseBool(a)
		y, errY := strconv.ParseBool(b)
		return errX == nil && errY == nil && x == y
	case kindInt:
		x, errX := strconv.ParseInt(a, 10, 64)
		y, errY := strconv.ParseInt(b, 10, 64)
		return errX == nil && errY == nil && x == y
	case kindDuration:
		x, errX := time.ParseDuration(a)
		y, errY := time.ParseDuration(b)
		return errX == nil && errY == nil && x == y
	}
	return strings.TrimSpace(a) == strings.TrimSpace(b)
}

// checkEtcdOnlyFlags refuses the refused flags set to anything but their
// accepted value, and returns a notice for each ignored flag that was set.
func checkEtcdOnlyFlags(fs *flag.FlagSet) (notices []string, err error) {
	fs.Visit(func(f *flag.Flag) {
		v, ok := f.Value.(*etcdOnlyValue)
		if !ok || err != nil {
			return
		}
		switch v.spec.status {
		case flagRefused:
			if !sameValue(v.spec.kind, v.value, v.spec.acceptedValue) {
				err = refusedError{setting: "--" + f.Name}
			}
		case flagIgnored:
			notices = append(notices, fmt.Sprintf("--%s=%s is accepted and ignored: %s", f.Name, v.value, v.spec.reason))
		}
	})
	return notices, err
}

// flagKind is how a configuration file writes the value of flag f.
func flagKind(f *flag.Flag) valueKind {
	if v, ok := f.Value.(*etcdOnlyValue); ok {
		return v.spec.kind
	}
	getter, ok := f.Value.(flag.Getter)
	if !ok {
		return kindString
	}
	switch getter.Get().(type) {
	case bool:
		return kindBool
	case time.Duration:
		return kindDuration
	case int, int64, uint, uint64:
		return kindInt
	}
	return kindString
}

// errHelp asks run to print the usage and exit 0.
var errHelp = errors.New("help requested")

// usage writes the implemented flags with their defaults.
func usage(w io.Writer) {
	var o options
	fs := newFlagSet(&o)
	fmt.Fprintf(w, "Usage: cairn [flags]\n\nEvery flag of etcd %s is accepted; the ones below are implemented, the others\nare ignored or refused as docs/compatibility.md lists. ETCD_<FLAG> variables set flags.\n\n", etcdapi.APIVersion)
	fs.VisitAll(func(f *flag.Flag) {
		if _, etcdOnly := f.Value.(*etcdOnlyValue); etcdOnly {
			return
		}
		fmt.Fprintf(w, "  --%s '%s'\n    \t%s\n", f.Name, f.DefValue, f.Usage)
	})
}
