//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// waitCount polls until exactly n keys are under prefix, so a transcript
// goes on only once a blocked or abandoned request has written what it
// writes, and revisions stay the same in both systems.
func waitCount(t *testing.T, ctx context.Context, kv pb.KVClient, prefix string, n int64) {
	t.Helper()
	end := []byte(prefix)
	end[len(end)-1]++
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte(prefix), RangeEnd: end, CountOnly: true})
		if err == nil && r.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys under %q (err %v); want %d", r.GetCount(), prefix, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockElectionTranscript runs one scripted sequence of Lock and Election
// requests against m with the raw gRPC stubs, leases chosen by the client
// so keys are the same in both systems, and returns one line per request.
func lockElectionTranscript(t *testing.T, m *Member) string {
	conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lc, ec := v3lockpb.NewLockClient(conn), v3electionpb.NewElectionClient(conn)
	kv, leases := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	ctx := ctxTimeout(t, 60*time.Second)
	var out []string
	record := func(what string, resp proto.Message, err error) {
		if status.Code(err) == codes.DeadlineExceeded {
			// The client's own deadline: how gRPC words it depends on
			// whether the deadline or the stream reset is seen first.
			out = append(out, fmt.Sprintf("%s: deadline exceeded", what))
			return
		}
		if err != nil {
			out = append(out, fmt.Sprintf("%s: error %v", what, err))
			return
		}
		out = append(out, fmt.Sprintf("%s: %s", what, normalizeMsg(resp)))
	}
	for _, id := range []int64{0x100, 0x200, 0x300, 0x400, 0x500} {
		_, err := leases.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: 60})
		if err != nil {
			t.Fatalf("%s: grant %x: %v", m.Kind, id, err)
		}
	}
	lock := func(name string, lease int64) *v3lockpb.LockResponse {
		r, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name), Lease: lease})
		record(fmt.Sprintf("lock %q lease %x", name, lease), r, err)
		return r
	}
	unlock := func(key []byte) {
		r, err := lc.Unlock(ctx, &v3lockpb.UnlockRequest{Key: key})
		record(fmt.Sprintf("unlock %q", key), r, err)
	}

	held := lock("mylock", 0x100)
	lock("mylock", 0x100) // the holder again
	waitCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	r, err := lc.Lock(waitCtx, &v3lockpb.LockRequest{Name: []byte("mylock"), Lease: 0x200})
	cancel()
	record("lock mylock lease 200 while held, 500 ms", r, err)
	waitCount(t, ctx, kv, "mylock/", 1) // the abandoned waiter's key is deleted
	lock("mylock", 0x999)
	lock("", 0x500)
	waiting := make(chan *v3lockpb.LockResponse, 1)
	go func() {
		r, err := lc.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("mylock"), Lease: 0x200})
		if err != nil {
			t.Errorf("%s: waiting lock: %v", m.Kind, err)
		}
		waiting <- r
	}()
	waitCount(t, ctx, kv, "mylock/", 2)
	unlock(held.GetKey())
	record("lock mylock lease 200 after unlock", <-waiting, nil)
	unlock(held.GetKey())
	unlock(nil)

	name := []byte("myelection")
	lead, err := ec.Leader(ctx, &v3electionpb.LeaderRequest{Name: name})
	record("leader (none)", lead, err)
	campaign := func(lease int64, value string) *v3electionpb.CampaignResponse {
		r, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: lease, Value: []byte(value)})
		record(fmt.Sprintf("campaign lease %x %q", lease, value), r, err)
		return r
	}
	won := campaign(0x300, "v1")
	campaign(0x300, "v1b") // again: same key, new value
	leader := won.GetLeader()
	lead, err = ec.Leader(ctx, &v3electionpb.LeaderRequest{Name: name})
	record("leader", lead, err)
	observeCtx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	observer, err := ec.Observe(observeCtx, &v3electionpb.LeaderRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	observed := func() {
		r, err := observer.Recv()
		record("observed", r, err)
	}
	observed()
	proclaim := func(what string, l *v3electionpb.LeaderKey, value string) {
		r, err := ec.Proclaim(ctx, &v3electionpb.ProclaimRequest{Leader: l, Value: []byte(value)})
		record(what, r, err)
	}
	proclaim("proclaim v2", leader, "v2")
	observed()
	stale := proto.Clone(leader).(*v3electionpb.LeaderKey)
	stale.Rev--
	proclaim("proclaim with a stale rev", stale, "x")
	proclaim("proclaim without leader", nil, "x")
	rs, err := ec.Resign(ctx, &v3electionpb.ResignRequest{})
	record("resign without leader", rs, err)
	next := make(chan *v3electionpb.CampaignResponse, 1)
	go func() {
		r, err := ec.Campaign(ctx, &v3electionpb.CampaignRequest{Name: name, Lease: 0x400, Value: []byte("w")})
		if err != nil {
			t.Errorf("%s: waiting campaign: %v", m.Kind, err)
		}
		next <- r
	}()
	waitCount(t, ctx, kv, "myelection/", 2)
	rs, err = ec.Resign(ctx, &v3electionpb.ResignRequest{Leader: leader})
	record("resign", rs, err)
	record("campaign lease 400 after resign", <-next, nil)
	observed()
	rs, err = ec.Resign(ctx, &v3electionpb.ResignRequest{Leader: leader})
	record("resign again", rs, err)
	campaign(0x999, "v")
	return strings.Join(out, "\n")
}

// TestLockElectionDifferential: the same v3lock and v3election requests
// against etcd and cairn give the same responses and errors.
func TestLockElectionDifferential(t *testing.T) {
	etcd := StartMember(t, KindEtcd)
	subject := StartMember(t, subjectKind(t))
	want := lockElectionTranscript(t, etcd)
	got := lockElectionTranscript(t, subject)
	compareLines(t, subject.Kind, want, got)
	t.Logf("etcd transcript:\n%s", want)
}

func compareLines(t *testing.T, kind Kind, want, got string) {
	t.Helper()
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			t.Errorf("line %d:\n  etcd:  %s\n  %s: %s", i, w, kind, g)
		}
	}
}

// ctlProcess is a long-running etcdctl (lock without a command, elect)
// whose stdout is read line by line.
type ctlProcess struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
	out   []string
	// stderr collects what etcdctl printed on stderr.
	stderr strings.Builder
}

func startCtl(t *testing.T, bin string, m *Member, args ...string) *ctlProcess {
	t.Helper()
	full := append([]string{"--endpoints=" + m.ClientURL, "--dial-timeout=3s"}, args...)
	p := &ctlProcess{t: t, cmd: exec.Command(bin, full...), lines: make(chan string, 100), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// next returns the next n lines etcdctl prints, failing after a timeout.
func (p *ctlProcess) next(n int) []string {
	p.t.Helper()
	var got []string
	for range n {
		select {
		case l := <-p.lines:
			got = append(got, l)
			p.out = append(p.out, l)
		case <-time.After(10 * time.Second):
			p.t.Fatalf("etcdctl %v: printed %q, then nothing for 10 s; stderr %q", p.cmd.Args[2:], got, p.stderr.String())
		}
	}
	return got
}

// quiet checks that etcdctl prints nothing (it is blocked) for a while.
func (p *ctlProcess) quiet() {
	p.t.Helper()
	select {
	case l := <-p.lines:
		p.t.Fatalf("etcdctl %v printed %q; want it blocked", p.cmd.Args[2:], l)
	case <-time.After(500 * time.Millisecond):
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the exit code.
func (p *ctlProcess) interrupt() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("etcdctl %v did not exit on SIGINT", p.cmd.Args[2:])
	}
	return p.cmd.ProcessState.ExitCode()
}

// ctlSessionKey is a lock or election key: the name, then the lease ID of
// etcdctl's session, which the server chooses.
var ctlSessionKey = regexp.MustCompile(`\b(mylock|myelection)/[0-9a-f]+\b`)

func normalizeSessionKeys(s string) string { return ctlSessionKey.ReplaceAllString(s, "$1/LEASE") }

// TestEtcdctlLockElect runs etcdctl lock and elect against etcd and cairn
// and compares what they print, session lease IDs replaced.
func TestEtcdctlLockElect(t *testing.T) {
	bin := requireBin(t, "ETCDCTL_BIN")
	etcd := StartMember(t, KindEtcd)
	subject := StartMember(t, subjectKind(t))
	run := func(m *Member) []string {
		var out []string
		oneShot := func(args ...string) {
			r := normalizeCtl(runCtl(t, bin, m, "", args...))
			out = append(out, normalizeSessionKeys(strings.Join(args, " ")+" -> "+r.String()))
		}
		oneShot("lock")
		oneShot("lock", "mylock", "--", "echo", "held")
		oneShot("lock", "mylock", "--", "sh", "-c", "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV")
		oneShot("lock", "mylock", "--", "sh", "-c", "exit 3")
		oneShot("elect")
		oneShot("elect", "myelection")
		oneShot("elect", "-l", "myelection", "v1")

		holder := startCtl(t, bin, m, "lock", "mylock")
		out = append(out, "lock mylock prints "+strings.Join(holder.next(2), "|"))
		waiter := startCtl(t, bin, m, "lock", "mylock", "--", "echo", "second")
		waiter.quiet()
		out = append(out, fmt.Sprintf("lock mylock exits %d on SIGINT", holder.interrupt()))
		out = append(out, "waiter prints "+strings.Join(waiter.next(1), "|"))

		leader := startCtl(t, bin, m, "elect", "myelection", "v1")
		out = append(out, "elect myelection v1 prints "+strings.Join(leader.next(2), "|"))
		observer := startCtl(t, bin, m, "elect", "-l", "myelection")
		out = append(out, "elect -l myelection prints "+strings.Join(observer.next(2), "|"))
		candidate := startCtl(t, bin, m, "elect", "myelection", "v2")
		candidate.quiet()
		out = append(out, fmt.Sprintf("leader exits %d on SIGINT", leader.interrupt()))
		out = append(out, "candidate prints "+strings.Join(candidate.next(2), "|"))
		out = append(out, "observer prints "+strings.Join(observer.next(2), "|"))
		out = append(out, fmt.Sprintf("candidate exits %d, observer exits %d on SIGINT", candidate.interrupt(), observer.interrupt()))
		for i, s := range out {
			out[i] = normalizeSessionKeys(s)
		}
		return out
	}
	want, got := run(etcd), run(subject)
	compareLines(t, subject.Kind, strings.Join(want, "\n"), strings.Join(got, "\n"))
	t.Logf("etcd:\n%s", strings.Join(want, "\n"))
}

// TestEtcdctlLockersNeverOverlap runs concurrent `etcdctl lock` commands
// that each log entering and leaving the critical section: the log must
// alternate, in cairn as in etcd.
func TestEtcdctlLockersNeverOverlap(t *testing.T) {
	bin := requireBin(t, "ETCDCTL_BIN")
	for _, kind := range []Kind{KindEtcd, subjectKind(t)} {
		t.Run(string(kind), func(t *testing.T) {
			m := StartMember(t, kind)
			logPath := filepath.Join(t.TempDir(), "critical.log")
			const lockers = 4
			script := fmt.Sprintf("echo in >> %s; sleep 0.2; echo out >> %s", logPath, logPath)
			errs := make(chan error, lockers)
			for range lockers {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, bin, "--endpoints="+m.ClientURL, "lock", "mylock", "--", "sh", "-c", script)
					cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
					if out, err := cmd.CombinedOutput(); err != nil {
						errs <- fmt.Errorf("etcdctl lock: %v: %s", err, out)
						return
					}
					errs <- nil
				}()
			}
			for range lockers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Repeat("in\nout\n", lockers)
			if string(data) != want {
				t.Fatalf("critical sections overlapped:\n%s", data)
			}
		})
	}
}
