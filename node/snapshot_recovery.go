package node

import "fmt"

// RaftState is the raft state a member holds: what a crash test compares
// across a restart. Right after Open it is exactly what the database held.
type RaftState struct {
	// Term and Vote are the HardState's: durable after every Process.
	Term, Vote uint64
	// Commit is the HardState's commit index.
	Commit uint64
	// FirstIndex and LastIndex bound the raft log: FirstIndex-1 is where
	// it was truncated or a snapshot installed.
	FirstIndex, LastIndex uint64
	// Applied is the applied index.
	Applied uint64
}

// RaftState returns the member's raft state. Not safe for concurrent use
// with Process: the driver's goroutine only.
//
// What it is for: a crash anywhere inside a snapshot install at index I
// must leave either the old database (Applied < I) or the installed one
// with this member's own raft state (FirstIndex == I+1 until the log is
// truncated again, and Term and Vote as they were). A database that holds
// the snapshot's state with a log starting at or before I holds the
// sender's log: the install was switched to before it was made this
// member's.
func (n *Node) RaftState() RaftState {
	hs := n.log.HardState()
	last, _ := n.log.LastIndex()
	return RaftState{
		Term:       hs.GetTerm(),
		Vote:       hs.GetVote(),
		Commit:     hs.GetCommit(),
		FirstIndex: n.log.TruncatedIndex() + 1,
		LastIndex:  last,
		Applied:    n.applied,
	}
}

// CheckRecovery reports what is wrong with after, the raft state a member
// restarted with after a crash, given before, the state it held when its
// last Process before the crash returned; installed, the index of the
// last snapshot install the member started before the crash (0: none);
// and interrupted, whether the crash came before the Process installing
// it returned.
//
// Term, Vote and the log's entries are synced by every Process that
// changes them, so they must survive any crash: the same term and vote or
// later ones, and a log reaching at least as far. Later is allowed because
// a crash may keep writes that were never synced — a Process whose sync
// failed, or the part of the unsynced data a simulated crash keeps — and
// nothing unsynced was ever sent or acknowledged; an earlier term, or
// another vote in the same term, lost what was durable. An interrupted
// install may leave instead the installed database, with the same term
// and vote and a log that starts afresh after the snapshot. A member
// holding an installed snapshot's state must never hold a log from before
// it: that is the sender's log, which the checkpoint carried. The applied
// state may be older after a crash: it is written without a sync.
func CheckRecovery(before, after RaftState, installed uint64, interrupted bool) error {
	if after.Term < before.Term || (after.Term == before.Term && before.Vote != 0 && after.Vote != before.Vote) {
		return fmt.Errorf("restarted at term %d with vote %x, but had made term %d with vote %x durable",
			after.Term, after.Vote, before.Term, before.Vote)
	}
	holdsSnapshot := installed != 0 && after.Applied >= installed
	if holdsSnapshot && after.FirstIndex <= installed {
		return fmt.Errorf("restarted with the snapshot at %d applied (%d) but a raft log from %d to %d: the database was made live before it held this member's raft state",
			installed, after.Applied, after.FirstIndex, after.LastIndex)
	}
	if holdsSnapshot && interrupted {
		return nil
	}
	if after.LastIndex < before.LastIndex {
		return fmt.Errorf("restarted with a raft log ending at %d, but had made entries up to %d durable",
			after.LastIndex, before.LastIndex)
	}
	return nil
}
