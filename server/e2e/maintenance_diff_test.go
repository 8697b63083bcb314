//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Maintenance service side by side with etcd: alarms, NOSPACE, endpoint
// health, hashkv, status and defrag as etcdctl prints them. Values that
// differ by design — the hash itself, sizes, raft positions, timings, IDs
// and URLs — are blanked; everything else must be etcd's.

const (
	// quotaTestBytes is the --quota-backend-bytes both sides run with in
	// the NOSPACE test, and quotaFillValueBytes the value size that fills
	// it; quotaFillPutsMax bounds the puts that fill it.
	quotaTestBytes      = 200_000
	quotaFillValueBytes = 60_000
	quotaFillPutsMax    = 40
	// quotaSettle is how long the fill waits between puts for the size
	// the quota reads to catch up (etcd's bbolt commits every 100 ms;
	// cairn samples Pebble's size every second and counts applied bytes
	// in between).
	quotaSettle = 150 * time.Millisecond
)

var (
	tookPattern = regexp.MustCompile(`took (= )?[0-9.]+(µs|ns|ms|s)`)
	// statusVolatileJSON are endpoint status -w json fields that differ by
	// design: sizes, raft positions, the leader's ID.
	statusVolatileJSON = []string{"dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "raftTerm", "leader"}
	hashVolatileJSON   = []string{"hash"}
)

// maintCtl runs etcdctl against one member and makes the output
// comparable: IDs zeroed (normalizeCtl), the member's URL and decimal ID
// named, timings blanked, and in JSON the given fields blanked.
func maintCtl(t *testing.T, bin string, m *Member, volatile []string, args ...string) ctlResult {
	t.Helper()
	r := normalizeCtl(runCtl(t, bin, m, "", args...))
	if len(volatile) > 0 {
		r.stdout = blankJSON(t, r.stdout, volatile)
	}
	id := fmt.Sprint(memberID(t, m))
	named := strings.NewReplacer(m.ClientURL, "<endpoint>", m.Endpoint(), "<endpoint>", id, "<id>")
	r.stdout = tookPattern.ReplaceAllString(named.Replace(r.stdout), "took *")
	r.stderr = tookPattern.ReplaceAllString(named.Replace(r.stderr), "took *")
	return r
}

func memberID(t *testing.T, m *Member) uint64 {
	t.Helper()
	st, err := m.Client().Status(ctxTimeout(t, 5*time.Second), m.Endpoint())
	if err != nil {
		t.Fatalf("%s: status: %v", m.Kind, err)
	}
	return st.Header.MemberId
}

// blankJSON re-marshals a JSON document with the named fields, at any
// depth, replaced by "*".
func blankJSON(t *testing.T, s string, fields []string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return s // not JSON: an error message, compared as it is
	}
	var blank func(v any)
	blank = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if slices.Contains(fields, k) {
					x[k] = "*"
					continue
				}
				blank(e)
			}
		case []any:
			for _, e := range x {
				blank(e)
			}
		}
	}
	blank(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("re-marshal %q: %v", s, err)
	}
	return string(out) + "\n"
}

// maintStep is one etcdctl command of the comparison, with etcd's expected
// exit code (checked, so the comparison covers what it claims to).
type maintStep struct {
	args     []string
	volatile []string
	wantExit int
	// wantEtcd, if set, must be in what etcd printed (stdout or stderr).
	wantEtcd string
	// etcdLowered, if set, is in what etcd prints instead once its version
	// monitor (a timer of 4 s) has lowered its cluster version to an
	// enabled downgrade's target, which cairn does not do
	// (compatibility.md, Downgrade). etcd's answer then depends on when its
	// timer fired, so the subject is held to wantEtcd and wantExit alone.
	etcdLowered string
}

func runMaintSteps(t *testing.T, bin string, ref, sub *Member, steps []maintStep) {
	t.Helper()
	for i, s := range steps {
		what := fmt.Sprintf("step %d: etcdctl %q", i, s.args)
		want := maintCtl(t, bin, ref, s.volatile, s.args...)
		got := maintCtl(t, bin, sub, s.volatile, s.args...)
		if s.etcdLowered != "" && strings.Contains(want.stdout+want.stderr, s.etcdLowered) {
			t.Logf("%s: etcd had lowered its cluster version: %v", what, want)
			if got.exitCode != s.wantExit || !strings.Contains(got.stdout+got.stderr, s.wantEtcd) {
				t.Errorf("%s: %s gave %v, want exit %d and output with %q", what, sub.Kind, got, s.wantExit, s.wantEtcd)
			}
			continue
		}
		if want.exitCode != s.wantExit || !strings.Contains(want.stdout+want.stderr, s.wantEtcd) {
			t.Fatalf("%s: harness check: etcd gave %v, want exit %d and stdout with %q", what, want, s.wantExit, s.wantEtcd)
		}
		if got != want {
			t.Errorf("%s: %s differs from etcd\n etcd: %v\n %s: %v", what, sub.Kind, want, sub.Kind, got)
		}
	}
}

// TestMaintenanceEtcdctl: endpoint health, alarm list, hashkv before and
// after a compaction, defrag and endpoint status on a fresh member.
func TestMaintenanceEtcdctl(t *testing.T) {
	bin := requireBin(t, "ETCDCTL_BIN")
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subjectKind(t))
	runMaintSteps(t, bin, ref, sub, []maintStep{
		{args: []string{"endpoint", "health"}, wantEtcd: "<endpoint> is healthy: successfully committed proposal: took *"},
		{args: []string{"endpoint", "health", "-w", "json"}, volatile: []string{"took"}},
		{args: []string{"alarm", "list"}},
		{args: []string{"alarm", "disarm"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}, volatile: hashVolatileJSON, wantEtcd: `"compact_revision":-1,"hash":"*","hash_revision":1`},
		{args: []string{"put", "a", "1"}, wantEtcd: "OK"},
		{args: []string{"put", "a", "2"}},
		{args: []string{"put", "b", "3"}},
		{args: []string{"del", "a"}},
		{args: []string{"compaction", "3"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}, volatile: hashVolatileJSON, wantEtcd: `"compact_revision":3,"hash":"*","hash_revision":5`},
		{args: []string{"endpoint", "hashkv", "--rev", "4", "-w", "json"}, volatile: hashVolatileJSON, wantEtcd: `"hash_revision":4`},
		{args: []string{"endpoint", "hashkv", "--rev", "2"}, wantExit: 1},
		{args: []string{"endpoint", "hashkv", "--rev", "99"}, wantExit: 1},
		{args: []string{"defrag"}, wantEtcd: "Finished defragmenting etcd member[<endpoint>]. took *"},
		{args: []string{"get", "b", "--print-value-only"}, wantEtcd: "3"},
		{args: []string{"endpoint", "status", "-w", "json"}, volatile: statusVolatileJSON, wantEtcd: `"version":"3.7.3"`},
		{args: []string{"downgrade", "validate", "3.6"}, wantEtcd: "Downgrade validate success, cluster version 3.7"},
		{args: []string{"downgrade", "validate", "3.7"}, wantExit: 1, wantEtcd: "invalid downgrade target version"},
		{args: []string{"downgrade", "validate", "v3.6"}, wantExit: 1, wantEtcd: "wrong downgrade target version format"},
		{args: []string{"downgrade", "cancel"}, wantEtcd: "Downgrade cancel success, cluster version 3.7"},
		{args: []string{"downgrade", "enable", "3.6.1", "-w", "json"}},
		// From here etcd's answers change once its version monitor runs.
		{args: []string{"downgrade", "enable", "3.6"}, wantExit: 1, wantEtcd: "cluster has a downgrade job in progress",
			etcdLowered: "invalid downgrade target version"},
		{args: []string{"endpoint", "status", "-w", "json"}, volatile: statusVolatileJSON, wantEtcd: `"downgradeInfo":{"enabled":true,"targetVersion":"3.6.0"}`,
			etcdLowered: `"storageVersion":"3.6.0"`},
		{args: []string{"downgrade", "cancel"}, wantEtcd: "Downgrade cancel success, cluster version 3.7",
			etcdLowered: "cluster version 3.6"},
		{args: []string{"endpoint", "status", "-w", "json"}, volatile: statusVolatileJSON, wantEtcd: `"downgradeInfo":{}`,
			etcdLowered: `"storageVersion":"3.6.0"`},
	})
}

// TestQuotaNoSpaceEtcdctl: both sides fill a small quota until a put is
// refused, then must agree on everything NOSPACE means: the alarm list,
// health, refused puts and lease grants, reads and deletes that pass, the
// status errors, a disarm that a write over the quota raises again.
func TestQuotaNoSpaceEtcdctl(t *testing.T) {
	bin := requireBin(t, "ETCDCTL_BIN")
	quota := fmt.Sprintf("--quota-backend-bytes=%d", quotaTestBytes)
	ref := StartMember(t, KindEtcd, quota)
	sub := StartMember(t, subjectKind(t), quota)
	value := strings.Repeat("v", quotaFillValueBytes)
	for _, m := range []*Member{ref, sub} {
		fillQuota(t, bin, m, value)
	}
	runMaintSteps(t, bin, ref, sub, []maintStep{
		{args: []string{"alarm", "list"}, wantEtcd: "memberID:<id> alarm:NOSPACE\n"},
		// The fill's length differs (the sizes do), and with it the revision.
		{args: []string{"alarm", "list", "-w", "json"}, volatile: []string{"revision"}},
		{args: []string{"endpoint", "health"}, wantExit: 1, wantEtcd: "is unhealthy: failed to commit proposal: Active Alarm(s): NOSPACE"},
		{args: []string{"put", "small", "x"}, wantExit: 1},
		{args: []string{"lease", "grant", "100"}, wantExit: 1},
		{args: []string{"get", "fill-0", "--keys-only"}, wantEtcd: "fill-0"},
		{args: []string{"del", "fill-0"}, wantEtcd: "1"},
		{args: []string{"endpoint", "status", "-w", "json"}, volatile: append(statusVolatileJSON, "revision"), wantEtcd: `"errors":["memberID:<id> alarm:NOSPACE"]`},
		{args: []string{"alarm", "disarm"}, wantEtcd: "memberID:<id> alarm:NOSPACE\n"},
		{args: []string{"alarm", "list"}},
		{args: []string{"endpoint", "health"}, wantEtcd: "is healthy"},
		// A write that would pass the quota raises the alarm again. (How
		// far below the quota the fill left each database differs: etcd's
		// file grows in steps, cairn counts what it wrote.)
		{args: []string{"put", "again", value}, wantExit: 1},
		{args: []string{"alarm", "list"}, wantEtcd: "memberID:<id> alarm:NOSPACE\n"},
	})
}

// fillQuota puts values until the member refuses one for want of space.
func fillQuota(t *testing.T, bin string, m *Member, value string) {
	t.Helper()
	for i := range quotaFillPutsMax {
		r := runCtl(t, bin, m, "", "put", fmt.Sprintf("fill-%d", i), value)
		if r.exitCode != 0 {
			if !strings.Contains(r.stderr, "etcdserver: mvcc: database space exceeded") {
				t.Fatalf("%s: fill put %d: %v", m.Kind, i, r)
			}
			t.Logf("%s: quota of %d bytes refused put %d of %d bytes", m.Kind, quotaTestBytes, i, len(value))
			return
		}
		time.Sleep(quotaSettle)
	}
	t.Fatalf("%s: %d puts of %d bytes passed a quota of %d bytes", m.Kind, quotaFillPutsMax, len(value), quotaTestBytes)
}
