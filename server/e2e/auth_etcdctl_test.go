//go:build e2e

package e2e

import (
	"fmt"
	"testing"
)

// authCtlSteps manage users, roles and permissions through etcdctl while
// auth is disabled, then enable it (etcdctl's `auth enable` adds the root
// role and grants it to root when they are missing) and read the status,
// which needs no user; then work as users: without one, as root, as a user
// with a role on a prefix (inside and outside it, a wrong password, an
// admin command), and disable auth again.
// Every output and error, and the auth revision each step leaves, must be
// etcd's.
var authCtlSteps = []ctlStep{
	{args: []string{"auth", "status"}, wantEtcd: "Authentication Status: false\nAuthRevision: 1\n"},
	ctl("auth", "status", "-w", "json"),
	{args: []string{"auth", "enable"}, wantExit: 1},
	ctl("user", "add", "alice:a"),
	{args: []string{"user", "add", "alice:b"}, wantExit: 1},
	ctl("user", "add", "--no-password", "bob"),
	ctl("user", "add", "carol", "--new-user-password=c"),
	{args: []string{"user", "add", "dave", "--interactive=false"}, stdin: "d\n"},
	ctl("user", "list"),
	ctl("user", "list", "-w", "json"),
	ctl("user", "get", "alice"),
	{args: []string{"user", "get", "nobody"}, wantExit: 1},
	ctl("role", "add", "r1"),
	{args: []string{"role", "add", "r1"}, wantExit: 1},
	ctl("role", "add", "r2"),
	ctl("role", "grant-permission", "r1", "read", "foo"),
	ctl("role", "grant-permission", "r1", "readwrite", "pre/", "--prefix"),
	ctl("role", "grant-permission", "r1", "write", "a", "b"),
	ctl("role", "grant-permission", "r1", "read", "from", "--from-key"),
	ctl("role", "grant-permission", "r1", "write", "foo"),
	{args: []string{"role", "grant-permission", "r1", "read", "b", "a"}, wantExit: 1},
	{args: []string{"role", "grant-permission", "nor", "read", "b"}, wantExit: 1},
	ctl("role", "get", "r1"),
	ctl("role", "get", "r1", "-w", "json"),
	{args: []string{"role", "get", "nor"}, wantExit: 1},
	ctl("role", "list"),
	ctl("role", "list", "-w", "json"),
	ctl("user", "grant-role", "alice", "r2"),
	ctl("user", "grant-role", "alice", "r1"),
	ctl("user", "grant-role", "alice", "r1"),
	{args: []string{"user", "grant-role", "alice", "nor"}, wantExit: 1},
	{args: []string{"user", "grant-role", "nobody", "r1"}, wantExit: 1},
	ctl("user", "get", "alice", "--detail"),
	ctl("user", "get", "alice", "-w", "json"),
	ctl("auth", "status", "-w", "json"),
	ctl("role", "revoke-permission", "r1", "foo"),
	{args: []string{"role", "revoke-permission", "r1", "foo"}, wantExit: 1},
	ctl("role", "revoke-permission", "r1", "pre/", "--prefix"),
	{args: []string{"role", "revoke-permission", "nor", "foo"}, wantExit: 1},
	ctl("user", "revoke-role", "alice", "r2"),
	{args: []string{"user", "revoke-role", "alice", "r2"}, wantExit: 1},
	{args: []string{"user", "passwd", "alice", "--interactive=false"}, stdin: "a2\n"},
	{args: []string{"user", "passwd", "nobody", "--interactive=false"}, stdin: "x\n", wantExit: 1},
	ctl("role", "delete", "r1"),
	{args: []string{"role", "delete", "r1"}, wantExit: 1},
	ctl("user", "get", "alice"),
	ctl("user", "delete", "bob"),
	{args: []string{"user", "delete", "bob"}, wantExit: 1},
	ctl("user", "add", "root:rootpw"),
	ctl("role", "add", "root"),
	ctl("role", "get", "root"),
	ctl("role", "get", "root", "-w", "json"),
	ctl("user", "grant-role", "root", "root"),
	ctl("user", "get", "root"),
	ctl("user", "revoke-role", "root", "root"),
	ctl("role", "delete", "root"),
	ctl("auth", "status"),
	{args: []string{"auth", "enable"}, wantEtcd: "Authentication Enabled\n"},
	ctl("auth", "status"),
	ctl("auth", "status", "-w", "json"),
	{args: []string{"put", "k", "v"}, wantExit: 1},
	ctl("--user", "root:rootpw", "put", "k", "v"),
	ctl("--user", "root:rootpw", "role", "add", "rw"),
	ctl("--user", "root:rootpw", "role", "grant-permission", "rw", "readwrite", "app/", "--prefix"),
	ctl("--user", "root:rootpw", "user", "grant-role", "carol", "rw"),
	ctl("--user", "carol:c", "put", "app/1", "x"),
	{args: []string{"--user", "carol:c", "put", "k", "y"}, wantExit: 1},
	{args: []string{"--user", "carol:c", "get", "k"}, wantExit: 1},
	ctl("--user", "carol:c", "get", "app/", "--prefix"),
	{args: []string{"--user", "carol:wrong", "get", "app/1"}, wantExit: 2},
	{args: []string{"--user", "carol:c", "user", "list"}, wantExit: 1},
	ctl("--user", "carol:c", "user", "get", "carol"),
	ctl("--user", "root:rootpw", "user", "list"),
	ctl("--user", "root:rootpw", "auth", "status"),
	ctl("--user", "root:rootpw", "auth", "disable"),
	ctl("get", "k"),
}

// TestEtcdctlAuthInterop runs etcdctl's user, role and auth commands
// against a fresh etcd and a fresh subject and compares what etcdctl
// printed.
func TestEtcdctlAuthInterop(t *testing.T) {
	ctlBin := requireBin(t, "ETCDCTL_BIN")
	subject := subjectKind(t)
	ref := StartMember(t, KindEtcd, "--bcrypt-cost=4")
	sub := StartMember(t, subject, "--bcrypt-cost=4")
	for i, step := range authCtlSteps {
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
