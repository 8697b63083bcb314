package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
)

func grantReq(id, ttl int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}}
}

func revokeReq(id int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}
}

func leasePut(key string, id int64) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v"), Lease: id}}
}

// grant grants a lease through node id and returns its ID and TTL.
func (h *harness) grant(id uint64, leaseID, ttl int64) (int64, int64) {
	h.t.Helper()
	r := h.write(id, grantReq(leaseID, ttl)).Response.(*pb.LeaseGrantResponse)
	return r.ID, r.TTL
}

// fail proposes req on node id and returns the error it completes with.
func (h *harness) fail(id uint64, req *pb.InternalRaftRequest) error {
	h.t.Helper()
	rid := h.propose(id, req)
	h.settle()
	return h.mustComplete(id, rid).Err
}

func (h *harness) leaseKeys(id uint64, leaseID int64) []string {
	h.t.Helper()
	keys, err := h.node(id).Store().LeaseKeys(leaseID)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, string(k))
	}
	return out
}

func TestLeaseGrantAttachRevoke(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	id, ttl := h.grant(1, 0, 1)
	if id <= 0 || ttl != 2 {
		t.Fatalf("grant without ID: ID %d, TTL %d; want a positive ID and the minimum TTL 2", id, ttl)
	}
	other, _ := h.grant(1, 77, 100)
	if other != 77 {
		t.Fatalf("grant with ID 77 got ID %d", other)
	}
	h.write(1, leasePut("a", id))
	h.write(1, leasePut("b", id))
	h.write(1, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), Lease: id}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("d"), Lease: id}}},
	}}})
	h.write(1, leasePut("b", other))                                                              // moved to the other lease
	h.write(1, putReq("c", "no lease"))                                                           // detached
	h.write(1, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("d"), IgnoreLease: true}}) // stays
	h.write(1, leasePut("e", id))
	h.write(1, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("e")}}) // detached
	if got := h.leaseKeys(1, id); !slices.Equal(got, []string{"a", "d"}) {
		t.Fatalf("keys of lease %x: %q, want [a d]", id, got)
	}
	if got := h.leaseKeys(1, other); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("keys of lease 77: %q, want [b]", got)
	}
	before := h.node(1).Store().Rev()
	resp := h.write(1, revokeReq(id)).Response.(*pb.LeaseRevokeResponse)
	if resp.GetHeader().GetRevision() != before+1 || h.node(1).Store().Rev() != before+1 {
		t.Fatalf("revoke: header revision %d, store at %d; want both %d (one revision)", resp.GetHeader().GetRevision(), h.node(1).Store().Rev(), before+1)
	}
	for key, want := range map[string]bool{"a": false, "b": true, "c": true, "d": false, "e": false} {
		if _, found := h.get(1, key); found != want {
			t.Errorf("after revoke, key %q present = %v, want %v", key, found, want)
		}
	}
	if got := h.leaseKeys(1, id); len(got) != 0 {
		t.Fatalf("revoked lease still has keys %q", got)
	}
	if err := h.fail(1, leasePut("x", id)); !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("put with a revoked lease: %v", err)
	}
	// A revoke of a lease without keys takes no revision.
	rev := h.node(1).Store().Rev()
	h.write(1, leasePut("b", 0))
	h.write(1, revokeReq(other))
	if got := h.node(1).Store().Rev(); got != rev+1 {
		t.Fatalf("revoke of a lease without keys moved the revision to %d, want %d", got, rev+1)
	}
}

func TestLeaseErrors(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.grant(1, 5, 10)
	for _, c := range []struct {
		req  *pb.InternalRaftRequest
		want error
	}{
		{grantReq(5, 10), rpctypes.ErrGRPCLeaseExist},
		{grantReq(6, 9_000_000_001), rpctypes.ErrGRPCLeaseTTLTooLarge},
		{revokeReq(6), rpctypes.ErrGRPCLeaseNotFound},
		{leasePut("k", 6), rpctypes.ErrGRPCLeaseNotFound},
	} {
		if err := h.fail(1, c.req); !errors.Is(err, c.want) {
			t.Errorf("%v: %v, want %v", c.req, err, c.want)
		}
	}
}

func TestLeasesSurviveRestartAndCrash(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	h.grant(1, 10, 60)
	h.grant(1, 11, 60)
	h.write(1, leasePut("a", 10))
	h.write(1, revokeReq(11))
	h.restart(1)
	h.leader()
	if got := h.node(1).Leases(); len(got) != 1 || got[0].ID != 10 || got[0].TTLSeconds != 60 {
		t.Fatalf("leases after restart: %+v", got)
	}
	if err := h.fail(1, leasePut("b", 11)); !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("revoked lease came back after restart: %v", err)
	}
	h.write(1, leasePut("b", 10))
	h.crash(1)
	h.open(1)
	h.leader()
	if got := h.leaseKeys(1, 10); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("keys after crash: %q", got)
	}
}

// ticksFor is the ticks of the default clock (100 ms each) in s seconds.
func ticksFor(s int) int { return s * 10 }

func TestLeaseExpiresOnlyAfterTTL(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	id, _ := h.grant(1, 0, 5)
	h.write(1, leasePut("a", id))
	for range ticksFor(5) - 1 {
		h.tick()
	}
	if _, found := h.get(1, "a"); !found {
		t.Fatal("key deleted before the lease's TTL")
	}
	for range 2 {
		h.tick()
	}
	if _, found := h.get(1, "a"); found {
		t.Fatal("key not deleted after the lease's TTL")
	}
	if h.node(1).Leases() != nil && len(h.node(1).Leases()) != 0 {
		t.Fatal("expired lease not revoked")
	}
}

func TestKeepAliveDefersExpiry(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	id, _ := h.grant(1, 0, 3)
	h.write(1, leasePut("a", id))
	for i := range ticksFor(20) {
		if i%10 == 0 {
			if ttl, err := h.renew(1, id); err != nil || ttl != 3 {
				t.Fatalf("renew: %d, %v", ttl, err)
			}
		}
		h.tick()
	}
	if _, found := h.get(1, "a"); !found {
		t.Fatal("key of a kept-alive lease deleted")
	}
	resp, err := h.serve(1, Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: id}})
	if ttl, _ := resp.(*pb.LeaseTimeToLiveResponse); err != nil || ttl.GetGrantedTTL() != 3 || ttl.GetTTL() < 1 || ttl.GetTTL() > 3 {
		t.Fatalf("TimeToLive = %v, %v", resp, err)
	}
	for range ticksFor(3) + 1 {
		h.tick()
	}
	if ttl, err := h.renew(1, id); err != nil || ttl != 0 {
		t.Fatalf("renew after expiry: %d, %v; want TTL 0 (lease not found)", ttl, err)
	}
	if _, found := h.get(1, "a"); found {
		t.Fatal("key not deleted after keep-alives stopped")
	}
}

func TestLeaseAcrossLeaderChange(t *testing.T) {
	ids := []uint64{1, 2, 3}
	h := newHarness(t, ids, nil)
	lead := h.leader()
	id, _ := h.grant(lead, 0, 4)
	h.write(lead, leasePut("a", id))
	for _, m := range ids {
		if m != lead {
			if _, err := h.renew(m, id); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("renew on follower %d: %v", m, err)
			}
		}
	}
	// Most of the TTL passes, then the leader is cut off.
	for range ticksFor(3) {
		h.tick()
	}
	h.drop = func(m *raftpb.Message) bool { return m.GetFrom() == lead || m.GetTo() == lead }
	next := uint64(0)
	for range maxTicks {
		h.tick()
		for _, m := range ids {
			if m != lead && h.node(m).Status().IsLeader && h.node(m).Leases() != nil {
				next = m
			}
		}
		if next != 0 && h.node(next).lessor.IsPrimary() {
			break
		}
	}
	if next == 0 {
		t.Fatal("no new leader")
	}
	// The new leader gives the lease its full TTL again: it must survive
	// 4 s from now even though 3 s of it passed under the old leader.
	for range ticksFor(4) - 1 {
		h.tick()
		for _, m := range ids {
			if m == lead {
				continue
			}
			if _, found := h.get(m, "a"); !found {
				t.Fatalf("member %d: key deleted before a full TTL under the new leader", m)
			}
		}
	}
	// Keep-alives now go to the new leader; without them it expires.
	if ttl, err := h.renew(next, id); err != nil || ttl == 0 {
		t.Fatalf("renew on the new leader: %v", err)
	}
	for range ticksFor(4) + 2*10 + 2 {
		h.tick()
	}
	for _, m := range ids {
		if m == lead {
			continue
		}
		if _, found := h.get(m, "a"); found {
			t.Fatalf("member %d: key of an expired lease still present", m)
		}
	}
	// The old leader rejoins and converges: the key is gone there too.
	h.drop = nil
	for range 50 {
		h.tick()
	}
	if _, found := h.get(lead, "a"); found {
		t.Fatal("old leader kept the key of a revoked lease")
	}
	if h.node(lead).lessor.IsPrimary() {
		t.Fatal("deposed leader's lessor is still primary")
	}
}

// stepClock is a lease Clock the test moves by hand, shared by every
// member, as the members of a real cluster share one machine's clock.
type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

// A leader paused past a lease's TTL resumes still believing it leads, and
// its lessor finds the lease expired. Meanwhile a new leader has renewed
// it. The old leader must not revoke it: its revocation, proposed while it
// led but handed to raft after it stepped down, would be forwarded to the
// new leader and applied there, ending a lease a client just renewed.
func TestDeposedLeaderNeverRevokes(t *testing.T) {
	ids := []uint64{1, 2, 3}
	clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
	h := newHarness(t, ids, func(c *Config) { c.Clock = clock })
	advance := func(running ...uint64) {
		clock.t = clock.t.Add(h.node(ids[0]).cfg.TickInterval)
		for _, id := range running {
			h.node(id).Tick()
		}
		h.settle()
	}
	lead := h.leader()
	const ttl = 5
	id, _ := h.grant(lead, 0, ttl)
	h.write(lead, leasePut("a", id))
	var others []uint64
	for _, m := range ids {
		if m != lead {
			others = append(others, m)
		}
	}

	// The leader pauses: it neither ticks nor hears anyone, while the
	// others elect a new leader and a client keeps the lease alive there.
	h.drop = func(m *raftpb.Message) bool { return m.GetFrom() == lead || m.GetTo() == lead }
	next := uint64(0)
	for range ticksFor(2 * ttl) {
		advance(others...)
		for _, m := range others {
			if n := h.node(m); n.isLeader() && n.lessor.IsPrimary() {
				next = m
			}
		}
		if next != 0 {
			if got, err := h.renew(next, id); err != nil || got != ttl {
				t.Fatalf("renew on the new leader %d: TTL %d, %v", next, got, err)
			}
		}
	}
	if next == 0 {
		t.Fatal("no new leader while the old one was paused")
	}

	// The old leader resumes: its first tick finds the lease expired while
	// it still leads its old term. Before it processes that tick, it hears
	// the new leader's heartbeat and steps down.
	old := h.node(lead)
	old.Tick()
	if !old.isLeader() {
		t.Fatal("the resumed leader stepped down before its first tick")
	}
	h.drop = nil
	for range maxTicks {
		if !old.isLeader() {
			break
		}
		h.node(next).Tick()
		h.processOnce(next)
	}
	if old.isLeader() {
		t.Fatal("the resumed leader never heard the new one")
	}
	h.settle()
	for _, m := range ids {
		if _, found := h.get(m, "a"); !found {
			t.Fatalf("member %d: the deposed leader revoked a lease the new leader had just renewed", m)
		}
	}
	if got, err := h.renew(next, id); err != nil || got != ttl {
		t.Fatalf("renew after the old leader came back: TTL %d, %v", got, err)
	}
}

// A leader may step down and win a later term by the messages it steps
// between two of its ticks. Its lessor then still holds the expiries of
// its earlier term, though another leader renewed the leases in between;
// until its leader entry of the new term applies, it must not act on them.
func TestLessorOfAnEarlierTermNeverRevokes(t *testing.T) {
	ids := []uint64{1, 2, 3}
	clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
	h := newHarness(t, ids, func(c *Config) { c.Clock = clock })
	second := func() {
		for range ticksFor(1) {
			clock.t = clock.t.Add(h.node(ids[0]).cfg.TickInterval)
			h.tick()
		}
	}
	a := h.leader()
	const ttl = 5
	id, _ := h.grant(a, 0, ttl) // a's lessor: expires in 5 s
	h.write(a, leasePut("a", id))
	b := ids[0]
	if b == a {
		b = ids[1]
	}
	for range 3 {
		second()
	}

	// a hands over to b, which promotes its lessor and renews the lease
	// (5 s from now), all without a tick of a.
	h.node(a).raw.TransferLeader(b)
	h.settle()
	if !h.node(b).isLeader() || !h.node(b).lessor.IsPrimary() {
		t.Fatalf("member %d did not take over", b)
	}
	if got, err := h.renew(b, id); err != nil || got != ttl {
		t.Fatalf("renew on %d: TTL %d, %v", b, got, err)
	}
	// b hands back to a, whose empty entry of the new term cannot commit:
	// the acknowledgements of its appends are lost.
	h.drop = func(m *raftpb.Message) bool {
		return m.GetTo() == a && m.GetType() == raftpb.MsgAppResp
	}
	h.node(b).raw.TransferLeader(a)
	h.settle()
	old := h.node(a)
	if !old.isLeader() || old.raw.BasicStatus().GetTerm() == old.lessorTerm {
		t.Fatalf("member %d: leader %v, term %d, lessor's term %d",
			a, old.isLeader(), old.raw.BasicStatus().GetTerm(), old.lessorTerm)
	}
	// Past the expiry of a's earlier term, within b's renewal.
	clock.t = clock.t.Add(3 * time.Second)
	old.Tick()
	h.drop = nil
	h.settle()
	second()
	for _, m := range ids {
		if _, found := h.get(m, "a"); !found {
			t.Fatalf("member %d: a lessor of an earlier term revoked a lease renewed since", m)
		}
	}
}
