package member

import (
	"context"
	"slices"
	"time"

	"github.com/cairn-db/cairn/node"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// publishRetryInterval is how long publishing waits between attempts.
const publishRetryInterval = 500 * time.Millisecond

// publishAttributes records this member's name and client URLs in the
// cluster (MemberList shows them, and followers find the leader's client
// URL through them), retrying until it succeeds or the member stops.
func (m *Member) publishAttributes() {
	attrs := &membershippb.Attributes{Name: m.cfg.Name, ClientUrls: m.cfg.AdvertiseClientURLs}
	req := node.Request{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: m.Identity.MemberID, MemberAttributes: attrs,
	}}
	for !m.published(attrs) {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ElectionTimeout*5)
		_, err := m.driver.Serve(ctx, req)
		cancel()
		if err == nil {
			continue
		}
		select {
		case <-m.driver.Done():
			return
		case <-time.After(publishRetryInterval):
		}
	}
	m.cfg.Logger.Info("published local member to cluster through raft", "name", m.cfg.Name, "client-urls", m.cfg.AdvertiseClientURLs)
}

func (m *Member) published(attrs *membershippb.Attributes) bool {
	self, ok := m.node.Member(m.Identity.MemberID)
	if !ok {
		return false
	}
	got := self.GetMemberAttributes()
	return got.GetName() == attrs.GetName() && slices.Equal(got.GetClientUrls(), attrs.GetClientUrls())
}
