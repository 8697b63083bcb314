package node

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
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
	if n.failed != nil {
		return Output{}, n.failed
	}
	if n.removed {
		return Output{}, ErrRemoved
	}
	defer n.recoverStorageFailure(&out, &err)
	if err := n.view.reap(n.removeAll); err != nil {
		return Output{}, err
	}
	out = Output{Done: n.completed}
	n.completed = nil
	n.reads.send(n.raw, n.ticks, n.cfg.ReadIndexRetryTicks)
	if n.sentAhead != nil || n.raw.HasReady() {
		if err := n.handleReady(&out); err != nil {
			return Output{}, err
		}
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
		return err
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
	if err := n.maybeTruncateLog(); err != nil {
		return err
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
// whenever raft says the state must survive a crash. The entries go in
// batches of at most persistBatchBytes, each committed in turn and only the
// last synced: the log database's write-ahead log is sequential, so the
// sync makes them all durable, and no batch is large enough for Pebble to
// flush it as a memtable of its own.
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
	ents, limit := rd.Entries, n.persistBatchBytes()
	for {
		b := n.logDB.NewBatch()
		var size int
		i := 0
		for ; i < len(ents) && (i == 0 || size+len(ents[i].GetData()) <= limit); i++ {
			size += len(ents[i].GetData())
		}
		if err := n.log.Append(b, ents[:i]); err != nil {
			b.Close()
			return fmt.Errorf("append to raft log: %w", err)
		}
		ents = ents[i:]
		if len(ents) > 0 {
			err := b.Commit(pebble.NoSync)
			b.Close()
			if err != nil {
				return fmt.Errorf("persist raft log: %w", err)
			}
			continue
		}
		err := n.commitLast(b, rd)
		b.Close()
		if err != nil {
			return err
		}
		break
	}
	n.raftLog.appended(rd.Entries)
	return nil
}

// commitLast stages rd's HardState into b, the last batch of its entries,
// and commits it.
func (n *Node) commitLast(b *pebble.Batch, rd raft.Ready) error {
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.log.SetHardState(b, rd.HardState); err != nil {
			return fmt.Errorf("stage hard state: %w", err)
		}
	}
	commit := func() error { return b.Commit(n.syncOption(rd.MustSync)) }
	var err error
	if rd.MustSync {
		err = n.timed(&n.metrics.walSync, commit)
	} else {
		err = commit()
	}
	if err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	return nil
}

// persistBatchBytes bounds the entry data of one batch written to either
// database: a quarter of a memtable, well below the half from which Pebble
// makes a batch a memtable of its own and flushes it at once (with 1 MiB
// values that flushed the log at every Ready).
func (n *Node) persistBatchBytes() int {
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

func (n *Node) syncOption(mustSync bool) *pebble.WriteOptions {
	if mustSync && !n.cfg.Knobs.AckBeforeDurable && !n.cfg.UnsafeNoFsync {
		return pebble.Sync
	}
	return pebble.NoSync
}

func (n *Node) compactStep(out *Output) error {
	n.compactedAtTick = n.ticks
	b := n.db.NewBatch()
	defer b.Close()
	done, err := n.store.CompactStep(b, n.cfg.MaxCompactKeysPerTick)
	if err != nil {
		return fmt.Errorf("compact keyspace: %w", err)
	}
	if err := n.commitState(b); err != nil {
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
