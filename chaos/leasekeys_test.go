package chaos

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseKeyPut and leaseKeyDelete are events of the i-th key of lease at
// revision.
func leaseKeyPut(lease int64, i int, revision int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(workload.LeaseKey(clientLease(lease), i)), ModRevision: revision, Lease: lease}}
}

func leaseKeyDelete(lease int64, i int, revision int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(workload.LeaseKey(clientLease(lease), i)), ModRevision: revision}}
}

func attached(lease int64, i int, revision int64) workload.LeaseObservation {
	return workload.LeaseObservation{Lease: clientLease(lease), Op: workload.LeaseAttach, Outcome: workload.LeaseAlive,
		Key: workload.LeaseKey(clientLease(lease), i), Revision: revision}
}

// revisionCounts counts the events of each revision, as the whole
// keyspace's history would, plus extra changes of other keys.
func revisionCounts(events []*mvccpb.Event, extra map[int64]int) map[int64]int {
	out := map[int64]int{}
	for _, e := range events {
		out[e.Kv.ModRevision]++
	}
	for r, n := range extra {
		out[r] += n
	}
	return out
}

func TestCheckLeaseKeyEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []*mvccpb.Event
		extra  map[int64]int
		obs    []workload.LeaseObservation
		want   string // a part of the first problem, "" for none
	}{
		{"two leases, each deleted at its own revision",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyPut(0x11, 1, 3), leaseKeyPut(0x22, 0, 4), leaseKeyDelete(0x11, 0, 6), leaseKeyDelete(0x11, 1, 6), leaseKeyDelete(0x22, 0, 7)},
			map[int64]int{5: 1}, []workload.LeaseObservation{attached(0x11, 0, 2), attached(0x11, 1, 3), attached(0x22, 0, 4)}, ""},
		{"keys of one lease deleted at two revisions",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyPut(0x11, 1, 3), leaseKeyDelete(0x11, 0, 6), leaseKeyDelete(0x11, 1, 7)},
			nil, nil, "not at one"},
		{"a key never deleted",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyPut(0x11, 1, 3), leaseKeyDelete(0x11, 0, 6)},
			nil, nil, "never deleted"},
		{"a key put again after its lease ended",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyDelete(0x11, 0, 6), leaseKeyPut(0x11, 0, 8)},
			nil, nil, "changed after its delete"},
		{"the delete revision holds another change",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyDelete(0x11, 0, 6)},
			map[int64]int{6: 1}, nil, "holds 2 changes"},
		{"an acknowledged attach missing from the history",
			[]*mvccpb.Event{leaseKeyPut(0x11, 0, 2), leaseKeyDelete(0x11, 0, 6)},
			nil, []workload.LeaseObservation{attached(0x11, 0, 2), attached(0x11, 1, 3)}, "not in the store's history"},
		{"a key put with another lease",
			[]*mvccpb.Event{leaseKeyPut(0x33, 0, 2), leaseKeyDelete(0x11, 0, 6)},
			nil, nil, "was put with lease 33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "a key put with another lease" {
				tc.events[0].Kv.Key = []byte(workload.LeaseKey(clientLease(0x11), 0))
			}
			problems, _, _ := checkLeaseKeyEvents(tc.events, revisionCounts(tc.events, tc.extra), tc.obs)
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Fatalf("problems in a good history: %v", problems)
			case tc.want != "" && (len(problems) == 0 || !strings.Contains(strings.Join(problems, "; "), tc.want)):
				t.Fatalf("problems %v, want one mentioning %q", problems, tc.want)
			}
		})
	}
}

func clientLease(id int64) clientv3.LeaseID { return clientv3.LeaseID(id) }
