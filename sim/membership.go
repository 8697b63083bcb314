package sim

import (
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Membership changes: the nemesis adds learners (new members that join by
// snapshot), promotes them, and removes voters, keeping 3 to 5 voters, so
// over a run members are added, promoted, removed and replaced.

// foundingMembers is the metadata the founding members bootstrap with.
func (w *world) foundingMembers() []*membershippb.Member {
	var out []*membershippb.Member
	for _, id := range w.foundingIDs() {
		out = append(out, simMember(id, false))
	}
	return out
}

func simMember(id uint64, learner bool) *membershippb.Member {
	return &membershippb.Member{
		ID:               id,
		RaftAttributes:   &membershippb.RaftAttributes{PeerUrls: []string{fmt.Sprintf("sim://n%d", id)}, IsLearner: learner},
		MemberAttributes: &membershippb.Attributes{Name: fmt.Sprintf("n%d", id)},
	}
}

const (
	minVoters = 3
	maxVoters = 5
)

// changeMembership makes one change through the leader.
func (n *nemesis) changeMembership() func() {
	w := n.w
	leader := w.leader()
	if leader == nil {
		w.trace.printf("nemesis: no leader to change membership through")
		return func() {}
	}
	members := leader.node.Members()
	voters, learners := splitMembers(members)
	switch {
	case len(learners) > 0:
		n.proposeChange(leader, raftpb.ConfChangeAddNode, learners[0])
	case len(voters) > minVoters && (len(voters) >= maxVoters || w.rng.IntN(2) == 0):
		victim := voters[w.rng.IntN(len(voters))]
		w.removing[victim.GetID()] = true
		n.proposeChange(leader, raftpb.ConfChangeRemoveNode, victim)
	default:
		n.addLearner(leader)
	}
	return func() {}
}

func splitMembers(members []*membershippb.Member) (voters, learners []*membershippb.Member) {
	for _, m := range members {
		if m.GetRaftAttributes().GetIsLearner() {
			learners = append(learners, m)
		} else {
			voters = append(voters, m)
		}
	}
	return voters, learners
}

func (n *nemesis) addLearner(leader *member) {
	w := n.w
	w.lastID++
	m := w.newMember(w.lastID, true)
	w.members = append(w.members, m)
	n.proposeChange(leader, raftpb.ConfChangeAddLearnerNode, simMember(m.id, true))
	w.restart(m)
	w.scheduleTick(m, w.rng.Int64N(tickMicros))
}

func (n *nemesis) proposeChange(leader *member, kind raftpb.ConfChangeType, m *membershippb.Member) {
	context, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	cc := &raftpb.ConfChange{Type: kind.Enum(), NodeId: proto.Uint64(m.GetID()), Context: context}
	n.w.trace.printf("nemesis: %s n%d through %s", kind, m.GetID(), leader.name())
	if _, err := leader.node.ProposeConfChange(cc); err != nil {
		n.w.trace.printf("nemesis: configuration change refused: %v", err)
	}
	leader.kick()
}

// retireRemoved stops the members whose removal the cluster has applied.
func (w *world) retireRemoved(by *member) {
	if len(w.removing) == 0 {
		return
	}
	current := by.node.Members()
	for _, id := range sortedKeys(w.removing) {
		if !slices.ContainsFunc(current, func(m *membershippb.Member) bool { return m.GetID() == id }) {
			w.retire(id)
		}
	}
}

// retire takes a removed member out of the world for good.
func (w *world) retire(id uint64) {
	m := w.memberByID(id)
	delete(w.removing, id)
	if m == nil {
		return
	}
	w.trace.printf("%s removed from the cluster", m.name())
	m.crash()
	m.removed = true
	w.members = slices.DeleteFunc(w.members, func(x *member) bool { return x == m })
}

// inCluster are the members the leader counts, for the end-of-run checks:
// a member whose addition never committed is not one.
func (w *world) inCluster() []*member {
	leader := w.leader()
	if leader == nil {
		return w.members
	}
	ids := map[uint64]bool{}
	for _, m := range leader.node.Members() {
		ids[m.GetID()] = true
	}
	var out []*member
	for _, m := range w.members {
		if ids[m.id] {
			out = append(out, m)
		}
	}
	return out
}
