//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// subjectKind is the program compared against etcd: cairn, or etcd itself
// when E2E_SUBJECT=etcd (a self-check of the harness: it must pass).
func subjectKind(t testing.TB) Kind {
	switch s := os.Getenv("E2E_SUBJECT"); s {
	case "", "cairn":
		return KindCairn
	case "etcd":
		t.Logf("E2E_SUBJECT=etcd: comparing etcd against etcd (harness self-check)")
		return KindEtcd
	default:
		t.Fatalf("E2E_SUBJECT=%q: want cairn or etcd", s)
		return ""
	}
}

// ctlResult is what one etcdctl invocation printed.
type ctlResult struct {
	stdout, stderr string
	exitCode       int
}

func (r ctlResult) String() string {
	return fmt.Sprintf("exit %d\n  stdout: %q\n  stderr: %q", r.exitCode, r.stdout, r.stderr)
}

// JSON and "fields" output carry ids and the raft term that differ by design.
var ctlIDPattern = regexp.MustCompile(`("(?:cluster_id|member_id|raft_term)":)\d+|("(?:ClusterID|MemberID|RaftTerm)" : )\d+`)

// normalizeCtl makes outputs of two clusters comparable: ids and terms are
// zeroed, and etcdctl's own JSON log lines (timestamps, addresses) on stderr
// are dropped.
func normalizeCtl(r ctlResult) ctlResult {
	r.stdout = ctlIDPattern.ReplaceAllString(r.stdout, "${1}${2}0")
	var kept []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "{") || line == "" {
			continue
		}
		kept = append(kept, line)
	}
	r.stderr = strings.Join(kept, "\n")
	return r
}

func runCtl(t *testing.T, bin string, m *Member, stdin string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"--endpoints=" + m.ClientURL, "--dial-timeout=3s", "--command-timeout=5s"}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := ctlResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		if !isExitError(err) {
			t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
		}
		res.exitCode = cmd.ProcessState.ExitCode()
	}
	return res
}

// ctlStep is one etcdctl command. wantEtcd, if set, pins etcd's normalised
// stdout so that the harness itself is checked, not only the comparison.
type ctlStep struct {
	args     []string
	stdin    string
	wantEtcd string
	wantExit int
}

func ctl(args ...string) ctlStep { return ctlStep{args: args} }

var ctlSteps = []ctlStep{
	{args: []string{"put", "foo", "bar"}, wantEtcd: "OK\n"},
	{args: []string{"put", "foo", "baz", "--prev-kv"}, wantEtcd: "OK\nfoo\nbar\n"},
	ctl("put", "foo/a", "1"),
	ctl("put", "foo/b", "2"),
	ctl("put", "foo/c", "3"),
	ctl("put", "fop", "4"),
	ctl("put", "zoo", "5"),
	ctl("put", "foo/b", "22", "-w", "json", "--prev-kv"),
	{args: []string{"get", "foo"}, wantEtcd: "foo\nbaz\n"},
	ctl("get", "missing"),
	ctl("get", "foo", "--prefix"),
	{args: []string{"get", "foo", "-w", "json"}, wantEtcd: `{"header":{"cluster_id":0,"member_id":0,"revision":9,"raft_term":0},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmF6"}],"count":1}` + "\n"},
	ctl("get", "foo", "--prefix", "-w", "json"),
	ctl("get", "foo/", "--prefix", "--limit", "1", "-w", "json"),
	ctl("get", "foo", "-w", "fields"),
	ctl("get", "foo/b", "--from-key"),
	ctl("get", "", "--from-key", "--keys-only"),
	ctl("get", "foo", "--rev", "2"),
	ctl("get", "foo", "--prefix", "--rev", "4", "-w", "json"),
	ctl("get", "foo", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"),
	ctl("get", "f", "--prefix", "--sort-by", "VALUE", "--order", "ASCEND", "--keys-only"),
	ctl("get", "f", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND", "--limit", "2", "-w", "json"),
	ctl("get", "f", "--prefix", "--sort-by", "CREATE", "--print-value-only"),
	ctl("get", "f", "--prefix", "--count-only", "-w", "fields"),
	ctl("get", "foo", "--hex"),
	ctl("get", "foo", "--consistency", "s", "-w", "json"),
	ctl("get", "foo/a", "foo/c"),
	ctl("del", "foo/a"),
	ctl("del", "missing"),
	ctl("del", "foo/", "--prefix", "--prev-kv"),
	ctl("del", "fop", "-w", "json"),
	{args: []string{"txn"}, stdin: "mod(\"foo\") = \"3\"\n\nput foo cas1\n\nget foo\n\n", wantEtcd: "SUCCESS\n\nOK\n"},
	{args: []string{"txn", "-w", "json"}, stdin: "mod(\"foo\") = \"3\"\n\nput foo cas2\n\nget foo\n\n"},
	{args: []string{"txn"}, stdin: "val(\"foo\") = \"cas1\"\nver(\"foo\") > \"1\"\ncreate(\"foo\") < \"3\"\n\nget foo --prefix\ndel zoo --prev-kv\nput new n\n\nput never x\n\n"},
	{args: []string{"txn", "-w", "json"}, stdin: "ver(\"absent\") = \"0\"\nval(\"foo\") != \"cas1\"\n\nput never x\n\nget \"\" --from-key --keys-only\n\n"},
	{args: []string{"compaction", "5"}, wantEtcd: "compacted revision 5\n"},
	{args: []string{"get", "foo", "--rev", "4"}, wantExit: 1},
	{args: []string{"compaction", "3"}, wantExit: 1},
	{args: []string{"get", "foo", "--rev", "1000"}, wantExit: 1},
	{args: []string{"compaction", "1000"}, wantExit: 1},
	ctl("compaction", "--physical", "7"),
	ctl("get", "foo", "--rev", "7", "-w", "json"),
	{args: []string{"put", "absent", "--ignore-value"}, wantExit: 1},
	{args: []string{"put", "foo", "--lease", "1234", "x"}, wantExit: 1},
	{args: []string{"txn"}, stdin: "\nput dup 1\nput dup 2\n\n\n", wantExit: 1},
	ctl("put", "foo", "--ignore-value", "-w", "json"),
	ctl("get", "", "--from-key", "-w", "json"),
}

// TestEtcdctlInterop runs the same etcdctl commands against a fresh etcd and a
// fresh subject, side by side, and compares what etcdctl printed.
func TestEtcdctlInterop(t *testing.T) {
	ctlBin := requireBin(t, "ETCDCTL_BIN")
	subject := subjectKind(t)
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subject)
	for i, step := range ctlSteps {
		what := fmt.Sprintf("step %d: etcdctl %q (stdin %q)", i, step.args, step.stdin)
		want := normalizeCtl(runCtl(t, ctlBin, ref, step.stdin, step.args...))
		got := normalizeCtl(runCtl(t, ctlBin, sub, step.stdin, step.args...))
		if want.exitCode != step.wantExit || (step.wantEtcd != "" && want.stdout != step.wantEtcd) {
			t.Fatalf("%s: harness check: etcd gave %v\n want exit %d stdout %q", what, want, step.wantExit, step.wantEtcd)
		}
		if got != want {
			t.Errorf("%s: %s differs from etcd\n etcd:  %v\n %s: %v", what, subject, want, subject, got)
		}
	}
}
