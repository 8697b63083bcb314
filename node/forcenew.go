package node

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Disaster recovery with Config.ForceNewCluster (etcd's
// --force-new-cluster): a member whose peers are lost for good restarts on
// its own data as a one-member cluster, keeping its member ID, cluster ID
// and keyspace. As etcd does, at open it drops the uncommitted tail of its
// raft log and appends, as already committed, one configuration change per
// other member removing it (and one adding itself if it was not a
// member); raft applies them like any committed entries, so the member
// list and the raft configuration end with this member alone, and it
// elects itself. Writes the others had not committed to this member's log
// are lost, as in etcd. Opening with it again changes nothing but
// dropping the uncommitted tail.

// forceNewCluster rewrites the raft log as described above, in one synced
// batch, before raft starts on it.
func (n *Node) forceNewCluster() error {
	hs := proto.Clone(n.log.HardState()).(*raftpb.HardState)
	commit := max(hs.GetCommit(), n.applied)
	ids, err := n.membersAt(commit)
	if err != nil {
		return fmt.Errorf("force new cluster: %w", err)
	}
	ents, err := forceNewClusterEntries(ids, n.cfg.ID, hs.GetTerm(), commit)
	if err != nil {
		return fmt.Errorf("force new cluster: %w", err)
	}
	if err := n.log.Append(ents); err != nil {
		return fmt.Errorf("force new cluster: %w", err)
	}
	hs.Commit = proto.Uint64(ents[len(ents)-1].GetIndex())
	if err := n.log.SetHardState(hs); err != nil {
		return fmt.Errorf("force new cluster: %w", err)
	}
	if err := n.log.Commit(true); err != nil {
		return fmt.Errorf("force new cluster: %w", err)
	}
	return nil
}

// membersAt returns the raft IDs of the voters and learners as of index
// commit: the configuration as of the applied index, changed by the
// configuration changes committed after it.
func (n *Node) membersAt(commit uint64) ([]uint64, error) {
	cs := n.log.ConfState()
	ids := append(slices.Clone(cs.GetVoters()), cs.GetLearners()...)
	if commit <= n.applied {
		return sortedUnique(ids), nil
	}
	ents, err := n.log.Entries(n.applied+1, commit+1, noLimit)
	if err != nil {
		return nil, fmt.Errorf("read committed entries: %w", err)
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryConfChange && e.GetType() != raftpb.EntryConfChangeV2 {
			continue
		}
		cc, err := unmarshalConfChange(e)
		if err != nil {
			return nil, err
		}
		for _, c := range cc.AsV2().GetChanges() {
			if c.GetType() == raftpb.ConfChangeRemoveNode {
				ids = slices.DeleteFunc(ids, func(id uint64) bool { return id == c.GetNodeId() })
			} else {
				ids = append(ids, c.GetNodeId())
			}
		}
	}
	return sortedUnique(ids), nil
}

// noLimit reads entries without a size bound.
const noLimit = ^uint64(0)

func sortedUnique(ids []uint64) []uint64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// forceNewClusterEntries are the entries appended after index commit, at
// term: a removal of every member but self (in ID order), an addition of
// self if it is not a member, or, when there is nothing to change, one
// empty entry, so that the uncommitted tail is replaced all the same.
func forceNewClusterEntries(ids []uint64, self, term, commit uint64) ([]*raftpb.Entry, error) {
	var changes []*raftpb.ConfChange
	for _, id := range ids {
		if id != self {
			changes = append(changes, &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)})
		}
	}
	if !slices.Contains(ids, self) {
		changes = append(changes, &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(self)})
	}
	if len(changes) == 0 {
		return []*raftpb.Entry{{Type: raftpb.EntryNormal.Enum(), Term: proto.Uint64(term), Index: proto.Uint64(commit + 1)}}, nil
	}
	ents := make([]*raftpb.Entry, len(changes))
	for i, cc := range changes {
		data, err := proto.Marshal(cc)
		if err != nil {
			return nil, err
		}
		ents[i] = &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(term),
			Index: proto.Uint64(commit + 1 + uint64(i)), Data: data}
	}
	return ents, nil
}
