package etcdapi

import (
	"context"
	"slices"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/cluster"
	"github.com/cairn-db/cairn/server/driver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Cluster implements etcdserverpb.ClusterServer: membership changes go
// through raft as configuration changes that carry the member's metadata.
type Cluster struct {
	pb.UnimplementedClusterServer
	d      *driver.Driver
	id     Identity
	token  string
	leader LeaderConn
}

// maxLearners is how many learners a cluster may have at once, as in etcd.
const maxLearners = 1

// learnerReadyPercent is how much of the leader's log a learner must hold
// before it may be promoted, as in etcd.
const learnerReadyPercent = 0.9

// NewCluster returns the Cluster service of the member d drives; token is
// the cluster token new member IDs are derived from. leader may be nil: a
// follower then answers a promotion with "etcdserver: not leader" (as the
// service that serves forwarded promotions on the peer port must, so a
// forward is never forwarded again).
func NewCluster(d *driver.Driver, id Identity, token string, leader LeaderConn) *Cluster {
	return &Cluster{d: d, id: id, token: token, leader: leader}
}

func (c *Cluster) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: c.id.ClusterID, MemberId: c.id.MemberID, RaftTerm: c.d.Node().Status().Term}
}

// MemberList implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberList(ctx context.Context, req *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if req.GetLinearizable() {
		if err := c.d.ReadIndex(ctx); err != nil {
			return nil, err
		}
	}
	return &pb.MemberListResponse{Header: c.header(), Members: c.members()}, nil
}

func (c *Cluster) members() []*pb.Member {
	var out []*pb.Member
	for _, m := range c.d.Node().Members() {
		out = append(out, toMember(m))
	}
	return out
}

func toMember(m *membershippb.Member) *pb.Member {
	return &pb.Member{
		ID:         m.GetID(),
		Name:       m.GetMemberAttributes().GetName(),
		PeerURLs:   m.GetRaftAttributes().GetPeerUrls(),
		ClientURLs: m.GetMemberAttributes().GetClientUrls(),
		IsLearner:  m.GetRaftAttributes().GetIsLearner(),
	}
}

// MemberAdd implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberAdd(ctx context.Context, req *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := cluster.CheckPeerURLs(req.GetPeerURLs()); err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	if err := c.checkNewPeerURLs(0, req.GetPeerURLs()); err != nil {
		return nil, err
	}
	if req.GetIsLearner() && c.learners() >= maxLearners {
		return nil, rpctypes.ErrGRPCTooManyLearners
	}
	m := &membershippb.Member{
		ID:             cluster.MemberIDAt(req.GetPeerURLs(), c.token, time.Now().Unix()),
		RaftAttributes: &membershippb.RaftAttributes{PeerUrls: req.GetPeerURLs(), IsLearner: req.GetIsLearner()},
	}
	kind := raftpb.ConfChangeAddNode
	if req.GetIsLearner() {
		kind = raftpb.ConfChangeAddLearnerNode
	}
	if err := c.change(ctx, kind, m); err != nil {
		return nil, err
	}
	return &pb.MemberAddResponse{Header: c.header(), Member: toMember(m), Members: c.members()}, nil
}

// checkNewPeerURLs refuses peer URLs another member (not except) uses.
func (c *Cluster) checkNewPeerURLs(except uint64, urls []string) error {
	for _, m := range c.d.Node().Members() {
		if m.GetID() == except {
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

func (c *Cluster) learners() int {
	n := 0
	for _, m := range c.d.Node().Members() {
		if m.GetRaftAttributes().GetIsLearner() {
			n++
		}
	}
	return n
}

// catchUp waits until this member has applied every change acknowledged
// before the request arrived, so checks against its member list see them
// (a change acknowledged through another member may not be applied here
// yet).
func (c *Cluster) catchUp(ctx context.Context) error {
	return c.d.ReadIndex(ctx)
}

// change proposes a configuration change carrying m and waits for it.
func (c *Cluster) change(ctx context.Context, kind raftpb.ConfChangeType, m *membershippb.Member) error {
	context, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	cc := &raftpb.ConfChange{Type: kind.Enum(), NodeId: proto.Uint64(m.GetID()), Context: context}
	return c.d.ProposeConfChange(ctx, cc)
}

// MemberRemove implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberRemove(ctx context.Context, req *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	m, ok := c.d.Node().Member(req.GetID())
	if !ok {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	if err := c.change(ctx, raftpb.ConfChangeRemoveNode, &membershippb.Member{ID: m.GetID()}); err != nil {
		return nil, err
	}
	return &pb.MemberRemoveResponse{Header: c.header(), Members: c.members()}, nil
}

// MemberUpdate implements etcdserverpb.ClusterServer.
func (c *Cluster) MemberUpdate(ctx context.Context, req *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := cluster.CheckPeerURLs(req.GetPeerURLs()); err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	m, ok := c.d.Node().Member(req.GetID())
	if !ok {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	if err := c.checkNewPeerURLs(m.GetID(), req.GetPeerURLs()); err != nil {
		return nil, err
	}
	update := &membershippb.Member{ID: m.GetID(), RaftAttributes: &membershippb.RaftAttributes{PeerUrls: req.GetPeerURLs()}}
	if err := c.change(ctx, raftpb.ConfChangeUpdateNode, update); err != nil {
		return nil, err
	}
	return &pb.MemberUpdateResponse{Header: c.header(), Members: c.members()}, nil
}

// MemberPromote implements etcdserverpb.ClusterServer. Only the leader
// knows how far a learner has caught up, so a follower forwards the request
// to it, as etcd does.
func (c *Cluster) MemberPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	m, ok := c.d.Node().Member(req.GetID())
	if !ok {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	if !m.GetRaftAttributes().GetIsLearner() {
		return nil, rpctypes.ErrGRPCMemberNotLearner
	}
	st := c.d.Node().Status()
	if !st.IsLeader {
		return c.forwardPromote(ctx, req)
	}
	if err := c.checkLearnerReady(ctx, m.GetID()); err != nil {
		return nil, err
	}
	if err := c.change(ctx, raftpb.ConfChangeAddNode, m); err != nil {
		return nil, err
	}
	return &pb.MemberPromoteResponse{Header: c.header(), Members: c.members()}, nil
}

func (c *Cluster) checkLearnerReady(ctx context.Context, id uint64) error {
	var match map[uint64]uint64
	if err := c.d.Do(ctx, func(n *node.Node) { match = n.MatchIndexes() }); err != nil {
		return err
	}
	if match == nil {
		return rpctypes.ErrGRPCNotLeader
	}
	if float64(match[id]) < float64(match[c.id.MemberID])*learnerReadyPercent {
		return rpctypes.ErrGRPCLearnerNotReady
	}
	return nil
}

func (c *Cluster) forwardPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if c.leader == nil {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	conn, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	return pb.NewClusterClient(conn).MemberPromote(ctx, req)
}
