package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/durable"
	"github.com/cairn-db/cairn/node/lease"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// bootstrapIndex and bootstrapTerm are where a new cluster's log starts:
// every founding member writes the same truncated log at this point with the
// founding configuration, so their logs agree from the first entry on.
const (
	bootstrapIndex = 1
	bootstrapTerm  = 1
)

// ErrStopped is returned by calls on a closed node.
var ErrStopped = errors.New("node: stopped")

// Node is one cairn member. See the package documentation for its contract.
type Node struct {
	cfg Config
	// db holds the applied state: the keyspace, leases, members, alarms,
	// auth and the applied index. It has no write-ahead log: its writes
	// are durable once Pebble flushes them, and until then the raft log
	// holds the entries that made them (see "The raft log and the applied state" in
	// docs/architecture.md).
	db *pebble.DB
	// cache is db's block cache.
	cache *pebble.Cache
	// log holds the raft log and HardState in segment files, written with
	// one synced commit per Ready.
	log *raftlog.Storage
	// raftLog is the log as raft reads it: log, with its most recent
	// entries also kept in memory (recent.go).
	raftLog raftLog
	store   *mvcc.Store
	view    StoreView
	raw     *raft.RawNode

	ids   idGenerator
	ticks uint64
	// autoCompactor, if automatic compaction is on, decides when the
	// leader compacts (autocompact.go).
	autoCompactor *autoCompactor
	// leaderlessTicks counts the ticks since the member last knew a
	// leader (leaderless.go).
	leaderlessTicks int
	reads           readQueue
	// completed are completions produced outside Process (by Start and
	// Tick), handed out by the next Process.
	completed []Completion
	// parked are writes raft dropped for want of a leader (request.go).
	parked []parkedProposal
	// batched are the writes proposed since the last Process, which hands
	// them to raft together (submitBatched).
	batched []batchedProposal
	// proposals are this member's own proposals, decoded (proposals.go).
	proposals proposalCache
	// memberChanges are the member API's changes proposed here, by request
	// ID, until they apply (memberapi.go).
	memberChanges map[uint64]pendingMemberChange
	// transfers are MoveLeader requests waiting for their target to lead
	// (moveleader.go).
	transfers []leaderTransfer
	// dbSizeBytes is the database's size on disk as last sampled, plus the
	// bytes of the entries applied since, for the quota.
	dbSizeBytes int64
	// stateFlushes paces the applied state's flushes (logdb.go).
	stateFlushes stateFlushes
	// physical holds completions of physical compactions, released when the
	// store has removed every obsolete version.
	physical []Completion
	applied  uint64
	// lowestMatch and visitMatch are entriesNoLongerRead's: visitMatch is
	// made once, as a closure made per call was an allocation per Process.
	lowestMatch uint64
	visitMatch  func(id uint64, _ raft.ProgressType, pr tracker.Progress)
	// compactedAtTick is the tick of the last compaction step.
	compactedAtTick uint64
	// failed is set once storage failed; the member only stops after it.
	failed error
	// removed is set once this member's removal is applied.
	removed bool
	// installed is set between a snapshot install and its report in Output.
	installed bool
	// sentAhead is a leader's Ready whose messages went out before its
	// entries were persisted (sendsAhead); the next Process persists and
	// applies it before taking another Ready.
	sentAhead *raft.Ready
	members   memberList
	// alarms are the active alarms as of the applied index (alarm.go).
	alarms alarmList
	// corruption is this member's part in the corruption checks
	// (corrupt.go).
	corruption corruptionChecks
	// downgrade is the downgrade in progress (downgrade.go).
	downgrade downgradeCell
	// noSpaceRaised says this member proposed its NOSPACE alarm at tick
	// noSpaceRaisedAtTick and has not seen it apply.
	noSpaceRaised       bool
	noSpaceRaisedAtTick uint64
	// lastSnapshot is the newest checkpoint made for sending, if any.
	lastSnapshot *raftpb.Snapshot

	status statusCell
	// metrics are the core's counters (metrics.go).
	metrics nodeMetrics
	// backups numbers this member's backups, for their directory names;
	// the first one clears those a crash left (backup.go).
	backups        atomic.Uint64
	backupsCleared sync.Once

	// lessor holds the leases applied so far; see lease.go.
	lessor *lease.Lessor
	// lessorTerm is the term in which this member's lessor was last
	// promoted: it is the leases' authority only while raft leads that
	// very term (demoteStaleLessor).
	lessorTerm uint64
	// authStore holds the users, roles and auth settings applied so far
	// (authrequests.go).
	authStore *auth.Store
	// tokens are the simple tokens this member issued (authcheck.go).
	tokens *auth.Tokens
	// authView is the auth state readers on other goroutines check
	// against, published by the loop (authcheck.go).
	authView atomic.Pointer[authState]
	// authNowNanos is the member's clock at the last tick, the time
	// tokens expire by on every goroutine.
	authNowNanos atomic.Int64
	// authChanged and tokensChanged say the batch being applied changed
	// the auth store, or only the tokens.
	authChanged, tokensChanged bool
	// checkpoints is the leader's state of lease checkpointing
	// (lease_checkpoint.go).
	checkpoints leaseCheckpoints
}

// Output is what one Process call asks the driver to do.
type Output struct {
	// Messages go to peers. The entries and HardState they depend on are
	// already durable.
	Messages []*raftpb.Message
	// Done are the requests that completed, in the order they completed.
	Done []Completion
	// MembershipChanged says the member list changed (Members).
	MembershipChanged bool
	// SnapshotInstalled says the keyspace was replaced by a snapshot's:
	// watchers must catch up from the store, not from Events.
	SnapshotInstalled bool
	// Applied are requests whose entry applied but whose completion waits
	// for work that may take longer than a request's timeout: a physical
	// compaction, done when every old version is removed (etcd waits for
	// it without a deadline). A driver that times requests out stops
	// timing these.
	Applied []uint64
	// HashRequests are hashes of the keyspace the corruption checks need
	// (corrupt.go): the driver computes each with HashKV, off the loop if
	// it can, and hands the answer to ReportHash.
	HashRequests []HashRequest
	// Events are the keyspace changes applied by this Process call, in
	// revision order, with Kv set: the feed of watches on this member. A
	// put carries no PrevKv, a delete only when its request asked for
	// prev_kv; the watch hub reads the previous version for the watchers
	// that want it. Readers of Store already see them.
	Events []*mvccpb.Event
}

// Completion reports the end of one request started by Start. Read its
// outcome with Result.
type Completion struct {
	ID uint64
	// Response is etcd's response to the request, header complete; nil for
	// a keyspace read, which Result serves.
	Response proto.Message
	// Err is the request's failure, an rpctypes error a client may see (or
	// ErrNotLeader, for the driver to forward).
	Err error
	// read is set for a keyspace read that may now be served.
	read *deferredRead
	// jwt is set for an Authenticate that issued a JSON Web Token: Result
	// signs it (authrequests.go).
	jwt *issuedJWT
}

// Open opens (or creates and bootstraps) the member's databases in
// cfg.Dir.
func Open(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.backgroundFailure = durable.NewBackgroundFailure()
	cache := pebble.NewCache(cfg.CacheBytes)
	db, err := openPebble(cfg, cache)
	if err != nil {
		cache.Unref()
		return nil, err
	}
	log, err := openRaftLog(cfg, db, cache)
	if err != nil {
		db.Close()
		cache.Unref()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	release := func() {
		log.Close()
		db.Close()
		cache.Unref()
	}
	defer func() {
		// A panic here is raft refusing the stored state; release the
		// databases before it propagates.
		if r := recover(); r != nil {
			release()
			panic(r)
		}
	}()
	n, err := newNode(cfg, db, log, cache)
	if err != nil {
		release()
		return nil, err
	}
	return n, nil
}

// openPebble opens the member's live state database, creating the
// member's directory on first start and clearing leftovers of an
// interrupted snapshot install.
func openPebble(cfg Config, cache *pebble.Cache) (*pebble.DB, error) {
	if err := cfg.FS.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.Dir, err)
	}
	live, err := liveDBName(cfg.FS, cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := removeStale(cfg.FS, cfg.Dir, live); err != nil {
		return nil, fmt.Errorf("clean %s: %w", cfg.Dir, err)
	}
	return openPebbleAt(cfg, live, cache, stateDB)
}

// createDurably creates dir and syncs the directories above it, so the
// database's directory survives a crash (creating a directory entry is not
// durable until its parent is synced).
func createDurably(fs vfs.FS, dir string) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for d := fs.PathDir(dir); ; d = fs.PathDir(d) {
		if err := durable.SyncDir(fs, d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
		if parent := fs.PathDir(d); parent == d || d == "" || d == "." {
			return nil
		}
	}
}

// pebbleOptions are the options one of a member's databases opens with.
func pebbleOptions(cfg Config, cache *pebble.Cache, kind dbKind) *pebble.Options {
	opts := &pebble.Options{
		FS:           cfg.FS,
		Logger:       cfg.PebbleLogger,
		Cache:        cache,
		MemTableSize: uint64(cfg.MemTableBytes),
		// The raft log is the applied state's write-ahead log: a crash
		// loses the state's unflushed writes, and the entries that made
		// them are applied again.
		DisableWAL: kind == stateDB,
	}
	separateLargeValues(opts, cfg.SeparatedValueBytesMin)
	splitTablesAtRegions(opts)
	filterTables(opts)
	compactLevelZeroLater(opts)
	if kind == pebbleLogDB {
		// Opened only to move its log out (openRaftLog).
		opts.MemTableSize = uint64(cfg.MemTableBytes / 4)
	}
	if cfg.PebbleOptions != nil {
		cfg.PebbleOptions(opts)
	}
	if kind == stateDB && cfg.backgroundFailure != nil {
		cfg.backgroundFailure.Listen(opts)
	}
	return opts
}

// bloomBitsPerKey is the size of the tables' bloom filters: about 1 %
// false positives, 1.25 bytes per key.
const bloomBitsPerKey = 10

// filterTables gives every table a bloom filter of its keys, so that a
// prefix seek for one exact key (a put's read of the key index entry of a
// key the cache of newest versions does not hold) reads no block of a
// table that lacks it. Without filters the seek positions a data block in
// every level, decompressing it when a compaction has just rewritten it.
func filterTables(o *pebble.Options) {
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
}

// dbKind says which kind of Pebble database a member opens: its state, or
// a raft log left in Pebble by an earlier layout, to move out.
type dbKind int

const (
	stateDB dbKind = iota
	// pebbleLogDB is a raft log database of an earlier layout.
	pebbleLogDB
)

func openPebbleAt(cfg Config, name string, cache *pebble.Cache, kind dbKind) (*pebble.DB, error) {
	opts := pebbleOptions(cfg, cache, kind)
	dir := cfg.FS.PathJoin(cfg.Dir, name)
	if err := createDurably(cfg.FS, dir); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble in %s: %w", dir, err)
	}
	return db, nil
}

func newNode(cfg Config, db *pebble.DB, log *raftlog.Storage, cache *pebble.Cache) (*Node, error) {
	n := &Node{cfg: cfg, db: db, log: log, cache: cache, ids: newIDGenerator(cfg.ID, cfg.Rand)}
	n.stateFlushes.memTableBytes = int64(pebbleOptions(cfg, cache, stateDB).MemTableSize)
	n.members.set(map[uint64]*membershippb.Member{})
	var err error
	n.log.SetSnapshotSource(n.makeSnapshot)
	n.raftLog.Storage, n.raftLog.recentBytesMax = n.log, int(cfg.RaftEntryCacheBytes)
	existed := !n.log.IsEmpty()
	if !existed && !cfg.Join {
		if err := n.bootstrap(); err != nil {
			return nil, err
		}
	}
	if n.applied, err = n.recoverLog(); err != nil {
		return nil, err
	}
	// The database holds only flushed tables when it opens (it has no
	// write-ahead log): its applied index is durable.
	n.stateFlushes.durableApplied = n.applied
	if cfg.ForceNewCluster && existed {
		if err := n.forceNewCluster(); err != nil {
			return nil, err
		}
	}
	members, err := loadMembers(db)
	if err != nil {
		return nil, fmt.Errorf("load members: %w", err)
	}
	n.members.set(members)
	alarms, err := loadAlarms(db)
	if err != nil {
		return nil, fmt.Errorf("load alarms: %w", err)
	}
	n.alarms.set(alarms)
	downgrade, err := loadDowngrade(db)
	if err != nil {
		return nil, err
	}
	n.downgrade.p.Store(downgrade)
	if err := n.loadAuth(); err != nil {
		return nil, err
	}
	if n.store, err = n.openStore(); err != nil {
		return nil, fmt.Errorf("open keyspace: %w", err)
	}
	live, err := liveDBName(n.cfg.FS, n.cfg.Dir)
	if err != nil {
		return nil, err
	}
	n.view.publish(n.store, n.db, n.cfg.FS.PathJoin(n.cfg.Dir, live))
	n.dbSizeBytes = n.DiskSpaceUsage()
	if n.raw, err = raft.NewRawNode(n.raftConfig()); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if err := n.reapplyCommitted(); err != nil {
		return nil, err
	}
	n.autoCompactor = newAutoCompactor(&n.cfg, n.ticks, n.store.Rev())
	n.campaignIfAlone()
	n.advanceElectionTicks()
	n.publishStatus()
	return n, nil
}

// reapplyCommitted applies the entries the log holds as committed beyond
// the applied state's last flush, before Open returns: a restarted member
// serves nothing older than it had applied before it stopped, as an etcd
// member replays its write-ahead log before it serves. Nothing waits on
// these entries, so their completions and events go nowhere: a watch hub
// opened after Open starts from the store.
func (n *Node) reapplyCommitted() (err error) {
	var out Output
	defer n.recoverStorageFailure(&out, &err)
	commit := n.log.HardState().GetCommit()
	for range commit - n.applied + 1 {
		if n.applied >= commit || !n.raw.HasReady() {
			return nil
		}
		if err := n.handleReady(&out); err != nil {
			return fmt.Errorf("apply committed entries again: %w", err)
		}
		out = Output{}
	}
	return fmt.Errorf("entries up to %d still not applied again at %d: %w", commit, n.applied, errCorrupt)
}

func (n *Node) raftConfig() *raft.Config {
	return &raft.Config{
		ID:            n.cfg.ID,
		ElectionTick:  n.cfg.ElectionTicks,
		HeartbeatTick: n.cfg.HeartbeatTicks,
		Storage:       &n.raftLog,
		Applied:       n.applied,
		MaxSizePerMsg: n.cfg.MaxSizePerMsgBytes,
		// Raft's default, MaxSizePerMsg, applies one 1 MiB entry per Ready,
		// and so per fsync: large values would go one at a time.
		MaxCommittedSizePerReady: cmp.Or(n.cfg.MaxCommittedSizePerReadyBytes, uint64(n.applyBatchBytes())),
		MaxInflightMsgs:          n.cfg.MaxInflightMsgs,
		CheckQuorum:              true,
		PreVote:                  !n.cfg.DisablePreVote,
		ReadOnlyOption:           n.cfg.Knobs.readOnlyOption(),
		Logger:                   n.cfg.Logger,
	}
}

// bootstrap writes the founding configuration into an empty database.
func (n *Node) bootstrap() error {
	if len(n.cfg.InitialVoters) == 0 {
		return fmt.Errorf("node: %s holds no data and no initial cluster was given", n.cfg.Dir)
	}
	voters := slices.Clone(n.cfg.InitialVoters)
	slices.Sort(voters)
	if !slices.Contains(voters, n.cfg.ID) {
		return fmt.Errorf("node: member %x is not in the initial cluster %x", n.cfg.ID, voters)
	}
	// The state first, made durable by a flush: a crash before the log's
	// commit leaves an empty log, and the next Open bootstraps again,
	// writing the same state.
	state := n.db.NewBatch()
	defer state.Close()
	if err := n.log.Bootstrap(state, bootstrapIndex, bootstrapTerm, &raftpb.ConfState{Voters: voters}); err != nil {
		return err
	}
	if err := setAppliedIndex(state, bootstrapIndex, bootstrapTerm); err != nil {
		return err
	}
	if err := n.bootstrapMembers(state); err != nil {
		return err
	}
	if err := state.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.flushState(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.log.Commit(true); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// campaignIfAlone lets a one-member cluster lead at once instead of waiting
// out an election timeout.
func (n *Node) campaignIfAlone() {
	cs := n.log.ConfState()
	if len(cs.GetVoters()) == 1 && cs.GetVoters()[0] == n.cfg.ID {
		if err := n.raw.Campaign(); err != nil {
			panic(fmt.Sprintf("node: campaign of a single voter: %v", err))
		}
	}
}

// advanceElectionTicks fast-forwards raft's election clock by all but one
// election timeout's ticks, if InitialElectionTickAdvance asks for it: raft
// then campaigns after its randomised extra ticks. Pre-Vote keeps such a
// quick campaign from disrupting a leader the member has not heard yet.
func (n *Node) advanceElectionTicks() {
	if !n.cfg.InitialElectionTickAdvance || n.raw.Status().RaftState == raft.StateLeader {
		return
	}
	for range n.cfg.ElectionTicks - 1 {
		n.raw.Tick()
	}
}

// Close releases the databases. Work not yet returned by Process is lost,
// which is safe: nothing unacknowledged was promised. The applied state is
// not flushed: the next Open applies the raft log's entries since its last
// flush again, as after a crash, so a clean stop exercises recovery too.
// Reads that start after Close fail with ErrStopped; a read still in
// flight is the caller's error (stop serving first), and Close then leaves
// the databases open rather than close them under it.
func (n *Node) Close() error {
	if n.db == nil {
		return ErrStopped
	}
	if readers := n.view.unpublish(n.db); readers > 0 {
		return fmt.Errorf("node: close with %d reads in flight", readers)
	}
	err := errors.Join(n.view.reap(n.removeAll), n.db.Close(), n.log.Close())
	n.cache.Unref()
	n.db, n.cache = nil, nil
	return err
}

// removeAll removes a directory of the member's that is no longer in use;
// a failure leaves garbage that Open removes.
func (n *Node) removeAll(dir string) { _ = n.cfg.FS.RemoveAll(dir) }

// Store is the member's keyspace. Its read methods are safe for concurrent
// use and see every request applied so far on this member.
func (n *Node) Store() *StoreView { return &n.view }

// ID is this member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Tick advances logical time by one tick.
func (n *Node) Tick() {
	n.ticks++
	n.raw.Tick()
	n.trackLeader()
	n.leaseTick()
	n.retryParked()
	n.expireMemberChanges()
	n.finishTransfers()
	n.sampleDBSize()
	n.authTick()
	n.autoCompactTick()
	n.corruptionCheckTick()
}

// Step delivers a message from a peer.
func (n *Node) Step(m *raftpb.Message) error {
	if raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("node: local message %s from the network", m.GetType())
	}
	err := n.raw.Step(m)
	n.demoteStaleLessor()
	if errors.Is(err, raft.ErrStepPeerNotFound) || errors.Is(err, raft.ErrStepLocalMsg) {
		return nil // a message from a removed or unknown member is dropped
	}
	return err
}

// readIndex starts a bare linearizable barrier and returns its ID. When it
// completes, every write acknowledged before it was started has been
// applied on this member. Requests take their barriers through Start; the
// tests use this one to probe the barrier alone.
func (n *Node) readIndex() uint64 {
	id := n.ids.next()
	n.startBarrier(id, Request{})
	return id
}

// startBarrier queues a request behind a ReadIndex round.
func (n *Node) startBarrier(id uint64, req Request) {
	if n.cfg.Knobs.ReadWithoutReadIndex || (n.cfg.Knobs.KeepAliveWithoutReadIndex && req.LeaseKeepAlive != nil) {
		n.finishRead(pendingRead{id: id, req: req})
		return
	}
	n.reads.add(pendingRead{id: id, req: req})
}

// finishRead completes a request whose barrier is behind it: a keyspace
// read is released to be served by Completion.Result; a lease request is
// served here, on the loop, where the lessor lives.
func (n *Node) finishRead(r pendingRead) {
	c := Completion{ID: r.id}
	switch {
	case r.req.isRead():
		c.read = &deferredRead{n: n, req: r.req}
	case r.req.LeaseKeepAlive != nil:
		if n.clearBeforeRenew(r.id, r.req.LeaseKeepAlive) {
			return
		}
		c.Response, c.Err = n.keepAlive(r.req.LeaseKeepAlive)
	case r.req.LeaseTimeToLive != nil:
		c.Response, c.Err = n.timeToLive(r.req.LeaseTimeToLive)
	case r.req.MemberList != nil || r.req.isMemberChange():
		n.finishMemberRequest(r.id, r.req)
		return
	case r.req.Downgrade != nil:
		n.finishDowngrade(r.id, r.req.Downgrade)
		return
	}
	n.completed = append(n.completed, c)
}

// HasReady reports whether Process has work to do.
func (n *Node) HasReady() bool {
	return n.removed || n.failed != nil || n.cfg.backgroundFailure.Err() != nil || n.sentAhead != nil || len(n.batched) > 0 ||
		n.raw.HasReady() || n.reads.hasUnsent() || len(n.completed) > 0 ||
		n.reads.hasReleasable(n.releasableIndex()) || n.reads.resendDue(n.ticks, n.cfg.ReadIndexRetryTicks) ||
		n.compactionDue() || len(n.corruption.wanted) > 0
}

// compactionDue reports whether a pending compaction may take its next
// bounded step: one per tick, so removing old versions never stalls the
// member's other work.
func (n *Node) compactionDue() bool {
	return n.store.CompactPending() && n.compactedAtTick != n.ticks
}

// DiskSpaceUsage is the bytes the member's database occupies on disk; safe
// for concurrent use.
func (n *Node) DiskSpaceUsage() int64 {
	total, _ := n.DBSize()
	return total
}

// ReportUnreachable tells raft that a message to member id could not be
// delivered, so it probes the member instead of streaming to it.
func (n *Node) ReportUnreachable(id uint64) { n.raw.ReportUnreachable(id) }

// ReportSnapshot tells raft whether a snapshot sent to member id arrived.
func (n *Node) ReportSnapshot(id uint64, delivered bool) {
	status := raft.SnapshotFailure
	if delivered {
		status = raft.SnapshotFinish
	}
	n.raw.ReportSnapshot(id, status)
}
