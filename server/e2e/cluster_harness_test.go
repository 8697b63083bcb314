//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	// clusterHeartbeatMs and clusterElectionMs make elections take well under
	// a second, for etcd and cairn alike.
	clusterHeartbeatMs = 50
	clusterElectionMs  = 500
	// clusterLeaderTimeout bounds the wait for a leader all members agree on.
	clusterLeaderTimeout = 15 * time.Second
	// clusterRequestTimeout bounds one request of the cluster tests' helpers.
	clusterRequestTimeout = 5 * time.Second
	// clusterPollInterval is the pause between two probes of a condition.
	clusterPollInterval = 50 * time.Millisecond
	// clusterAddTimeout bounds the retries of a MemberAdd the cluster refuses
	// as unhealthy.
	clusterAddTimeout = 10 * time.Second
)

// Cluster is a multi-member cluster of real processes of one kind, on free
// loopback ports with data in t.TempDir(). Members holds every member ever
// started, in order; removed or killed ones stay in it.
type Cluster struct {
	t       *testing.T
	Kind    Kind
	Token   string
	Members []*Member
	// extra are flags every member gets, after the cluster's own.
	extra []string
	// tls, when set, gives members https URLs and is what clients dial with.
	tls *tls.Config
}

// StartCluster starts size members of kind as a new cluster with the extra
// flags, waits until each serves a linearizable Get, and kills them all at
// test end.
func StartCluster(t *testing.T, kind Kind, size int, extra ...string) *Cluster {
	t.Helper()
	return startClusterToken(t, kind, size, "e2e-"+strings.ReplaceAll(t.Name(), "/", "-"), extra...)
}

func startClusterToken(t *testing.T, kind Kind, size int, token string, extra ...string) *Cluster {
	t.Helper()
	return launchCluster(&Cluster{t: t, Kind: kind, Token: token, extra: extra}, size)
}

// launchCluster starts size members of c as a new cluster and waits until
// each serves a linearizable Get.
func launchCluster(c *Cluster, size int) *Cluster {
	c.t.Helper()
	for i := range size {
		c.Members = append(c.Members, c.newMember(fmt.Sprintf("m%d", i+1)))
	}
	initial := c.initialCluster(c.Members)
	for _, m := range c.Members {
		m.InitialCluster = initial
		m.Extra = c.memberFlags("new")
		m.Launch()
	}
	for _, m := range c.Members {
		m.WaitReady()
	}
	return c
}

// newMember prepares a member (ports, data dir, log, cleanup) without
// starting it.
func (c *Cluster) newMember(name string) *Member {
	c.t.Helper()
	bin := requireBin(c.t, binEnv[c.Kind])
	dir := c.t.TempDir()
	m := &Member{
		t:         c.t,
		Kind:      c.Kind,
		Bin:       bin,
		Name:      name,
		DataDir:   filepath.Join(dir, "data"),
		ClientURL: c.scheme() + "://127.0.0.1:" + strconv.Itoa(freePort(c.t)),
		PeerURL:   c.scheme() + "://127.0.0.1:" + strconv.Itoa(freePort(c.t)),
		LogPath:   filepath.Join(dir, string(c.Kind)+"-"+name+".stderr.log"),
		TLS:       c.tls,
	}
	c.t.Cleanup(func() {
		if c.t.Failed() {
			if p := m.PanicLines(); p != "" {
				c.t.Logf("--- panic/fatal lines of %s %s (%s) ---\n%s", m.Kind, m.Name, m.LogPath, p)
			}
			c.t.Logf("--- last %d lines of %s %s (%s) ---\n%s", logTailLines, m.Kind, m.Name, m.LogPath, m.LogTail(logTailLines))
		}
	})
	c.t.Cleanup(m.Kill) // runs before the log dump above
	return m
}

func (c *Cluster) scheme() string {
	if c.tls != nil {
		return "https"
	}
	return "http"
}

// memberFlags are the cluster flags of a member joining in state new or
// existing.
func (c *Cluster) memberFlags(state string) []string {
	flags := []string{
		"--initial-cluster-state", state,
		"--initial-cluster-token", c.Token,
		"--heartbeat-interval", strconv.Itoa(clusterHeartbeatMs),
		"--election-timeout", strconv.Itoa(clusterElectionMs),
	}
	return append(flags, c.extra...)
}

func (c *Cluster) initialCluster(members []*Member) string {
	var parts []string
	for _, m := range members {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

// Member returns the member named name.
func (c *Cluster) Member(name string) *Member {
	c.t.Helper()
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	c.t.Fatalf("no member %s", name)
	return nil
}

// Running returns the members whose processes are running.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Running() {
			out = append(out, m)
		}
	}
	return out
}

// Client returns an official client with the given members' client URLs as
// endpoints (every running member when none are given), closed at test end.
func (c *Cluster) Client(members ...*Member) *clientv3.Client {
	c.t.Helper()
	if len(members) == 0 {
		members = c.Running()
	}
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.ClientURL)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         c.tls,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("clientv3.New(%v): %v", endpoints, err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Status asks one member for its Maintenance.Status.
func (c *Cluster) Status(cli *clientv3.Client, m *Member) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
	defer cancel()
	return cli.Status(ctx, m.ClientURL)
}

// MemberID returns the member's ID as it reports it in Status.
func (c *Cluster) MemberID(cli *clientv3.Client, m *Member) uint64 {
	c.t.Helper()
	st, err := c.Status(cli, m)
	if err != nil {
		c.t.Fatalf("status of %s: %v", m.Name, err)
	}
	return st.Header.MemberId
}

// WaitLeader waits until every running member names the same leader, one of
// them, and returns it.
func (c *Cluster) WaitLeader(cli *clientv3.Client) *Member {
	c.t.Helper()
	deadline := time.Now().Add(clusterLeaderTimeout)
	var last string
	for time.Now().Before(deadline) {
		lead, why := c.agreedLeader(cli)
		if lead != nil {
			return lead
		}
		last = why
		time.Sleep(clusterPollInterval)
	}
	c.t.Fatalf("no agreed leader after %v: %s", clusterLeaderTimeout, last)
	return nil
}

// agreedLeader returns the leader every running voter names, or nil and why not.
func (c *Cluster) agreedLeader(cli *clientv3.Client) (*Member, string) {
	var leader uint64
	byID := map[uint64]*Member{}
	for _, m := range c.Running() {
		st, err := c.Status(cli, m)
		if err != nil {
			return nil, fmt.Sprintf("status of %s: %v", m.Name, err)
		}
		byID[st.Header.MemberId] = m
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return nil, fmt.Sprintf("%s names leader %x, another %x", m.Name, st.Leader, leader)
		}
		leader = st.Leader
	}
	if byID[leader] == nil {
		return nil, fmt.Sprintf("leader %x is not a running member", leader)
	}
	return byID[leader], ""
}

// WaitSerializable waits until the member's serializable Get of key returns
// value at modRevision, and fails the test after timeout.
func (c *Cluster) WaitSerializable(m *Member, key, value string, modRevision int64, timeout time.Duration) {
	c.t.Helper()
	cli := c.Client(m)
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), readyPollTimeout)
		resp, err := cli.Get(ctx, key, clientv3.WithSerializable())
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case len(resp.Kvs) != 1:
			last = fmt.Sprintf("%d kvs at revision %d", len(resp.Kvs), resp.Header.Revision)
		case string(resp.Kvs[0].Value) != value || resp.Kvs[0].ModRevision != modRevision:
			last = fmt.Sprintf("%q at mod_revision %d", resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
		default:
			return
		}
		time.Sleep(clusterPollInterval)
	}
	c.t.Fatalf("%s: serializable get %s never returned %q at mod_revision %d within %v (last: %s)", m.Name, key, value, modRevision, timeout, last)
}

// AddMember adds a member to the cluster with MemberAdd (as a learner when
// learner is set) through cli, and returns it, set up to join with
// --initial-cluster-state existing, and its ID. It does not start it: call
// Launch, since a learner serves no linearizable read to wait for.
func (c *Cluster) AddMember(cli *clientv3.Client, name string, learner bool) (*Member, uint64) {
	c.t.Helper()
	m := c.newMember(name)
	add := cli.MemberAdd
	if learner {
		add = cli.MemberAddAsLearner
	}
	var resp *clientv3.MemberAddResponse
	err := retryUnhealthy(func(ctx context.Context) (err error) {
		resp, err = add(ctx, []string{m.PeerURL})
		return err
	})
	if err != nil {
		c.t.Fatalf("member add %s (learner %v): %v", name, learner, err)
	}
	var parts []string
	for _, pm := range resp.Members {
		n := pm.Name
		if pm.ID == resp.Member.ID {
			n = name
		}
		for _, u := range pm.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	m.InitialCluster = strings.Join(parts, ",")
	m.Extra = c.memberFlags("existing")
	c.Members = append(c.Members, m)
	return m, resp.Member.ID
}

// retryUnhealthy calls f until it returns anything but etcd's
// "unhealthy cluster", which etcd answers a membership change until its
// peers have been connected for 5 s, for at most clusterAddTimeout.
func retryUnhealthy(f func(ctx context.Context) error) error {
	deadline := time.Now().Add(clusterAddTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), clusterRequestTimeout)
		err := f(ctx)
		cancel()
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Followers returns the running members other than leader.
func (c *Cluster) Followers(leader *Member) []*Member {
	var out []*Member
	for _, m := range c.Running() {
		if m != leader {
			out = append(out, m)
		}
	}
	return out
}

// logHas reports whether the member's log holds the text.
func logHas(m *Member, text string) bool {
	data, err := os.ReadFile(m.LogPath)
	return err == nil && strings.Contains(string(data), text)
}
