package node

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func foundingMembers(ids ...uint64) []*membershippb.Member {
	var out []*membershippb.Member
	for _, id := range ids {
		out = append(out, &membershippb.Member{ID: id,
			RaftAttributes: &membershippb.RaftAttributes{PeerUrls: []string{fmt.Sprintf("http://m%d:2380", id)}}})
	}
	return out
}

// TestMemberAPI walks etcd's member API through the core: every check
// answers with etcd's error, and every change completes with the member
// list as it left it.
func TestMemberAPI(t *testing.T) {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, func(c *Config) { c.InitialMembers = startedMembers(ids, 1, 2, 3); c.ClusterToken = "t" })
	lead := h.leader()
	follower := ids[0]
	if follower == lead {
		follower = ids[1]
	}
	fail := func(id uint64, req Request, want error) {
		t.Helper()
		if _, err := h.serve(id, req); !errors.Is(err, want) {
			t.Fatalf("%v: %v, want %v", req, err, want)
		}
	}
	fail(follower, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"not a url"}}}, rpctypes.ErrGRPCMemberBadURLs)
	fail(follower, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m2:2380"}}}, rpctypes.ErrGRPCPeerURLExist)
	fail(follower, Request{MemberRemove: &pb.MemberRemoveRequest{ID: 99}}, rpctypes.ErrGRPCMemberNotFound)
	fail(follower, Request{MemberPromote: &pb.MemberPromoteRequest{ID: 2}}, rpctypes.ErrGRPCMemberNotLearner)

	resp, err := h.serve(follower, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m4:2380"}, IsLearner: true}})
	if err != nil {
		t.Fatalf("add a learner: %v", err)
	}
	added := resp.(*pb.MemberAddResponse)
	if m := added.GetMember(); m.GetID() == 0 || !m.GetIsLearner() || len(added.GetMembers()) != 4 {
		t.Fatalf("add: %v", added)
	}
	learner := added.GetMember().GetID()
	fail(follower, Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m5:2380"}, IsLearner: true}}, rpctypes.ErrGRPCTooManyLearners)
	// Only the leader knows how far the learner is; the learner never
	// started, so it holds nothing.
	fail(follower, Request{MemberPromote: &pb.MemberPromoteRequest{ID: learner}}, ErrNotLeader)
	fail(lead, Request{MemberPromote: &pb.MemberPromoteRequest{ID: learner}}, rpctypes.ErrGRPCLearnerNotReady)

	if _, err := h.serve(follower, Request{MemberUpdate: &pb.MemberUpdateRequest{ID: learner, PeerURLs: []string{"http://m6:2380"}}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	resp, err = h.serve(lead, Request{MemberRemove: &pb.MemberRemoveRequest{ID: learner}})
	if err != nil || len(resp.(*pb.MemberRemoveResponse).GetMembers()) != 3 {
		t.Fatalf("remove: %v, %v", resp, err)
	}
	for _, id := range ids {
		resp, err := h.serve(id, Request{MemberList: &pb.MemberListRequest{Linearizable: true}})
		list := resp.(*pb.MemberListResponse)
		if err != nil || len(list.GetMembers()) != 3 || list.GetHeader().GetMemberId() != id {
			t.Fatalf("member %d lists %v, %v", id, list, err)
		}
	}
}
