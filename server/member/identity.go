package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cairn-db/cairn/node/cluster"
	"github.com/cairn-db/cairn/node/durable"
	"github.com/cairn-db/cairn/server/transport"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// identity is who this member is. It is decided once, when the data
// directory is first used, and kept in member/identity: a member added to a
// running cluster got its ID from MemberAdd, which its flags cannot
// reproduce, and a restarted member must not depend on flags that only
// matter at bootstrap.
type identity struct {
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
}

// start is how the member's node must start.
type start struct {
	identity
	// founding are the founding members' metadata (bootstrap a new cluster).
	founding []*membershippb.Member
	// join says to start empty and wait for the leader's snapshot.
	join bool
	// peers are members to talk to before the node knows its members.
	peers []*membershippb.Member
	// restarted says the data directory already held this member.
	restarted bool
}

func (m *Member) identityPath() string { return m.cfg.FS.PathJoin(m.memberDir(), "identity") }

// resolveStart finds the member's identity: from the data directory if it
// has one, else from --initial-cluster (a new cluster) or from the running
// cluster's members (--initial-cluster-state existing).
func (m *Member) resolveStart() (start, error) {
	b, err := readFile(m.cfg.FS, m.identityPath())
	if err == nil {
		var id identity
		if err := json.Unmarshal(b, &id); err != nil || id.MemberID == 0 {
			return start{}, fmt.Errorf("%s is corrupt: %q", m.identityPath(), b)
		}
		return start{identity: id, restarted: true}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return start{}, err
	}
	c, err := parseInitialCluster(m.cfg)
	if err != nil {
		return start{}, err
	}
	if m.cfg.InitialClusterState == "existing" {
		return m.joinStart(c)
	}
	return foundingStart(m.cfg, c)
}

func parseInitialCluster(cfg Config) (cluster.Cluster, error) {
	initial := cfg.InitialCluster
	if initial == "" {
		initial = joinNamed(cfg.Name, cfg.InitialAdvertisePeerURLs)
	}
	return cluster.Parse(initial, cfg.InitialClusterToken)
}

func foundingStart(cfg Config, c cluster.Cluster) (start, error) {
	self, ok := c.Find(cfg.Name)
	if !ok {
		return start{}, fmt.Errorf("couldn't find local name %q in the initial cluster configuration", cfg.Name)
	}
	s := start{identity: identity{MemberID: self.ID, ClusterID: c.ID}}
	for _, cm := range c.Members {
		s.founding = append(s.founding, &membershippb.Member{
			ID:               cm.ID,
			RaftAttributes:   &membershippb.RaftAttributes{PeerUrls: cm.PeerURLs},
			MemberAttributes: &membershippb.Attributes{Name: cm.Name},
		})
	}
	s.peers = s.founding
	return s, nil
}

// joinFetchTimeout bounds asking one peer for the member list.
const joinFetchTimeout = 5 * time.Second

// joinStart asks the other members in --initial-cluster who is in the
// cluster and finds this member by its peer URLs (MemberAdd recorded them).
func (m *Member) joinStart(c cluster.Cluster) (start, error) {
	var lastErr error = errors.New("no other member in --initial-cluster")
	for _, cm := range c.Members {
		if cm.Name == m.cfg.Name {
			continue
		}
		for _, u := range cm.PeerURLs {
			s, err := m.joinFrom(u)
			if err == nil {
				return s, nil
			}
			lastErr = err
		}
	}
	return start{}, fmt.Errorf("cannot join the existing cluster: %w", lastErr)
}

func (m *Member) joinFrom(peerURL string) (start, error) {
	ctx, cancel := context.WithTimeout(context.Background(), joinFetchTimeout)
	defer cancel()
	resp, err := transport.FetchMembers(ctx, peerURL, m.tls.peerDial)
	if err != nil {
		return start{}, err
	}
	s := start{join: true}
	s.ClusterID = resp.GetHeader().GetClusterId()
	for _, pm := range resp.GetMembers() {
		mm := &membershippb.Member{ID: pm.GetID(), RaftAttributes: &membershippb.RaftAttributes{PeerUrls: pm.GetPeerURLs(), IsLearner: pm.GetIsLearner()}}
		s.peers = append(s.peers, mm)
		if samePeerURLs(pm.GetPeerURLs(), m.cfg.InitialAdvertisePeerURLs) {
			s.MemberID = pm.GetID()
		}
	}
	if s.MemberID == 0 {
		return start{}, fmt.Errorf("the cluster has no member with peer URLs %v: add it first (etcdctl member add)", m.cfg.InitialAdvertisePeerURLs)
	}
	return s, nil
}

func samePeerURLs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// saveIdentity records the identity once the node holds data, durably: a
// restarted member must find it, or it would bootstrap or join again.
func (m *Member) saveIdentity(id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return durable.ReplaceFile(m.cfg.FS, m.identityPath(), b)
}

func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
