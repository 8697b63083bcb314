package node

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func hashedPassword(p string) string { return base64.StdEncoding.EncodeToString([]byte("hash:" + p)) }

// TestAuthRequestsReplicated checks that auth requests go through raft:
// every member holds the state, a restart keeps it, the response carries
// the keyspace revision, and errors are etcd's.
func TestAuthRequestsReplicated(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	rev := h.put(leader, "k", "v")
	follower := h.ids[0]
	if follower == leader {
		follower = h.ids[1]
	}
	if _, err := h.serve(follower, Request{AuthRequests: AuthRequests{AuthEnable: &pb.AuthEnableRequest{}}}); !errors.Is(err, rpctypes.ErrGRPCRootUserNotExist) {
		t.Fatalf("enable without root: %v", err)
	}
	resp, err := h.serve(follower, Request{AuthRequests: AuthRequests{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: hashedPassword("pw")}}})
	if err != nil {
		t.Fatal(err)
	}
	hdr := resp.(*pb.AuthUserAddResponse).GetHeader()
	if hdr.GetRevision() != rev || hdr.GetMemberId() != follower {
		t.Fatalf("header %v, want revision %d from member %d", hdr, rev, follower)
	}
	for _, req := range []AuthRequests{
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "reader"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		if _, err := h.serve(leader, Request{AuthRequests: req}); err != nil {
			t.Fatalf("%v: %v", req, err)
		}
	}
	for _, id := range h.ids {
		if !h.node(id).AuthEnabled() || h.node(id).AuthRevision() != 4 {
			t.Fatalf("member %d: enabled %v revision %d, want enabled at 4", id, h.node(id).AuthEnabled(), h.node(id).AuthRevision())
		}
	}
	h.crash(follower)
	h.open(follower)
	if !h.caughtUp(leader, follower) {
		t.Fatal("follower did not catch up after a crash")
	}
	if _, err := h.serve(follower, Request{AuthRequests: AuthRequests{AuthRoleList: &pb.AuthRoleListRequest{}}}); !errors.Is(err, rpctypes.ErrGRPCUserEmpty) {
		t.Fatalf("role list without credentials once auth is enabled: %v", err)
	}
	resp, err = h.serve(follower, Request{AuthRequests: AuthRequests{AuthRoleList: &pb.AuthRoleListRequest{}}, Credentials: Credentials{CommonName: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	if roles := resp.(*pb.AuthRoleListResponse).GetRoles(); !slices.Equal(roles, []string{"reader"}) {
		t.Fatalf("roles after a crash: %v", roles)
	}
	if !h.node(follower).AuthEnabled() {
		t.Fatal("auth disabled after a crash")
	}
}

// TestAuthStateCarriedBySnapshot checks that a member catching up by
// snapshot gets the auth state with the keyspace.
func TestAuthStateCarriedBySnapshot(t *testing.T) {
	h, leader, follower := laggingFollower(t, TestingKnobs{})
	for _, req := range []AuthRequests{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: hashedPassword("a")}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"}},
	} {
		if _, err := h.serve(leader, Request{AuthRequests: req}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		h.put(leader, "after-auth", string(rune('a'+i)))
	}
	if err := h.node(leader).db.Flush(); err != nil {
		t.Fatal(err)
	}
	h.open(follower)
	if !h.caughtUp(leader, follower) {
		t.Fatal("follower did not catch up")
	}
	if st := h.node(follower).RaftState(); st.FirstIndex <= 3 {
		t.Fatalf("follower's log starts at %d: no snapshot", st.FirstIndex)
	}
	if got, want := h.node(follower).AuthRevision(), h.node(leader).AuthRevision(); got != want {
		t.Fatalf("follower's auth revision %d, leader's %d", got, want)
	}
	resp, err := h.serve(follower, Request{AuthRequests: AuthRequests{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	if roles := resp.(*pb.AuthUserGetResponse).GetRoles(); !slices.Equal(roles, []string{"r"}) {
		t.Fatalf("alice's roles on the follower: %v", roles)
	}
}
