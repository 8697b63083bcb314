//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// leaseTranscript runs one scripted sequence of lease requests against m
// with the raw gRPC stubs and returns what it saw, one line per request,
// with what differs by design (cluster and member IDs, raft term) zeroed
// and remaining TTLs checked, then replaced by "ok".
func leaseTranscript(t *testing.T, m *Member) string {
	conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lc, kv := pb.NewLeaseClient(conn), pb.NewKVClient(conn)
	ctx := ctxTimeout(t, 30*time.Second)
	var out []string
	record := func(what string, resp proto.Message, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("%s: error %v", what, err))
			return
		}
		out = append(out, fmt.Sprintf("%s: %s", what, normalizeMsg(resp)))
	}
	grant := func(id, ttl int64) {
		r, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
		record(fmt.Sprintf("grant %d ttl %d", id, ttl), r, err)
	}
	put := func(key string, lease int64) {
		r, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte("v"), Lease: lease})
		record(fmt.Sprintf("put %s lease %d", key, lease), r, err)
	}
	ttl := func(id int64, keys bool) {
		r, err := lc.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys})
		if err == nil && r.TTL > 0 {
			if r.TTL > r.GrantedTTL || r.TTL < r.GrantedTTL-3 {
				t.Errorf("%s: lease %d has %d s left of %d", m.Kind, id, r.TTL, r.GrantedTTL)
			}
			r.TTL = 1 // the seconds left depend on timing
		}
		record(fmt.Sprintf("timetolive %d keys %v", id, keys), r, err)
	}
	grant(100, 60)
	grant(100, 60)
	grant(101, 1)
	grant(102, 9_000_000_001)
	grant(103, 0)
	grant(-5, 30)
	put("a", 100)
	put("b", 100)
	put("c", 101)
	put("d", 999)
	put("b", 101)
	ttl(100, true)
	ttl(101, false)
	ttl(999, true)
	stream, err := lc.LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{100, 999, 103} {
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		record(fmt.Sprintf("keepalive %d", id), r, err)
	}
	stream.CloseSend()
	ls, err := lc.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err == nil {
		// Ordered by expiry in both; equal expiries have no fixed order.
		sort.Slice(ls.Leases, func(i, j int) bool { return ls.Leases[i].ID < ls.Leases[j].ID })
	}
	record("leases", ls, err)
	txn, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t1"), Lease: 100}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t2"), Lease: -5}}},
	}})
	record("txn put with leases", txn, err)
	txn, err = kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t3"), Lease: 4242}}},
	}})
	record("txn put with unknown lease", txn, err)
	rv, err := lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 100})
	record("revoke 100", rv, err)
	rv, err = lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 100})
	record("revoke 100 again", rv, err)
	rv, err = lc.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 103})
	record("revoke 103 (no keys)", rv, err)
	all, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	record("range all", all, err)
	ttl(100, true)
	ttl(-5, true)
	// Lease 101 (TTL raised to the minimum, 2 s) is not kept alive: its
	// keys go within its TTL plus the leader's expiry check.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("b")})
		if err == nil && len(r.Kvs) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	all, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	record("range all after 101 expired", all, err)
	ttl(101, false)
	return strings.Join(out, "\n")
}

var headerIDs = regexp.MustCompile(`(cluster_id|member_id|raft_term):\d+`)

func normalizeMsg(m proto.Message) string {
	s := prototext.MarshalOptions{}.Format(m)
	s = headerIDs.ReplaceAllString(s, "$1:0")
	return strings.Join(strings.Fields(s), " ")
}

// TestLeaseDifferential: the same lease requests against etcd and cairn
// give the same responses and errors (grant with and without the minimum
// TTL, duplicate IDs, too large TTLs, attach, move, txn, time-to-live with
// keys, keep-alive of live and unknown leases, list, revoke, expiry).
func TestLeaseDifferential(t *testing.T) {
	etcd := StartMember(t, KindEtcd)
	subject := StartMember(t, subjectKind(t))
	want := leaseTranscript(t, etcd)
	got := leaseTranscript(t, subject)
	compareLines(t, subject.Kind, want, got)
	t.Logf("etcd transcript:\n%s", want)
}

// The lease ID etcdctl prints, 16 hex digits or fewer.
var ctlLeaseID = regexp.MustCompile(`\b[0-9a-f]{6,16}\b`)

// TestEtcdctlLease runs etcdctl's lease commands against etcd and cairn and
// compares their output, lease IDs (chosen by the server) replaced.
func TestEtcdctlLease(t *testing.T) {
	bin := requireBin(t, "ETCDCTL_BIN")
	etcd := StartMember(t, KindEtcd)
	subject := StartMember(t, subjectKind(t))
	run := func(m *Member) []string {
		var out []string
		grant := runCtl(t, bin, m, "", "lease", "grant", "60")
		id := ctlLeaseID.FindString(grant.stdout)
		if id == "" {
			t.Fatalf("%s: lease grant printed %s", m.Kind, grant)
		}
		steps := [][]string{
			{"put", "k1", "v", "--lease=" + id},
			{"put", "k2", "v", "--lease=" + id},
			{"lease", "timetolive", id},
			{"lease", "timetolive", id, "--keys"},
			{"lease", "keep-alive", "--once", id},
			{"lease", "list"},
			{"lease", "revoke", id},
			{"lease", "timetolive", id},
			{"lease", "revoke", id},
			{"lease", "keep-alive", "--once", id},
			{"get", "k", "--prefix"},
			{"lease", "grant", "0"},
		}
		out = append(out, normalizeLeaseCtl(grant, id).String())
		for _, args := range steps {
			out = append(out, strings.ReplaceAll(strings.Join(args, " "), id, "ID")+" -> "+normalizeLeaseCtl(runCtl(t, bin, m, "", args...), id).String())
		}
		return out
	}
	want, got := run(etcd), run(subject)
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("step %d:\n  etcd:  %s\n  %s: %s", i, want[i], subject.Kind, got[i])
		}
	}
	t.Logf("etcd:\n%s", strings.Join(want, "\n"))
}

var ctlRemaining = regexp.MustCompile(`remaining\((\d+)s\)`)

// ctlAttachedKeys matches etcdctl's list of a lease's keys, which etcd
// prints in map order (different from run to run): it is compared sorted.
var ctlAttachedKeys = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)

func sortAttachedKeys(s string) string {
	return ctlAttachedKeys.ReplaceAllStringFunc(s, func(m string) string {
		keys := strings.Fields(ctlAttachedKeys.FindStringSubmatch(m)[1])
		sort.Strings(keys)
		return "attached keys([" + strings.Join(keys, " ") + "])"
	})
}

func normalizeLeaseCtl(r ctlResult, id string) ctlResult {
	r = normalizeCtl(r)
	r.stdout = strings.ReplaceAll(r.stdout, id, "ID")
	r.stderr = strings.ReplaceAll(r.stderr, id, "ID")
	r.stdout = ctlLeaseID.ReplaceAllString(r.stdout, "OTHERID")
	r.stdout = sortAttachedKeys(r.stdout)
	r.stdout = ctlRemaining.ReplaceAllStringFunc(r.stdout, func(s string) string {
		var n int
		fmt.Sscanf(s, "remaining(%ds)", &n)
		if n >= 57 && n <= 60 {
			return "remaining(~60s)"
		}
		return s
	})
	return r
}
