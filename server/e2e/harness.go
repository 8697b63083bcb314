//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Kind names the program a Member runs.
type Kind string

const (
	// KindCairn is the system under test, from $CAIRN_BIN.
	KindCairn Kind = "cairn"
	// KindEtcd is the reference etcd, from $ETCD_BIN.
	KindEtcd Kind = "etcd"
)

const (
	// readyTimeout bounds how long a member may take to serve its first Get.
	readyTimeout = 20 * time.Second
	// readyPollTimeout bounds each probe of a condition.
	readyPollTimeout = 500 * time.Millisecond
	// logTailLines is how much of a member's stderr a failure prints.
	logTailLines = 40
)

// binEnv maps each program to the environment variable naming its binary.
var binEnv = map[Kind]string{KindCairn: "CAIRN_BIN", KindEtcd: "ETCD_BIN"}

// requireBin returns the absolute path of the binary named by the environment
// variable env. If it is unset or missing the test is skipped, or fails when
// CI=true: CI must never pass by skipping.
func requireBin(t testing.TB, env string) string {
	t.Helper()
	path := os.Getenv(env)
	var problem string
	if path == "" {
		problem = fmt.Sprintf("$%s is not set", env)
	} else if st, err := os.Stat(path); err != nil {
		problem = fmt.Sprintf("$%s=%s: %v", env, path, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		problem = fmt.Sprintf("$%s=%s is not an executable file", env, path)
	}
	if problem == "" {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing binary is a failure; run `make build ref`)", problem)
	}
	t.Skipf("%s; skipping (set it, or run via `make test-e2e`)", problem)
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago, from
// the launcher's allocator (chaos/cluster.FreePort: never the same port
// twice in one test process).
func freePort(t testing.TB) int {
	t.Helper()
	p, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Member is one single-member cluster process (cairn or etcd). Its ports and
// data dir stay the same across Kill and Start, so it can be restarted.
type Member struct {
	t         testing.TB
	Kind      Kind
	Bin       string
	Name      string
	DataDir   string
	ClientURL string // http://127.0.0.1:P (https:// with TLS)
	PeerURL   string // http://127.0.0.1:Q (https:// with TLS)
	Extra     []string
	LogPath   string // stderr of every run, appended
	// InitialCluster, when set, replaces the single-member --initial-cluster
	// (name=peer-url pairs, comma-separated), for members of larger clusters.
	InitialCluster string
	// TLS, when set, is what the harness's clients of ClientURL dial with.
	TLS *tls.Config

	// proc is the current run, started by the launcher of chaos/cluster;
	// nil before the first Launch and after Kill.
	proc   *cluster.Process
	starts int
}

// StartMember starts a fresh single-member cluster of the given kind with
// the extra flags, waits until it serves a Get, and kills it at test end.
func StartMember(t testing.TB, kind Kind, extra ...string) *Member {
	t.Helper()
	bin := requireBin(t, binEnv[kind])
	dir := t.TempDir()
	m := &Member{
		t:         t,
		Kind:      kind,
		Bin:       bin,
		Name:      "m0",
		DataDir:   filepath.Join(dir, "data"),
		ClientURL: "http://127.0.0.1:" + strconv.Itoa(freePort(t)),
		PeerURL:   "http://127.0.0.1:" + strconv.Itoa(freePort(t)),
		Extra:     extra,
		LogPath:   filepath.Join(dir, string(kind)+".stderr.log"),
	}
	t.Cleanup(func() {
		if t.Failed() {
			if p := m.PanicLines(); p != "" {
				t.Logf("--- panic/fatal lines of %s (%s) ---\n%s", m.Kind, m.LogPath, p)
			}
			t.Logf("--- last %d lines of %s (%s) ---\n%s", logTailLines, m.Kind, m.LogPath, m.LogTail(logTailLines))
		}
	})
	t.Cleanup(m.Kill) // runs before the log dump above
	m.Start()
	return m
}

// Args returns the command line the member runs with.
func (m *Member) Args() []string {
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.initialCluster(),
		"--log-level", "info",
	}
	return append(args, m.Extra...)
}

func (m *Member) initialCluster() string {
	if m.InitialCluster != "" {
		return m.InitialCluster
	}
	return m.Name + "=" + m.PeerURL
}

// Start launches the process and waits until it is ready.
func (m *Member) Start() {
	m.t.Helper()
	m.Launch()
	m.waitReady()
}

// Launch starts the process without waiting for it to be ready: members of a
// new cluster are launched together, since none is ready before a quorum is.
func (m *Member) Launch() {
	m.t.Helper()
	if m.Running() {
		m.t.Fatalf("%s: Start while running", m.Kind)
	}
	m.starts++
	proc, err := cluster.StartProcess(cluster.ProcessConfig{Bin: m.Bin, Args: m.Args(), LogPath: m.LogPath, Start: m.starts})
	if err != nil {
		m.t.Fatalf("%s: %v", m.Kind, err)
	}
	m.proc = proc
}

// WaitReady waits until the member serves a linearizable Get (see Start).
func (m *Member) WaitReady() {
	m.t.Helper()
	m.waitReady()
}

// Running reports whether the member's process was started and has not
// exited (or been killed) since.
func (m *Member) Running() bool { return m.proc != nil && m.proc.Running() }

// WaitExit waits up to d for the running process to exit by itself, and
// reports whether it did and its exit error (nil for status 0).
func (m *Member) WaitExit(d time.Duration) (exited bool, err error) {
	if m.proc == nil || !m.proc.WaitExit(d) {
		return false, nil
	}
	return true, m.proc.Err()
}

// waitReady waits until a linearizable Get succeeds, the process exits, or
// readyTimeout passes.
func (m *Member) waitReady() {
	m.t.Helper()
	if m.proc == nil {
		m.t.Fatalf("%s: WaitReady before Launch", m.Kind)
	}
	if err := m.proc.WaitReady(m.ClientURL, m.TLS, readyTimeout); err != nil {
		m.t.Fatalf("%s %v\n--- %s ---\n%s", m.Kind, err, m.LogPath, m.LogTail(logTailLines))
	}
}

// Stop stops the member as an operator does (SIGTERM, then SIGKILL if
// it has not exited after stopGrace).
func (m *Member) Stop() {
	if m.proc == nil {
		return
	}
	if err := m.proc.Terminate(stopGrace); err != nil {
		m.t.Errorf("%s: %v", m.Kind, err)
	}
	m.proc = nil
}

// stopGrace is how long Stop waits for a member to exit on SIGTERM.
const stopGrace = 10 * time.Second

// Kill sends SIGKILL and waits for the process to exit. It is a no-op when
// the member is not running.
func (m *Member) Kill() {
	if m.proc == nil {
		return
	}
	if err := m.proc.Kill(); err != nil {
		m.t.Errorf("%s: %v", m.Kind, err)
	}
	m.proc = nil
}

// Endpoint is the client address without scheme, for gRPC dialing.
func (m *Member) Endpoint() string {
	return strings.TrimPrefix(strings.TrimPrefix(m.ClientURL, "http://"), "https://")
}

func (m *Member) newClient() *clientv3.Client {
	m.t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		TLS:         m.TLS,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		m.t.Fatalf("clientv3.New(%s): %v", m.ClientURL, err)
	}
	return c
}

// Client returns an official client connected to the member, closed at test end.
func (m *Member) Client() *clientv3.Client {
	m.t.Helper()
	c := m.newClient()
	m.t.Cleanup(func() { c.Close() })
	return c
}

// KV returns the raw etcd KV gRPC stub on a connection of its own, so nothing
// of the client library's retries or conversions hides a response.
func (m *Member) KV() etcdserverpb.KVClient {
	m.t.Helper()
	conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatalf("grpc.NewClient(%s): %v", m.Endpoint(), err)
	}
	m.t.Cleanup(func() { conn.Close() })
	return etcdserverpb.NewKVClient(conn)
}

// LogTail returns the last n lines of the member's stderr log.
func (m *Member) LogTail(n int) string {
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// PanicLines returns the log lines that report a panic or fatal error (the
// interesting part when a stack trace fills the tail).
func (m *Member) PanicLines() string {
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
			strings.Contains(line, `"level":"panic"`) || strings.Contains(line, `"level":"fatal"`) {
			if len(line) > 2000 {
				line = line[:2000] + "..."
			}
			out = append(out, line)
		}
	}
	if len(out) > 10 {
		out = out[:10]
	}
	return strings.Join(out, "\n")
}

// forEachKind runs f as a subtest per kind: etcd first, proving that the
// expectations in f are etcd's behaviour, then cairn.
func forEachKind(t *testing.T, f func(t *testing.T, kind Kind)) {
	for _, kind := range []Kind{KindEtcd, KindCairn} {
		t.Run(string(kind), func(t *testing.T) { f(t, kind) })
	}
}

// ctxTimeout returns a context for one request, cancelled at test end.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// isExitError reports whether err is a process's non-zero exit.
func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
