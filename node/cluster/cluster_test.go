package cluster

import "testing"

// The IDs below are the ones the reference etcd prints (`etcdctl member
// list`, the response header) for the same flags.
func TestDefaultClusterMatchesEtcd(t *testing.T) {
	c, err := Parse("default=http://localhost:2380", "etcd-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Members[0].ID, uint64(0x8e9e05c52164694d); got != want {
		t.Errorf("member ID = %x, want %x", got, want)
	}
	if got, want := c.ID, uint64(0xcdf818194e3a8c32); got != want {
		t.Errorf("cluster ID = %x, want %x", got, want)
	}
}

func TestParseRejectsBadEntries(t *testing.T) {
	for _, in := range []string{"", "a", "a=", "=http://x:1", "a=ftp://x:1", "a=http://"} {
		if _, err := Parse(in, "t"); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestMembersSortedAndRepeatedNamesMerged(t *testing.T) {
	c, err := Parse("b=http://h:2,a=http://h:1,b=http://h:3", "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Members) != 2 {
		t.Fatalf("members = %+v, want 2", c.Members)
	}
	if c.Members[0].ID > c.Members[1].ID {
		t.Errorf("members not sorted by ID: %+v", c.Members)
	}
	b, _ := c.Find("b")
	if len(b.PeerURLs) != 2 || b.ID != MemberID([]string{"http://h:3", "http://h:2"}, "t") {
		t.Errorf("member b = %+v", b)
	}
}
