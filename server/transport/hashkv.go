package transport

import (
	"context"
	"fmt"
	"strconv"

	"github.com/cairn-db/cairn/server/tlsutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// hashKVMethod answers a member's initial corruption check: this member's
// HashKV at a revision, as etcd's peers answer /members/hashkv. It is
// served to members of this cluster only.
const hashKVMethod = "/cairn.peer.v1.Raft/HashKV"

func (t *Transport) hashKVHandler(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	req := &pb.HashKVRequest{}
	if err := dec(req); err != nil {
		return nil, err
	}
	if _, err := t.checkPeer(ctx); err != nil {
		return nil, err
	}
	if t.cfg.HashKV == nil {
		return nil, status.Error(codes.Unavailable, "transport: this member does not serve hashes")
	}
	return t.cfg.HashKV(req)
}

// PeerHashKV asks the member at peerURL, of cluster clusterID, for its
// HashKV at rev, on behalf of member memberID, over TLS configured by
// tlsClient for an https URL.
func PeerHashKV(ctx context.Context, peerURL string, tlsClient *tlsutil.Client, clusterID, memberID uint64, rev int64) (*pb.HashKVResponse, error) {
	conn, err := Dial(peerURL, tlsClient)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx,
		metadataCluster, strconv.FormatUint(clusterID, 16), metadataMember, strconv.FormatUint(memberID, 16))
	resp := &pb.HashKVResponse{}
	if err := conn.Invoke(ctx, hashKVMethod, &pb.HashKVRequest{Revision: rev}, resp); err != nil {
		return nil, fmt.Errorf("ask %s for its hash at revision %d: %w", peerURL, rev, err)
	}
	return resp, nil
}

// CheckPeer reports whether an incoming call on the peer port comes from a
// member of this cluster, as its cluster and member ID metadata say (over
// https with --peer-client-cert-auth, only a peer holds a certificate the
// port accepts).
func (t *Transport) CheckPeer(ctx context.Context) error {
	_, err := t.checkPeer(ctx)
	return err
}

// AsPeer marks an outgoing call to another member's peer port as this
// member's, with the metadata CheckPeer reads.
func (t *Transport) AsPeer(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx,
		metadataCluster, strconv.FormatUint(t.cfg.ClusterID, 16), metadataMember, strconv.FormatUint(t.cfg.MemberID, 16))
}
