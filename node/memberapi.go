package node

import (
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/node/cluster"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The member API (etcd's Cluster service) in the core. A change first
// waits behind a ReadIndex barrier, so its checks see every change
// acknowledged before it (one acknowledged through another member may not
// be applied here yet); then it is checked against the member list,
// proposed as a configuration change carrying the member in its context,
// and completed with the member list once applied.

const (
	// learnerReadyPercent is how much of the leader's log a learner must
	// hold before it may be promoted, as in etcd.
	learnerReadyPercent = 0.9
	// memberChangesMax bounds the member changes waiting to apply; beyond
	// it a change fails at once with "etcdserver: too many requests".
	memberChangesMax = 64
)

// pendingMemberChange is a proposed configuration change whose response
// is built when it applies.
type pendingMemberChange struct {
	req       Request
	member    *membershippb.Member
	sinceTick uint64
}

func (r Request) isMemberChange() bool {
	return r.MemberAdd != nil || r.MemberRemove != nil || r.MemberUpdate != nil || r.MemberPromote != nil
}

// startMemberRequest starts a request of the member API.
func (n *Node) startMemberRequest(id uint64, req Request) {
	if req.MemberList != nil && !req.MemberList.GetLinearizable() {
		n.completed = append(n.completed, Completion{ID: id, Response: n.memberListResponse()})
		return
	}
	if err := checkMemberURLs(req); err != nil {
		n.completed = append(n.completed, Completion{ID: id, Err: err})
		return
	}
	// As etcd, refuse at once on what this member knows: a change that
	// would lose the quorum could not pass the barrier either.
	if req.MemberAdd != nil || req.MemberRemove != nil {
		if err := n.checkStrictReconfig(req); err != nil {
			n.completed = append(n.completed, Completion{ID: id, Err: err})
			return
		}
	}
	n.startBarrier(id, req)
}

// checkMemberURLs validates the peer URLs a client asks to add or update.
func checkMemberURLs(req Request) error {
	var urls []string
	switch {
	case req.MemberAdd != nil:
		urls = req.MemberAdd.GetPeerURLs()
	case req.MemberUpdate != nil:
		urls = req.MemberUpdate.GetPeerURLs()
	default:
		return nil
	}
	if cluster.CheckPeerURLs(urls) != nil {
		return rpctypes.ErrGRPCMemberBadURLs
	}
	return nil
}

// finishMemberRequest serves a member request whose barrier is behind it.
func (n *Node) finishMemberRequest(id uint64, req Request) {
	if req.MemberList != nil {
		n.completed = append(n.completed, Completion{ID: id, Response: n.memberListResponse()})
		return
	}
	kind, m, err := n.planMemberChange(req)
	if err == nil {
		err = n.checkStrictReconfig(req)
	}
	if err != nil {
		n.completed = append(n.completed, Completion{ID: id, Err: err})
		return
	}
	if len(n.memberChanges) >= memberChangesMax {
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCRequestTooManyRequests})
		return
	}
	context, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("node: marshal member %x: %v", m.GetID(), err))
	}
	cc := &raftpb.ConfChange{Type: kind.Enum(), NodeId: proto.Uint64(m.GetID()), Context: context, Id: proto.Uint64(id)}
	if n.memberChanges == nil {
		n.memberChanges = map[uint64]pendingMemberChange{}
	}
	n.memberChanges[id] = pendingMemberChange{req: req, member: m, sinceTick: n.ticks}
	n.submit(parkedProposal{id: id, confChange: cc, sinceTick: n.ticks})
}

// planMemberChange checks a change against the member list and returns the
// configuration change to make and the member it carries.
func (n *Node) planMemberChange(req Request) (raftpb.ConfChangeType, *membershippb.Member, error) {
	switch {
	case req.MemberAdd != nil:
		return n.planMemberAdd(req.MemberAdd)
	case req.MemberRemove != nil:
		if _, ok := n.members.get(req.MemberRemove.GetID()); !ok {
			return 0, nil, rpctypes.ErrGRPCMemberNotFound
		}
		return raftpb.ConfChangeRemoveNode, &membershippb.Member{ID: req.MemberRemove.GetID()}, nil
	case req.MemberUpdate != nil:
		u := req.MemberUpdate
		if _, ok := n.members.get(u.GetID()); !ok {
			return 0, nil, rpctypes.ErrGRPCMemberNotFound
		}
		if err := n.checkNewPeerURLs(u.GetID(), u.GetPeerURLs()); err != nil {
			return 0, nil, err
		}
		return raftpb.ConfChangeUpdateNode, &membershippb.Member{ID: u.GetID(),
			RaftAttributes: &membershippb.RaftAttributes{PeerUrls: u.GetPeerURLs()}}, nil
	}
	return n.planMemberPromote(req.MemberPromote)
}

func (n *Node) planMemberAdd(r *pb.MemberAddRequest) (raftpb.ConfChangeType, *membershippb.Member, error) {
	if err := n.checkNewPeerURLs(0, r.GetPeerURLs()); err != nil {
		return 0, nil, err
	}
	if r.GetIsLearner() && n.learnerCount() >= n.cfg.MaxLearners {
		return 0, nil, rpctypes.ErrGRPCTooManyLearners
	}
	m := &membershippb.Member{
		ID:             cluster.MemberIDAt(r.GetPeerURLs(), n.cfg.ClusterToken, n.now().Unix()),
		RaftAttributes: &membershippb.RaftAttributes{PeerUrls: r.GetPeerURLs(), IsLearner: r.GetIsLearner()},
	}
	if _, taken := n.members.get(m.GetID()); taken {
		return 0, nil, rpctypes.ErrGRPCMemberExist
	}
	if r.GetIsLearner() {
		return raftpb.ConfChangeAddLearnerNode, m, nil
	}
	return raftpb.ConfChangeAddNode, m, nil
}

// planMemberPromote promotes a learner that holds most of the leader's
// log. Only the leader knows how far a learner has caught up: a follower
// completes with ErrNotLeader, and the driver forwards the request.
func (n *Node) planMemberPromote(r *pb.MemberPromoteRequest) (raftpb.ConfChangeType, *membershippb.Member, error) {
	m, ok := n.members.get(r.GetID())
	if !ok {
		return 0, nil, rpctypes.ErrGRPCMemberNotFound
	}
	if !m.GetRaftAttributes().GetIsLearner() {
		return 0, nil, rpctypes.ErrGRPCMemberNotLearner
	}
	st := n.raw.Status()
	if st.RaftState != raft.StateLeader {
		return 0, nil, ErrNotLeader
	}
	if float64(st.Progress[r.GetID()].Match) < float64(st.Progress[n.cfg.ID].Match)*learnerReadyPercent {
		return 0, nil, rpctypes.ErrGRPCLearnerNotReady
	}
	return raftpb.ConfChangeAddNode, m, nil
}

// checkNewPeerURLs refuses peer URLs another member (not except) uses.
func (n *Node) checkNewPeerURLs(except uint64, urls []string) error {
	for id, m := range n.members.current() {
		if id == except {
			continue
		}
		for _, u := range m.GetRaftAttributes().GetPeerUrls() {
			if slices.Contains(urls, u) {
				return rpctypes.ErrGRPCPeerURLExist
			}
		}
	}
	return nil
}

// checkStrictReconfig refuses, as etcd's --strict-reconfig-check does, a
// change that would leave fewer started voters (members that published
// their name) than a quorum, and, on the leader, an addition or removal
// that would leave fewer recently active voters than a quorum (raft's
// RecentActive, which CheckQuorum renews every election timeout, stands
// for etcd's "connected for 5 s"; a follower does not know who is active
// and skips that part). Only the started count exempts learners, as in
// etcd. "Not enough started" is etcd's plain error, which reaches the
// client with code Unknown as etcd's does (checked against etcd 3.7.3).
func (n *Node) checkStrictReconfig(req Request) error {
	if n.cfg.DisableStrictReconfigCheck {
		return nil
	}
	voters, started := n.voterCounts(0)
	switch {
	case req.MemberAdd != nil:
		// A founding member restoring a cluster alone may add a second.
		alone := started == 1 && voters == 1
		if !req.MemberAdd.GetIsLearner() && !alone && started < quorum(voters+1) {
			return rpctypes.ErrMemberNotEnoughStarted
		}
		if active, known := n.activeVoters(); known && voters > 1 && active < quorum(voters+1) {
			return rpctypes.ErrGRPCUnhealthy
		}
	case req.MemberPromote != nil:
		// The learner counts as a started voter.
		if started+1 < quorum(voters+1) {
			return rpctypes.ErrMemberNotEnoughStarted
		}
	case req.MemberRemove != nil:
		return n.checkStrictRemove(req.MemberRemove.GetID())
	}
	return nil
}

func (n *Node) checkStrictRemove(id uint64) error {
	if m, _ := n.members.get(id); m.GetRaftAttributes().GetIsLearner() {
		return nil
	}
	remaining, started := n.voterCounts(id)
	if started < quorum(remaining) {
		return rpctypes.ErrMemberNotEnoughStarted
	}
	st := n.raw.Status()
	if st.RaftState != raft.StateLeader {
		return nil
	}
	// A member that is down is no part of the active quorum.
	if id != n.cfg.ID && !st.Progress[id].RecentActive {
		return nil
	}
	active, _ := n.activeVoters()
	if active-1 < quorum(remaining) {
		return rpctypes.ErrGRPCUnhealthy
	}
	return nil
}

// voterCounts counts the voters other than except, and those of them
// that started.
func (n *Node) voterCounts(except uint64) (voters, started int) {
	for id, m := range n.members.current() {
		if id == except || m.GetRaftAttributes().GetIsLearner() {
			continue
		}
		voters++
		if m.GetMemberAttributes().GetName() != "" {
			started++
		}
	}
	return voters, started
}

// activeVoters counts the voters the leader heard from within the last
// election timeout, itself included; known is false off the leader.
func (n *Node) activeVoters() (active int, known bool) {
	st := n.raw.Status()
	if st.RaftState != raft.StateLeader {
		return 0, false
	}
	for id, m := range n.members.current() {
		if m.GetRaftAttributes().GetIsLearner() {
			continue
		}
		if pr, ok := st.Progress[id]; id == n.cfg.ID || ok && pr.RecentActive {
			active++
		}
	}
	return active, true
}

func quorum(voters int) int { return voters/2 + 1 }

func (n *Node) learnerCount() int {
	count := 0
	for _, m := range n.members.current() {
		if m.GetRaftAttributes().GetIsLearner() {
			count++
		}
	}
	return count
}

// memberChangeApplied completes the member change with ID id, if this
// member started it, with the member list as the change left it.
func (n *Node) memberChangeApplied(id uint64, out *Output) {
	p, ok := n.memberChanges[id]
	if !ok {
		out.Done = append(out.Done, Completion{ID: id})
		return
	}
	delete(n.memberChanges, id)
	// etcd answers the member API with no revision in the header.
	h, members := n.header(0), n.pbMembers()
	var resp proto.Message
	switch {
	case p.req.MemberAdd != nil:
		added, _ := n.members.get(p.member.GetID())
		resp = &pb.MemberAddResponse{Header: h, Member: toPBMember(added), Members: members}
	case p.req.MemberRemove != nil:
		resp = &pb.MemberRemoveResponse{Header: h, Members: members}
	case p.req.MemberUpdate != nil:
		resp = &pb.MemberUpdateResponse{Header: h, Members: members}
	default:
		resp = &pb.MemberPromoteResponse{Header: h, Members: members}
	}
	out.Done = append(out.Done, Completion{ID: id, Response: resp})
}

// expireMemberChanges forgets changes that did not apply within
// RequestTimeoutTicks (raft turns a change proposed while another is
// pending into an empty entry, and a change may be lost with a leader):
// their clients get "etcdserver: request timed out".
func (n *Node) expireMemberChanges() {
	for _, id := range sortedKeys(n.memberChanges) {
		if n.ticks-n.memberChanges[id].sinceTick >= uint64(n.cfg.RequestTimeoutTicks) {
			delete(n.memberChanges, id)
			n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCTimeout})
		}
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (n *Node) memberListResponse() *pb.MemberListResponse {
	return &pb.MemberListResponse{Header: n.header(0), Members: n.pbMembers()}
}

func (n *Node) pbMembers() []*pb.Member {
	var out []*pb.Member
	for _, m := range n.members.list() {
		out = append(out, toPBMember(m))
	}
	return out
}

func toPBMember(m *membershippb.Member) *pb.Member {
	return &pb.Member{
		ID:         m.GetID(),
		Name:       m.GetMemberAttributes().GetName(),
		PeerURLs:   m.GetRaftAttributes().GetPeerUrls(),
		ClientURLs: m.GetMemberAttributes().GetClientUrls(),
		IsLearner:  m.GetRaftAttributes().GetIsLearner(),
	}
}
