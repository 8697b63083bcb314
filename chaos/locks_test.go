package chaos

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/chaos/workload"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// lockEvents builds a history of lock and fenced keys: "+k@c" creates
// lock key k of lock l0 at revision c, "-k@r" deletes it, "w k@r" is a
// fenced write of l0 by k at revision r.
func lockEvents(t *testing.T, steps ...string) []*mvccpb.Event {
	t.Helper()
	var events []*mvccpb.Event
	for _, step := range steps {
		var kind, key string
		var revision int64
		switch {
		case strings.HasPrefix(step, "w "):
			kind, step = "w", step[2:]
		default:
			kind, step = step[:1], step[1:]
		}
		name, rev, _ := strings.Cut(step, "@")
		for _, c := range rev {
			revision = revision*10 + int64(c-'0')
		}
		key = workload.LockPrefix + "l0/" + name
		switch kind {
		case "+":
			events = append(events, &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: revision, ModRevision: revision}})
		case "-":
			events = append(events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: revision}})
		case "w":
			events = append(events, &mvccpb.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{
				Key: []byte(workload.FencedPrefix + "l0"), Value: []byte(key + " tag"), ModRevision: revision}})
		default:
			t.Fatalf("bad step %q", step)
		}
	}
	return events
}

func TestCheckFencing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string
		want  string // a part of the problem, "" for none
	}{
		{"owners in turn", []string{"+a@2", "+b@3", "w a@4", "-a@5", "w b@6", "-b@7"}, ""},
		{"a waiter writes", []string{"+a@2", "+b@3", "w b@4"}, "owned the lock"},
		{"a writer whose key expired", []string{"+a@2", "-a@3", "w a@4"}, "held no lock key"},
		{"an older owner after a newer one", []string{"+b@3", "w b@4", "-b@5", "+a@2", "w a@6"}, "after one created at 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, _ := checkFencing(lockEvents(t, tc.steps...))
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Fatalf("unexpected problems: %v", problems)
			case tc.want != "" && len(problems) != 1:
				t.Fatalf("want one problem with %q, got %v", tc.want, problems)
			case tc.want != "" && !strings.Contains(problems[0], tc.want):
				t.Fatalf("problem %q does not say %q", problems[0], tc.want)
			}
		})
	}
}
