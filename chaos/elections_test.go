package chaos

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

const electionKeyA, electionKeyB = workload.ElectionPrefix + "e0/a", workload.ElectionPrefix + "e0/b"

func electionPut(key string, created, revision int64, value string) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: created, ModRevision: revision, Value: []byte(value)}}
}

func electionDelete(key string, revision int64) *mvccpb.Event {
	return &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: revision}}
}

func proclaimed(key string, created, revision int64, value string) workload.Proclamation {
	return workload.Proclamation{Election: "e0", Key: key, CreateRevision: created, Value: value, Revision: revision}
}

func told(observer, stream int, key string, created, modRevision, header int64, value string) workload.LeaderSeen {
	return workload.LeaderSeen{Observer: observer, Stream: stream, Election: "e0", Key: key, Value: value,
		CreateRevision: created, ModRevision: modRevision, HeaderRevision: header}
}

// electionHistory: a leads from 2 (value a0, a1 at 4) and resigns at 6;
// b campaigns at 3 and leads from 6 (value b0, b1 at 7), deleted at 9.
var electionHistory = []*mvccpb.Event{
	electionPut(electionKeyA, 2, 2, "a0"),
	electionPut(electionKeyB, 3, 3, "b0"),
	electionPut(electionKeyA, 2, 4, "a1"),
	electionDelete(electionKeyA, 6),
	electionPut(electionKeyB, 3, 7, "b1"),
	electionDelete(electionKeyB, 9),
}

func TestCheckElectionHistory(t *testing.T) {
	for _, tc := range []struct {
		name string
		pro  []workload.Proclamation
		seen []workload.LeaderSeen
		want string // a part of the first problem, "" for none
	}{
		{"leaders proclaim and are observed in order",
			[]workload.Proclamation{proclaimed(electionKeyA, 2, 4, "a1"), proclaimed(electionKeyB, 3, 7, "b1"), {Election: "e0", Key: electionKeyB, CreateRevision: 3, Value: "b0"}},
			[]workload.LeaderSeen{told(0, 0, electionKeyA, 2, 2, 3, "a0"), told(0, 0, electionKeyA, 2, 4, 4, "a1"), told(0, 0, electionKeyB, 3, 3, 6, "b0"),
				told(0, 1, electionKeyB, 3, 3, 6, "b0"), told(0, 1, electionKeyB, 3, 7, 7, "b1")}, ""},
		{"a proclamation by a key that did not lead",
			[]workload.Proclamation{{Election: "e0", Key: electionKeyB, CreateRevision: 3, Value: "b0", Revision: 3}}, nil, "while an older key still led"},
		{"a proclamation the history lacks",
			[]workload.Proclamation{proclaimed(electionKeyA, 2, 5, "a2")}, nil, "not in the store's history"},
		{"an observer told of a key before it led",
			nil, []workload.LeaderSeen{told(0, 0, electionKeyB, 3, 3, 3, "b0")}, "led e0 only from revision 6"},
		{"an observer told of a value the key never held",
			nil, []workload.LeaderSeen{told(0, 0, electionKeyA, 2, 4, 4, "a9")}, "does not say"},
		{"an observer told of leaders out of order",
			nil, []workload.LeaderSeen{told(0, 0, electionKeyB, 3, 3, 6, "b0"), told(0, 0, electionKeyA, 2, 4, 5, "a1")}, "after"},
		{"an observer told twice of one value in one stream",
			nil, []workload.LeaderSeen{told(0, 0, electionKeyA, 2, 4, 4, "a1"), told(0, 0, electionKeyA, 2, 4, 5, "a1")}, "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := checkElectionHistory(electionHistory, tc.pro, tc.seen)
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Fatalf("problems in a good history: %v", problems)
			case tc.want != "" && (len(problems) == 0 || !strings.Contains(strings.Join(problems, "; "), tc.want)):
				t.Fatalf("problems %v, want one mentioning %q", problems, tc.want)
			}
		})
	}
}
