package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/durable"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
)

// Rand is the node's only source of randomness. The production driver
// passes a generator seeded by the operating system; the simulator one seeded from
// its run's seed.
type Rand interface {
	Uint64() uint64
}

// Config configures a Node. Zero values take the defaults that
// EnsureDefaults documents.
type Config struct {
	// ID is this member's raft ID, non-zero.
	ID uint64
	// InitialVoters are the raft IDs of the founding members. They are used
	// only when Dir holds no data yet: the log is bootstrapped with this
	// configuration. Every founding member must be given the same set.
	InitialVoters []uint64
	// InitialMembers, optional, are the founding members' metadata (name,
	// peer URLs) recorded at bootstrap for MemberList.
	InitialMembers []*membershippb.Member
	// Join starts a member added to a running cluster: with no data it does
	// not bootstrap, and waits for the leader's snapshot.
	Join bool
	// ForceNewCluster restarts a member that has data as a one-member
	// cluster keeping its data, member ID and cluster ID (etcd's
	// --force-new-cluster, forcenew.go); without data it changes nothing.
	ForceNewCluster bool

	// FS is the filesystem Pebble uses. Default: vfs.Default (the OS).
	FS vfs.FS
	// Dir is the directory of the member's Pebble database, on FS.
	Dir string

	// ElectionTicks is the number of Ticks without a leader's heartbeat
	// after which a follower campaigns. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the number of Ticks between a leader's heartbeats.
	// Default 1.
	HeartbeatTicks int
	// ReadIndexRetryTicks is how long a linearizable read waits for raft to
	// confirm its read index before the node asks again (raft drops read
	// requests silently when there is no leader). Default ElectionTicks.
	ReadIndexRetryTicks int
	// MaxSizePerMsgBytes bounds the entries carried by one append message.
	// Default 1 MiB.
	MaxSizePerMsgBytes uint64
	// MaxInflightMsgs bounds the append messages in flight to one follower.
	// Default 256.
	MaxInflightMsgs int
	// SnapshotCount is how many applied entries the log keeps before it is
	// truncated (etcd's --snapshot-count). Default 10000.
	SnapshotCount uint64
	// SnapshotCatchUpEntries is how many entries a truncation keeps, so a
	// member slightly behind catches up from the log rather than a
	// snapshot. Default 5000.
	SnapshotCatchUpEntries uint64
	// RequestTimeoutTicks is how long a write that raft dropped for want of
	// a leader keeps being proposed again, once a tick, before it fails
	// with "etcdserver: request timed out": like etcd, a write waits for a
	// leader rather than failing at once. Default 70 (7 s at 100 ms ticks,
	// etcd's request timeout plus two election timeouts).
	RequestTimeoutTicks int

	// DisablePreVote turns off raft's Pre-Vote (etcd's --pre-vote=false).
	// Default: Pre-Vote on.
	DisablePreVote bool
	// InitialElectionTickAdvance fast-forwards a member's election ticks
	// when it opens, so that a member that finds no leader campaigns after
	// one randomised tick or more rather than a whole election timeout
	// (etcd's --initial-election-tick-advance, on there by default).
	// Default off; cmd/cairn follows etcd.
	InitialElectionTickAdvance bool
	// MaxLearners is how many learners the member API lets a cluster have
	// (etcd's --max-learners). Default 1.
	MaxLearners int
	// DisableStrictReconfigCheck lets the member API make changes that
	// leave fewer started or active voters than a quorum (etcd's
	// --strict-reconfig-check=false). Default: checks on.
	DisableStrictReconfigCheck bool
	// UnsafeNoFsync commits raft entries without fsync (etcd's
	// --unsafe-no-fsync): a crash of the machine loses acknowledged
	// writes. For tests only.
	UnsafeNoFsync bool

	// AutoCompactionMode makes the leader compact the keyspace by itself
	// (etcd's --auto-compaction-mode; autocompact.go): periodic keeps
	// AutoCompactionRetention of history, revision keeps
	// AutoCompactionRetainRevisions revisions. Default off.
	AutoCompactionMode            AutoCompactionMode
	AutoCompactionRetention       time.Duration
	AutoCompactionRetainRevisions int64

	// Limits are the request limits the member enforces.
	Limits Limits
	// RangeStreamFirstChunkKeys is the limit of a RangeStream's first chunk
	// (rangestream.go); later chunks double or halve it towards
	// Limits.MaxRequestBytes. Default 10, etcd 3.7's; the simulator draws
	// smaller ones so that its few keys take several chunks.
	RangeStreamFirstChunkKeys int64
	// ClusterID names the cluster in every response header.
	ClusterID uint64
	// ClusterToken is the cluster's --initial-cluster-token, from which
	// the member API derives a new member's ID.
	ClusterToken string

	// MaxCompactKeysPerTick bounds the keys whose old versions are removed
	// per tick while a compaction is pending, so compaction never stops the
	// world. Default 10000.
	MaxCompactKeysPerTick int

	// CacheBytes is the size of Pebble's block cache: the part of the
	// keyspace and log kept in memory. Default 128 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one memtable of the applied state's
	// database (the raft log's are a quarter of it); recent writes are
	// served from it. Each of the log's memtables has a write-ahead log
	// file of about its size, and Pebble keeps a few for reuse, so this
	// also sets part of a member's fixed disk overhead. Default 16 MiB.
	MemTableBytes int64

	// TickInterval is the time one Tick stands for (etcd's
	// --heartbeat-interval); with ElectionTicks it sets the minimum lease
	// TTL and how much a new leader extends leases. Default 100 ms.
	TickInterval time.Duration
	// LeaseCheckpointInterval, when positive, turns lease checkpoints on
	// (etcd's LeaseCheckpoint feature gate, lease_checkpoint.go): the
	// leader replicates each lease's remaining TTL this often, so a new
	// leader continues it instead of restarting it in full. etcd 3.7.3
	// checkpoints every 5 minutes; cmd/cairn follows it. Default 0: off.
	LeaseCheckpointInterval time.Duration
	// Clock is the time leases expire by, read only by the leader. Default:
	// Ticks × TickInterval since the Unix epoch (for single-goroutine
	// drivers such as tests; the server passes the wall clock).
	Clock Clock

	// Rand is the source of request IDs, lease IDs and the random part of
	// simple auth tokens. Required.
	Rand Rand
	// AuthTokenTTL is how long a simple auth token stays valid after its
	// last use (--auth-token-ttl), by the member's Clock. Default 300 s.
	AuthTokenTTL time.Duration
	// AuthJWT, if set, makes Authenticate issue etcd's JSON Web Tokens
	// with its method, keys and TTL instead of simple tokens (--auth-token
	// jwt,...; AuthTokenTTL then plays no part). Default nil: simple
	// tokens. Members with the same keys accept each other's tokens; one
	// given only a public key verifies them and issues none.
	AuthJWT *auth.JWT
	// Logger receives raft's log lines. Default: discards everything but
	// Fatal and Panic, which panic.
	Logger raft.Logger
	// PebbleLogger receives Pebble's log lines. Default: Info lines are
	// dropped, Errorf goes to Logger, Fatalf panics.
	PebbleLogger pebble.Logger
	// PebbleOptions, if set, adjusts the Pebble options before Open (the
	// simulator uses it to make background work deterministic).
	PebbleOptions func(*pebble.Options)
	// CorruptCheckTicks is how often the leader runs etcd's periodic
	// corruption check (--corrupt-check-time; corrupt.go). Default 0: off.
	CorruptCheckTicks int
	// CompactHashCheckTicks is how often the leader runs etcd's
	// compaction hash check when a compaction applied since the last one
	// (--compact-hash-check-time with the CompactHashCheck gate;
	// corrupt.go). Default 0: off.
	CompactHashCheckTicks int

	// Knobs plant bugs for tests that prove the checkers can fail. The zero
	// value plants none. Never set in production.
	Knobs TestingKnobs

	// RaftEntryCacheBytes bounds the raft entries kept in memory after they
	// are appended, so that raft reads them back without Pebble (their
	// Data plus a fixed overhead each). One of the memory budgets
	// (SplitMemoryBudget, docs/architecture.md "Memory budgets").
	// Default 8 MiB.
	RaftEntryCacheBytes int64
	// LatestVersionCacheBytes bounds the cache of keys' newest version
	// metadata that spares a put or a delete the read of the version it
	// replaces (mvcc.Options.LatestCacheBytes; about 50 bytes and the key
	// per key, outside the Go heap). One of the memory budgets. Default 8 MiB; negative turns
	// the cache off.
	LatestVersionCacheBytes int64
	// LiveKeySetBytes bounds the set of live keys' fingerprints that tells
	// a put of a key the cache of newest versions misses that the key is
	// new (mvcc.Options.LiveKeySetBytes; 4-byte slots at most 3/4 full,
	// so 5-11 bytes per key, outside the Go heap). A member whose keys outgrow it reads the key index for such
	// puts, as without it. One of the memory budgets. Default 4 MiB,
	// about 780,000 keys; negative turns the set off.
	LiveKeySetBytes int64
	// ReadCacheBytes bounds the cache of newest versions, values included,
	// that answers single-key ranges without Pebble (mvcc.Options.ReadCacheBytes;
	// the key, the stored value and 16 bytes per key, outside the Go heap).
	// One of the memory budgets. Default 8 MiB; negative turns the cache
	// off.
	ReadCacheBytes int64
	// LogSegmentBytes is the size past which the raft log starts a new
	// segment file (raftlog.SegmentBytesDefault, 64 MiB, if 0). Segments
	// are deleted whole once the log is truncated past them.
	LogSegmentBytes int64
	// MaxCommittedSizePerReadyBytes bounds the committed entries one
	// Process applies (raft's MaxCommittedSizePerReady; at least one entry
	// is applied). Default (0): a quarter of a memtable, as the node's
	// databases open with it (applyBatchBytes): large
	// enough that a burst of large values is applied together, small
	// enough that the batch applying them stays a plain memtable write
	// (Pebble turns a batch of half a memtable or more into a memtable of
	// its own and flushes it at once).
	MaxCommittedSizePerReadyBytes uint64
	// SeparatedValueBytesMin is the size from which Pebble stores a value
	// (a key's version: the client's value and a few bytes of revisions)
	// in a blob file rather than in its sstable, so that compactions and
	// scans over keys do not read it. Default 256 bytes (node/values.go).
	SeparatedValueBytesMin int

	// backgroundFailure records what Pebble reports failed on its own
	// goroutines, for every state database the node opens (Open sets it).
	backgroundFailure *durable.BackgroundFailure
}

// TestingKnobs are deliberate defects that the simulator's planted-bug tests
// switch on to show its checks catch them.
type TestingKnobs struct {
	// AckBeforeDurable completes writes when they are proposed on the
	// leader, before their entry is committed or durable.
	AckBeforeDurable bool
	// ReadWithoutReadIndex completes linearizable reads at once from local
	// state, without confirming leadership through ReadIndex.
	ReadWithoutReadIndex bool
	// SkipAppliedIndex stops writing the applied index with the state it
	// produces, so a restart re-applies entries.
	SkipAppliedIndex bool
	// CutLogBeforeSwitch makes an install cut the raft log at the
	// snapshot, synced, before naming the snapshot's database in CURRENT:
	// a crash between the two leaves the old applied state with a log
	// that no longer holds the entries after it.
	CutLogBeforeSwitch bool
	// TruncateLogBeforeStateFlush truncates the raft log without waiting
	// for a flush of the applied state to make it durable that far: a
	// crash before the state's next flush leaves it older than the log's
	// start.
	TruncateLogBeforeStateFlush bool
	// ReadBeforeApplied releases a linearizable read once its ReadIndex is
	// confirmed, without waiting for this member to apply up to it.
	ReadBeforeApplied bool
	// KeepAliveWithoutReadIndex renews a lease on a member that believes
	// it leads at once, without the ReadIndex that confirms it still does.
	KeepAliveWithoutReadIndex bool
	// ReadIndexWithoutHeartbeat lets the leader confirm a ReadIndex from
	// its own commit index, without a heartbeat round to a quorum (raft's
	// ReadOnlyLeaseBased): a leader deposed without knowing it, frozen or
	// cut off, serves stale reads.
	ReadIndexWithoutHeartbeat bool
	// SkipApplyAuthCheck applies writes without checking their
	// permissions again against the auth state of their entry: a
	// permission revoked between a write's admission and its apply is
	// bypassed.
	SkipApplyAuthCheck bool
	// ServeLocalStaleView serves a serializable range (ServeLocal) from
	// the keyspace one revision before the published one, as a reader
	// that kept a view from before the last Publish would, while its
	// header reports the published revision: a torn read.
	ServeLocalStaleView bool
	// LeaseTimeFromTicks ignores the driver's lease Clock and measures
	// lease time in ticks, so a member whose ticks run fast expires leases
	// early.
	LeaseTimeFromTicks bool
	// WatchSkipsHandoverEvent makes the watch hub (node/watch) lose the
	// first live revision of a watcher a catch-up hands over to the live
	// feed.
	WatchSkipsHandoverEvent bool
	// WatchResyncForgetsWatcher makes the watch hub drop a watcher when its
	// member installs a snapshot, instead of catching it up.
	WatchResyncForgetsWatcher bool
	// CompactDropsNewestVersion makes MVCC compaction remove a key's
	// version made exactly at the compacted revision when the key has a
	// newer one (issue 11): a read at the compacted revision misses it.
	CompactDropsNewestVersion bool
	// ReadCacheKeepsDeleted makes a delete leave the version it deleted
	// in the read cache (mvcc.Options.ReadCacheKeepsDeleted): gets then
	// find keys that no longer exist.
	ReadCacheKeepsDeleted bool
	// FollowerSendsAhead lets a follower send its messages, acknowledgements
	// of appended entries included, before it persists those entries, as
	// only a leader may (Node.sendsAhead): a crash can then lose an entry
	// a quorum was counted on, and with it an acknowledged write.
	FollowerSendsAhead bool
	// CorruptAppliedValue makes this member store one put in
	// corruptPutEveryRevisions with a value that differs from the one
	// proposed, silently (its watch events carry the proposed value): its
	// keyspace is no longer the cluster's, which the corruption checks
	// must turn into a CORRUPT alarm.
	CorruptAppliedValue bool
	// RangeStreamUnpinned reads every chunk of a RangeStream at the latest
	// revision instead of the one its first chunk read, so a stream that
	// writes interleave returns keys of several revisions under one
	// header.
	RangeStreamUnpinned bool
	// LeaseCheckpointIgnoredAtPromotion makes a promoted lessor give every
	// lease its full TTL, as if no checkpoint had applied.
	LeaseCheckpointIgnoredAtPromotion bool
}

// readOnlyOption is how raft confirms a ReadIndex: with a heartbeat round
// to a quorum, unless a planted bug says otherwise.
func (k TestingKnobs) readOnlyOption() raft.ReadOnlyOption {
	if k.ReadIndexWithoutHeartbeat {
		return raft.ReadOnlyLeaseBased
	}
	return raft.ReadOnlySafe
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.AuthTokenTTL == 0 {
		c.AuthTokenTTL = 300 * time.Second
	}
	if c.ReadIndexRetryTicks == 0 {
		c.ReadIndexRetryTicks = c.ElectionTicks
	}
	if c.MaxSizePerMsgBytes == 0 {
		c.MaxSizePerMsgBytes = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxLearners == 0 {
		c.MaxLearners = 1
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = 5000
	}
	if c.RequestTimeoutTicks == 0 {
		c.RequestTimeoutTicks = 70
	}
	c.Limits.ensureDefaults()
	if c.RangeStreamFirstChunkKeys == 0 {
		c.RangeStreamFirstChunkKeys = defaultRangeStreamFirstChunkKeys
	}
	if c.MaxCompactKeysPerTick == 0 {
		c.MaxCompactKeysPerTick = 10000
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 128 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 16 << 20
	}
	if c.Logger == nil {
		c.Logger = quietLogger{}
	}
	if c.PebbleLogger == nil {
		c.PebbleLogger = pebbleLogger{c.Logger}
	}
	if c.RaftEntryCacheBytes == 0 {
		c.RaftEntryCacheBytes = 8 << 20
	}
	if c.LatestVersionCacheBytes == 0 {
		c.LatestVersionCacheBytes = 8 << 20
	}
	if c.ReadCacheBytes == 0 {
		c.ReadCacheBytes = 8 << 20
	}
	if c.LiveKeySetBytes == 0 {
		c.LiveKeySetBytes = 4 << 20
	}
	if c.SeparatedValueBytesMin == 0 {
		c.SeparatedValueBytesMin = separatedValueBytesMinDefault
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("node: ID must be non-zero")
	case c.Dir == "":
		return errors.New("node: Dir must be set")
	case c.Rand == nil:
		return errors.New("node: Rand must be set")
	case c.AutoCompactionMode == AutoCompactionPeriodic && c.AutoCompactionRetention <= 0:
		return errors.New("node: periodic AutoCompactionMode needs a positive AutoCompactionRetention")
	case c.AutoCompactionMode == AutoCompactionRevision && c.AutoCompactionRetainRevisions <= 0:
		return errors.New("node: revision AutoCompactionMode needs a positive AutoCompactionRetainRevisions")
	case c.CorruptCheckTicks < 0 || c.CompactHashCheckTicks < 0:
		return errors.New("node: CorruptCheckTicks and CompactHashCheckTicks must not be negative")
	case c.HeartbeatTicks >= c.ElectionTicks:
		return fmt.Errorf("node: HeartbeatTicks (%d) must be below ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	return nil
}

// quietLogger discards raft's chatter; a broken raft invariant still stops
// the node loudly.
type quietLogger struct{}

func (quietLogger) Debug(...any)            {}
func (quietLogger) Debugf(string, ...any)   {}
func (quietLogger) Info(...any)             {}
func (quietLogger) Infof(string, ...any)    {}
func (quietLogger) Warning(...any)          {}
func (quietLogger) Warningf(string, ...any) {}
func (quietLogger) Error(...any)            {}
func (quietLogger) Errorf(string, ...any)   {}
func (quietLogger) Fatal(v ...any)          { panic(fmt.Sprint(append([]any{"raft: fatal: "}, v...)...)) }
func (quietLogger) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf("raft: fatal: "+f, v...))
}
func (quietLogger) Panic(v ...any) { panic(fmt.Sprint(append([]any{"raft: "}, v...)...)) }
func (quietLogger) Panicf(f string, v ...any) {
	panic(fmt.Sprintf("raft: "+f, v...))
}
