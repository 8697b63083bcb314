//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestClusterTLSAuth runs a 3-member cluster with mutual TLS on both ports
// and auth enabled: the client certificate's CN ("client") is a user with
// read-write on tls/, which the TLS workload then writes through every
// member; a user with a password (alice) authenticates over TLS and gets a
// token that wins over its certificate's name; a certificate whose CN is no
// user (intruder) may do nothing. Against etcd too, so the test itself is
// checked.
func TestClusterTLSAuth(t *testing.T) {
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		t.Run(string(kind), func(t *testing.T) { testClusterTLSAuth(t, kind) })
	}
}

func testClusterTLSAuth(t *testing.T, kind Kind) {
	p := newTLSPKI(t)
	c := launchCluster(&Cluster{t: t, Kind: kind, Token: "e2e-tls-auth-" + string(kind),
		extra: append(p.flags(), "--bcrypt-cost=4"), tls: p.clientTLS(t, p.client)}, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cli.UserAdd(ctx, "root", "rootpw"))
	must(cli.UserGrantRole(ctx, "root", "root"))
	must(cli.RoleAdd(ctx, "tls-rw"))
	must(cli.RoleGrantPermission(ctx, "tls-rw", "tls/", clientv3.GetPrefixRangeEnd("tls/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(cli.UserAddWithOptions(ctx, "client", "", &clientv3.UserAddOptions{NoPassword: true}))
	must(cli.UserGrantRole(ctx, "client", "tls-rw"))
	must(cli.RoleAdd(ctx, "alice-rw"))
	must(cli.RoleGrantPermission(ctx, "alice-rw", "alice/", clientv3.GetPrefixRangeEnd("alice/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(cli.UserAdd(ctx, "alice", "alicepw"))
	must(cli.UserGrantRole(ctx, "alice", "alice-rw"))
	must(cli.AuthEnable(ctx))
	// Every member applies the enable before the workload: a member that
	// has not would take a write without its user, which etcd then refuses
	// ("user name is empty") when the write applies after the enable.
	for _, m := range c.Running() {
		st, err := m.Client().AuthStatus(ctx)
		if err != nil || !st.Enabled {
			t.Fatalf("%s: auth status %v %v", m.Name, st, err)
		}
	}

	tlsWorkload(t, cli)
	for _, m := range c.Members {
		waitTLSCount(t, m, "tls/", tlsWriters*tlsPutsPerWriter)
	}
	if _, err := cli.Put(ctx, "alice/1", "v"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("the certificate's user wrote outside its permission: %v", err)
	}

	var endpoints []string
	for _, m := range c.Running() {
		endpoints = append(endpoints, m.ClientURL)
	}
	alice, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: p.clientTLS(t, p.client),
		Username: "alice", Password: "alicepw", DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	for i := range 20 {
		if _, err := alice.Put(ctx, "alice/"+string(rune('a'+i)), "v"); err != nil {
			t.Fatalf("alice's put over TLS: %v", err)
		}
	}
	if _, err := alice.Put(ctx, "tls/alice", "v"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("alice's token did not win over the certificate's name: %v", err)
	}
	// Alice's lease, kept alive through every member: a follower forwards
	// the keep-alive to the leader with her token.
	lease, err := alice.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Put(ctx, "alice/leased", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Running() {
		one, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, TLS: p.clientTLS(t, p.client),
			Username: "alice", Password: "alicepw", DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ka, err := one.KeepAliveOnce(ctx, lease.ID)
		one.Close()
		if err != nil || ka.TTL <= 0 {
			t.Fatalf("%s: alice's keep-alive: %v %v", m.Name, ka, err)
		}
	}

	// A lease of the certificate's user, kept alive through every member:
	// a follower checks the renewal against its own auth state and
	// forwards it to the leader as its own, as etcd does, so a client
	// without a token renews through followers too.
	certLease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "tls/leased", "v", clientv3.WithLease(certLease.ID)); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Running() {
		one := dialMember(t, m, p.clientTLS(t, p.client))
		ka, err := one.KeepAliveOnce(ctx, certLease.ID)
		if err != nil || ka.TTL <= 0 {
			t.Fatalf("%s: the certificate user's keep-alive: %v %v", m.Name, ka, err)
		}
		ttl, err := one.TimeToLive(ctx, certLease.ID, clientv3.WithAttachedKeys())
		one.Close()
		if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 {
			t.Fatalf("%s: the certificate user's time-to-live: %v %v", m.Name, ttl, err)
		}
	}

	intruder, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: p.clientTLS(t, p.intruder),
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	if _, err := intruder.Get(ctx, "tls/", clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("a certificate naming no user read: %v", err)
	}
	// Nor may it renew another user's lease, through any member: the
	// member it reaches refuses it at once.
	for _, m := range c.Running() {
		one := dialMember(t, m, p.clientTLS(t, p.intruder))
		_, err := one.KeepAliveOnce(ctx, certLease.ID)
		one.Close()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Fatalf("%s: a certificate naming no user renewed a lease: %v", m.Name, err)
		}
	}
}

// dialMember connects an official client to member m alone, over TLS with
// the certificate cfg holds; the caller closes it.
func dialMember(t *testing.T, m *Member, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, TLS: cfg,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
