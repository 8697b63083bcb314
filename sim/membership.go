package sim

import (
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
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

// changeMembership makes one change through the leader, with the member
// API's requests, as an operator would with etcdctl: add a learner (and
// start it once the add is acknowledged), promote it, or remove a voter.
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
	case len(learners) > 0 && w.memberByID(learners[0].GetID()) == nil:
		// Added, but its acknowledgement was lost: start it now.
		n.startAdded(learners[0].GetID())
	case len(learners) > 0:
		n.request(leader, node.Request{MemberPromote: &pb.MemberPromoteRequest{ID: learners[0].GetID()}}, nil)
	case len(voters) > minVoters && (len(voters) >= maxVoters || w.rng.IntN(2) == 0):
		victim := voters[w.rng.IntN(len(voters))]
		w.removing[victim.GetID()] = true
		n.request(leader, node.Request{MemberRemove: &pb.MemberRemoveRequest{ID: victim.GetID()}}, nil)
	default:
		w.lastID++
		add := &pb.MemberAddRequest{PeerURLs: []string{fmt.Sprintf("http://added%d.sim:2380", w.lastID)}, IsLearner: true}
		n.request(leader, node.Request{MemberAdd: add}, func(resp proto.Message) {
			n.startAdded(resp.(*pb.MemberAddResponse).GetMember().GetID())
		})
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

// startAdded starts a member the cluster added: empty, it joins and waits
// for the leader's snapshot.
func (n *nemesis) startAdded(id uint64) {
	w := n.w
	if w.memberByID(id) != nil {
		return
	}
	m := w.newMember(id, true)
	w.members = append(w.members, m)
	w.restart(m)
	w.scheduleTick(m, w.rng.Int64N(tickMicros))
}

// request sends a member API request to the leader; done, if set, runs
// with its response once it succeeds.
func (n *nemesis) request(leader *member, req node.Request, done func(proto.Message)) {
	w := n.w
	w.trace.printf("nemesis: %s through %s", describeMemberRequest(req), leader.name())
	id := leader.start(req)
	w.await(leader, id, func(_ *member, c *node.Completion) {
		if c == nil {
			w.trace.printf("nemesis: member request: timeout or crash")
			return
		}
		resp, err := c.Result()
		if err != nil {
			w.trace.printf("nemesis: member request refused: %v", err)
			return
		}
		if done != nil {
			done(resp)
		}
	})
}

func describeMemberRequest(r node.Request) string {
	switch {
	case r.MemberAdd != nil:
		return fmt.Sprintf("add learner %v", r.MemberAdd.GetPeerURLs())
	case r.MemberPromote != nil:
		return fmt.Sprintf("promote %x", r.MemberPromote.GetID())
	case r.MemberRemove != nil:
		return fmt.Sprintf("remove %x", r.MemberRemove.GetID())
	}
	return "member request"
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
