package transport

import (
	"context"
	"fmt"

	"github.com/cairn-db/cairn/server/tlsutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// membersMethod answers a member that joins an existing cluster: who the
// members are and which cluster this is, so it can find its own ID.
const membersMethod = "/cairn.peer.v1.Raft/Members"

func (t *Transport) membersHandler(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	if err := dec(&pb.MemberListRequest{}); err != nil {
		return nil, err
	}
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{ClusterId: t.cfg.ClusterID, MemberId: t.cfg.MemberID}}
	for _, m := range t.cfg.Members() {
		resp.Members = append(resp.Members, &pb.Member{
			ID:        m.GetID(),
			Name:      m.GetMemberAttributes().GetName(),
			PeerURLs:  m.GetRaftAttributes().GetPeerUrls(),
			IsLearner: m.GetRaftAttributes().GetIsLearner(),
		})
	}
	return resp, nil
}

// FetchMembers asks the member at peerURL for the cluster's ID and members,
// over TLS configured by tlsClient for an https URL.
func FetchMembers(ctx context.Context, peerURL string, tlsClient *tlsutil.Client) (*pb.MemberListResponse, error) {
	conn, err := Dial(peerURL, tlsClient)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp := &pb.MemberListResponse{}
	if err := conn.Invoke(ctx, membersMethod, &pb.MemberListRequest{}, resp); err != nil {
		return nil, fmt.Errorf("ask %s for the members: %w", peerURL, err)
	}
	return resp, nil
}
