package node

import (
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/node/durable"
	"github.com/cairn-db/cairn/node/raftlog"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Process does the work that is ready, once: it sends pending read
// barriers to raft, makes new entries and the HardState durable (one synced
// commit), applies committed entries, advances raft and releases reads and
// compactions that are done. The driver sends Output.Messages and delivers
// Output.Done, and calls Process again while HasReady reports true.
//
// An error means storage failed or contradicts itself: the member must stop.
func (n *Node) Process() (out Output, err error) {
	if n.db == nil {
		return Output{}, ErrStopped
	}
	if err := n.cfg.backgroundFailure.Err(); err != nil {
		return Output{}, n.storageFailed(err)
	}
	if n.failed != nil {
		return Output{}, n.failed
	}
	if n.removed {
		return Output{}, ErrRemoved
	}
	defer n.recoverStorageFailure(&out, &err)
	n.noteEndedStateFlushes()
	if err := n.view.reap(n.removeAll); err != nil {
		return Output{}, err
	}
	out = Output{Done: n.completed}
	n.completed = nil
	n.submitBatched()
	n.reads.send(n.raw, n.ticks, n.cfg.ReadIndexRetryTicks)
	if n.sentAhead != nil || n.raw.HasReady() {
		if err := n.handleReady(&out); err != nil {
			return Output{}, err
		}
		out.Messages = coalesceMessages(out.Messages, n.cfg.MaxSizePerMsgBytes)
	}
	for _, r := range n.reads.release(n.releasableIndex()) {
		n.finishRead(r)
	}
	out.Done = append(out.Done, n.completed...)
	n.completed = nil
	if n.compactionDue() {
		if err := n.compactStep(&out); err != nil {
			return Output{}, err
		}
	}
	out.HashRequests = n.corruption.takeWanted()
	n.publishStatus()
	return out, nil
}

// failOnLogError fails the member for good when err is the raft log's
// failed write or sync, as a fatal Pebble error does: the log takes no
// more writes then.
func (n *Node) failOnLogError(err error) error {
	if errors.Is(err, raftlog.ErrWriteFailed) && n.failed == nil {
		n.failed = fatalStorageError{err.Error()}
	}
	if n.failed != nil {
		return n.failed
	}
	return err
}

// storageFailed fails the member for good when err is a failure Pebble
// reported from its own goroutines (durable.ErrBackground: a flush or a
// compaction that could not write): the applied state might never become
// durable. Other errors pass through.
func (n *Node) storageFailed(err error) error {
	if !errors.Is(err, durable.ErrBackground) {
		return err
	}
	if n.failed == nil {
		n.failed = fatalStorageError{err.Error()}
	}
	return n.failed
}

// recoverStorageFailure turns a fatal Pebble error into Process's error and
// fails the member for good: the database may hold a half-written commit.
func (n *Node) recoverStorageFailure(out *Output, err *error) {
	r := recover()
	if r == nil {
		return
	}
	fatal, ok := r.(fatalStorageError)
	if !ok {
		panic(r)
	}
	n.failed = fatal
	*out, *err = Output{}, fatal
}

func (n *Node) handleReady(out *Output) error {
	var rd raft.Ready
	if n.sentAhead != nil {
		rd, n.sentAhead = *n.sentAhead, nil
	} else {
		rd = n.raw.Ready()
		if n.sendsAhead(rd) {
			out.Messages, rd.Messages = rd.Messages, nil
			n.sentAhead = &rd
			// The messages may tell peers this member leads: its Status
			// says so before they can learn it (a MoveLeader completes
			// when the old leader hears from the new one).
			if rd.SoftState != nil {
				n.status.setSoft(rd.SoftState)
			}
			return nil
		}
	}
	if err := n.persist(rd); err != nil {
		return n.failOnLogError(err)
	}
	out.Messages = append(out.Messages, rd.Messages...)
	if n.installed {
		out.SnapshotInstalled, out.MembershipChanged = true, true
		n.installed = false
	}
	n.reads.confirm(rd.ReadStates)
	if err := n.apply(rd.CommittedEntries, out); err != nil {
		return err
	}
	n.raftLog.release(n.entriesNoLongerRead())
	if err := n.maybeTruncateLog(); err != nil {
		return n.failOnLogError(err)
	}
	if rd.SoftState != nil {
		n.metrics.noteLeader(rd.SoftState.Lead)
		n.status.setSoft(rd.SoftState)
		if rd.SoftState.RaftState != raft.StateLeader {
			n.proposals.forget()
		}
		n.finishTransfers()
	}
	n.raw.Advance(rd)
	return nil
}

// entriesNoLongerRead returns the index up to which raft will not read
// entries back: it reads an entry to apply it and, on a leader, to send it
// to a follower that lacks it. Entries above a lagging follower's match
// stay in memory, within the cache's bound, as every entry did before.
func (n *Node) entriesNoLongerRead() uint64 {
	if !n.isLeader() {
		return n.applied
	}
	if n.visitMatch == nil {
		n.visitMatch = func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id != n.cfg.ID {
				n.lowestMatch = min(n.lowestMatch, pr.Match)
			}
		}
	}
	n.lowestMatch = n.applied
	n.raw.WithProgress(n.visitMatch)
	return n.lowestMatch
}

// sendsAhead reports whether rd's messages may go out before its entries
// are persisted: the leader's disk write then overlaps the round trip to
// its followers and their writes, instead of preceding them (the raft
// thesis, section 10.2.1; etcd's leader does the same). It is safe for a
// leader whose term and vote are already durable: raft counts the
// leader's own entries toward a commit before they are on its disk, but
// every message that carries a commit index, and every apply, comes from
// a later Ready, which Process takes only after persisting this one. A
// follower never sends ahead: its acknowledgement says the entries are on
// its disk. Nor does a Ready with a snapshot, or with nothing to sync.
func (n *Node) sendsAhead(rd raft.Ready) bool {
	if len(rd.Messages) == 0 || len(rd.Entries) == 0 || !rd.MustSync || !raft.IsEmptySnap(rd.Snapshot) ||
		!(n.isLeader() || n.cfg.Knobs.FollowerSendsAhead) {
		return false
	}
	if raft.IsEmptyHardState(rd.HardState) {
		return true
	}
	durable := n.log.HardState()
	return rd.HardState.GetTerm() == durable.GetTerm() && rd.HardState.GetVote() == durable.GetVote()
}

// persist makes the Ready's entries and HardState durable, synced
// whenever raft says the state must survive a crash: one write and one
// sync of the log's active segment.
func (n *Node) persist(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
		n.raftLog.forget()
		n.installed = true
	}
	if len(rd.Entries) == 0 && raft.IsEmptyHardState(rd.HardState) {
		return nil
	}
	if err := n.log.Append(rd.Entries); err != nil {
		return fmt.Errorf("append to raft log: %w", err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.log.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("stage hard state: %w", err)
		}
	}
	if err := n.commitLog(rd.MustSync); err != nil {
		return err
	}
	n.raftLog.appended(rd.Entries)
	return nil
}

// commitLog commits what persist staged in the log, synced if mustSync.
func (n *Node) commitLog(mustSync bool) error {
	commit := func() error { return n.log.Commit(n.syncs(mustSync)) }
	var err error
	if mustSync {
		err = n.timed(&n.metrics.walSync, commit)
	} else {
		err = commit()
	}
	if err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	return nil
}

// applyBatchBytes bounds the entry data applied in one batch of the state
// database: a quarter of a memtable, well below the half from which Pebble
// makes a batch a memtable of its own and flushes it at once (with 1 MiB
// values that flushed the state at every Ready).
func (n *Node) applyBatchBytes() int {
	return max(int(n.stateFlushes.memTableBytes/4), 1)
}

// releasableIndex is the highest read index whose reads may be served: the
// applied index.
func (n *Node) releasableIndex() uint64 {
	if n.cfg.Knobs.ReadBeforeApplied {
		return ^uint64(0)
	}
	return n.applied
}

func (n *Node) syncs(mustSync bool) bool {
	return mustSync && !n.cfg.Knobs.AckBeforeDurable && !n.cfg.UnsafeNoFsync
}

func (n *Node) compactStep(out *Output) error {
	n.compactedAtTick = n.ticks
	b := n.db.NewBatch()
	defer b.Close()
	done, err := n.store.CompactStep(b, n.cfg.MaxCompactKeysPerTick)
	if err != nil {
		return fmt.Errorf("compact keyspace: %w", err)
	}
	if err := n.commitState(b, n.applied); err != nil {
		return fmt.Errorf("commit compaction step: %w", err)
	}
	if done {
		out.Done = append(out.Done, n.physical...)
		n.physical = nil
	}
	return nil
}

// Status is a member's view of raft, safe to read from any goroutine.
type Status struct {
	ID           uint64
	Term         uint64
	Leader       uint64
	IsLeader     bool
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Voters       []uint64
	Learners     []uint64
}

// Status returns the latest published status; safe for concurrent use.
func (n *Node) Status() Status { return n.status.load() }

func (n *Node) publishStatus() {
	n.metrics.proposalsPending.Store(int64(len(n.parked) + len(n.proposals.byID)))
	hs := n.log.HardState()
	cs := n.log.ConfState()
	last, _ := n.log.LastIndex()
	n.status.setHard(Status{
		ID:           n.cfg.ID,
		Term:         hs.GetTerm(),
		CommitIndex:  hs.GetCommit(),
		AppliedIndex: n.applied,
		LastIndex:    last,
		Voters:       cs.GetVoters(),
		Learners:     cs.GetLearners(),
	})
}

// unmarshalConfChange decodes a configuration change entry of either
// version.
func unmarshalConfChange(e *raftpb.Entry) (raftpb.ConfChangeI, error) {
	if e.GetType() == raftpb.EntryConfChange {
		cc := &raftpb.ConfChange{}
		return cc, unmarshal(e.Data, cc)
	}
	cc := &raftpb.ConfChangeV2{}
	return cc, unmarshal(e.Data, cc)
}
