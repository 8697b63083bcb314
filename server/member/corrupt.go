package member

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-db/cairn/node"
	"github.com/cairn-db/cairn/server/transport"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// ticksOf is a check interval in ticks: 0 stays 0 (off), anything shorter
// than a tick is one tick.
func ticksOf(d, tick time.Duration) int {
	if d <= 0 {
		return 0
	}
	return max(int(d/tick), 1)
}

// initialCorruptCheck is etcd's InitialCorruptCheck gate: before a member
// whose data directory held data serves peers or clients, it asks every
// other member for its HashKV at its own latest revision, and refuses to
// start if one differs at the same compacted revision
// (node.InitialHashMismatch decides). Peers that do not answer, or cannot
// hash that revision, are left out, as etcd leaves them out. A new member
// has nothing to compare and is not checked.
func (m *Member) initialCorruptCheck(st start) error {
	if !m.cfg.InitialCorruptCheck || !st.restarted {
		return nil
	}
	id := m.Identity.MemberID
	m.cfg.Logger.Info("starting initial corruption check", "local-member-id", fmt.Sprintf("%x", id), "timeout", requestTimeout.String())
	own, err := m.node.HashKV(&pb.HashKVRequest{})
	if err != nil {
		return fmt.Errorf("%x failed to fetch hash (%w)", id, err)
	}
	var peers []*pb.HashKVResponse
	for _, p := range m.node.Members() {
		if p.GetID() == id {
			continue
		}
		resp, err := m.peerHashKV(p, own.GetHashRevision())
		if err != nil {
			m.cfg.Logger.Warn("cannot fetch hash from remote peer", "local-member-id", fmt.Sprintf("%x", id),
				"local-member-revision", own.GetHashRevision(), "remote-peer-id", fmt.Sprintf("%x", p.GetID()), "error", err)
			continue
		}
		if resp.GetHash() != own.GetHash() {
			m.cfg.Logger.Warn("found different hash values from remote peer", "local-member-id", fmt.Sprintf("%x", id),
				"local-member-revision", own.GetHashRevision(), "local-member-compact-revision", own.GetCompactRevision(),
				"local-member-hash", own.GetHash(), "remote-peer-id", fmt.Sprintf("%x", p.GetID()),
				"remote-peer-compact-revision", resp.GetCompactRevision(), "remote-peer-hash", resp.GetHash())
		}
		peers = append(peers, resp)
	}
	if err := node.InitialHashMismatch(id, own, peers); err != nil {
		m.cfg.Logger.Error("checkInitialHashKV failed", "error", err)
		return err
	}
	m.cfg.Logger.Info("initial corruption checking passed; no corruption", "local-member-id", fmt.Sprintf("%x", id))
	return nil
}

// peerHashKV asks one member for its hash at rev, trying its peer URLs in
// turn, each for up to requestTimeout.
func (m *Member) peerHashKV(p *membershippb.Member, rev int64) (*pb.HashKVResponse, error) {
	err := fmt.Errorf("member %x has no peer URL", p.GetID())
	for _, u := range p.GetRaftAttributes().GetPeerUrls() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var resp *pb.HashKVResponse
		resp, err = transport.PeerHashKV(ctx, u, m.tls.peerDial, m.Identity.ClusterID, m.Identity.MemberID, rev)
		cancel()
		if err == nil {
			return resp, nil
		}
	}
	return nil, err
}
