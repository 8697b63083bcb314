package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/node/lease"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
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
	db  *pebble.DB
	log *raftlog.Storage
	// raftLog is the log as raft reads it: log, with its most recent
	// entries also kept in memory (recent.go).
	raftLog raftLog
	store   *mvcc.Store
	view    StoreView
	raw     *raft.RawNode

	ids       idGenerator
	ticks     uint64
	reads     readQueue
	completed []Completion // completions produced outside Process (knobs)
	// physical holds completions of physical compactions, released when the
	// store has removed every obsolete version.
	physical []Completion
	applied  uint64
	// compactedAtTick is the tick of the last compaction step.
	compactedAtTick uint64
	// failed is set once storage failed; the member only stops after it.
	failed error
	// removed is set once this member's removal is applied.
	removed bool
	// installed is set between a snapshot install and its report in Output.
	installed bool
	members   memberList
	// lastSnapshot is the newest checkpoint made for sending, if any.
	lastSnapshot *raftpb.Snapshot

	status statusCell

	// lessor holds the leases applied so far; see lease.go.
	lessor *lease.Lessor
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
	// Events are the keyspace changes applied by this Process call, in
	// revision order, with Kv and PrevKv set: the feed of watches on this
	// member. Readers of Store already see them.
	Events []*mvccpb.Event
}

// Completion reports the end of one request started by Propose or
// ReadIndex.
type Completion struct {
	ID uint64
	// Response is the result of a write: *PutResponse,
	// *DeleteRangeResponse, *TxnResponse or *CompactionResponse. It is nil
	// for a read: the read may now be served from Store.
	Response proto.Message
	// Err is the request's failure, an rpctypes error a client may see.
	Err error
}

// Open opens (or creates and bootstraps) the member's database in cfg.Dir.
func Open(cfg Config) (*Node, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := openPebble(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		// A panic here is raft refusing the stored state; release the
		// database before it propagates.
		if r := recover(); r != nil {
			db.Close()
			panic(r)
		}
	}()
	n, err := newNode(cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return n, nil
}

// openPebble opens the member's live database, creating the member's
// directory on first start and clearing leftovers of an interrupted
// snapshot install.
func openPebble(cfg Config) (*pebble.DB, error) {
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
	return openPebbleAt(cfg, live)
}

// createDurably creates dir and syncs the directories above it, so the
// database's directory survives a crash (creating a directory entry is not
// durable until its parent is synced).
func createDurably(fs vfs.FS, dir string) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for d := fs.PathDir(dir); ; d = fs.PathDir(d) {
		if err := syncDir(fs, d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
		if parent := fs.PathDir(d); parent == d || d == "" || d == "." {
			return nil
		}
	}
}

func openPebbleAt(cfg Config, name string) (*pebble.DB, error) {
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FS:           cfg.FS,
		Logger:       cfg.PebbleLogger,
		Cache:        cache,
		MemTableSize: uint64(cfg.MemTableBytes),
	}
	if cfg.PebbleOptions != nil {
		cfg.PebbleOptions(opts)
	}
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

func newNode(cfg Config, db *pebble.DB) (*Node, error) {
	n := &Node{cfg: cfg, db: db, ids: newIDGenerator(cfg.ID, cfg.Rand)}
	n.members.set(map[uint64]*membershippb.Member{})
	var err error
	if n.log, err = raftlog.Open(db); err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	n.log.SetSnapshotSource(n.makeSnapshot)
	n.raftLog.Storage = n.log
	if n.log.IsEmpty() && !cfg.Join {
		if err := n.bootstrap(); err != nil {
			return nil, err
		}
	}
	if n.applied, err = loadAppliedIndex(db); err != nil {
		return nil, err
	}
	members, err := loadMembers(db)
	if err != nil {
		return nil, fmt.Errorf("load members: %w", err)
	}
	n.members.set(members)
	if n.store, err = n.openStore(); err != nil {
		return nil, fmt.Errorf("open keyspace: %w", err)
	}
	n.view.swap(n.store)
	if n.raw, err = raft.NewRawNode(n.raftConfig()); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.campaignIfAlone()
	n.publishStatus()
	return n, nil
}

func (n *Node) raftConfig() *raft.Config {
	return &raft.Config{
		ID:              n.cfg.ID,
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         &n.raftLog,
		Applied:         n.applied,
		MaxSizePerMsg:   n.cfg.MaxSizePerMsgBytes,
		MaxInflightMsgs: n.cfg.MaxInflightMsgs,
		CheckQuorum:     true,
		PreVote:         true,
		ReadOnlyOption:  n.cfg.Knobs.readOnlyOption(),
		Logger:          n.cfg.Logger,
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
	b := n.db.NewBatch()
	defer b.Close()
	if err := n.log.Bootstrap(b, bootstrapIndex, bootstrapTerm, &raftpb.ConfState{Voters: voters}); err != nil {
		return err
	}
	if err := setAppliedIndex(b, bootstrapIndex); err != nil {
		return err
	}
	if err := n.bootstrapMembers(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
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

// Close releases the database. Work not yet returned by Process is lost,
// which is safe: nothing unacknowledged was promised.
func (n *Node) Close() error {
	if n.db == nil {
		return ErrStopped
	}
	err := n.db.Close()
	n.db = nil
	return err
}

// Store is the member's keyspace. Its read methods are safe for concurrent
// use and see every request applied so far on this member.
func (n *Node) Store() *StoreView { return &n.view }

// ID is this member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Tick advances logical time by one tick.
func (n *Node) Tick() {
	n.ticks++
	n.raw.Tick()
	n.leaseTick()
}

// Step delivers a message from a peer.
func (n *Node) Step(m *raftpb.Message) error {
	if raft.IsLocalMsg(m.GetType()) {
		return fmt.Errorf("node: local message %s from the network", m.GetType())
	}
	err := n.raw.Step(m)
	if errors.Is(err, raft.ErrStepPeerNotFound) || errors.Is(err, raft.ErrStepLocalMsg) {
		return nil // a message from a removed or unknown member is dropped
	}
	return err
}

// Propose starts a write request and returns its ID; the result arrives as a
// Completion with that ID. req.Header.ID is overwritten. ErrProposalDropped
// from raft (no leader known) is returned as is.
func (n *Node) Propose(req *pb.InternalRaftRequest) (uint64, error) {
	id := n.ids.next()
	req.Header = &pb.RequestHeader{ID: id}
	if g := req.GetLeaseGrant(); g != nil && g.GetID() == 0 {
		g.ID = n.newLeaseID()
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("node: marshal request: %w", err)
	}
	return id, n.raw.Propose(data)
}

// ReadIndex starts a linearizable read barrier and returns its ID. When it
// completes, every write acknowledged before ReadIndex was called has been
// applied on this member, and the read may be served from Store.
func (n *Node) ReadIndex() uint64 {
	id := n.ids.next()
	if n.cfg.Knobs.ReadWithoutReadIndex {
		n.completed = append(n.completed, Completion{ID: id})
		return id
	}
	n.reads.add(id)
	return id
}

// HasReady reports whether Process has work to do.
func (n *Node) HasReady() bool {
	return n.removed || n.raw.HasReady() || n.reads.hasUnsent() || len(n.completed) > 0 ||
		n.reads.hasReleasable(n.applied) || n.reads.resendDue(n.ticks, n.cfg.ReadIndexRetryTicks) ||
		n.compactionDue()
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
	return int64(n.db.Metrics().DiskSpaceUsage())
}

// TransferLeadership asks the leader to hand leadership to member to; it
// has no effect on a follower.
func (n *Node) TransferLeadership(to uint64) { n.raw.TransferLeader(to) }

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

// MatchIndexes returns, on the leader, the log index each member has
// acknowledged; nil on a follower.
func (n *Node) MatchIndexes() map[uint64]uint64 {
	st := n.raw.Status()
	if st.RaftState != raft.StateLeader {
		return nil
	}
	match := make(map[uint64]uint64, len(st.Progress))
	for id, pr := range st.Progress {
		match[id] = pr.Match
	}
	return match
}
