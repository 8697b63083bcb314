package testserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// Environment variables the shim reads.
const (
	serverBinEnv    = "K8S_STORAGE_SERVER_BIN"
	featureGatesEnv = "K8S_STORAGE_FEATURE_GATES"
)

const (
	// readyTimeout bounds a server's start, as upstream's 60 s wait for
	// the embedded server.
	readyTimeout = 60 * time.Second
	// readyPollInterval is the pause between readiness probes.
	readyPollInterval = 20 * time.Millisecond
	// stopTimeout bounds the wait for a server to exit after SIGTERM
	// before it is killed.
	stopTimeout = 5 * time.Second
	// logTailBytes is how much of a server's log a failed test prints.
	logTailBytes = 4096
)

func init() {
	gates := os.Getenv(featureGatesEnv)
	if gates == "" {
		return
	}
	if err := utilfeature.DefaultMutableFeatureGate.Set(gates); err != nil {
		panic(fmt.Sprintf("testserver: $%s=%q: %v", featureGatesEnv, gates, err))
	}
}

// freePorts returns count loopback TCP ports that were free a moment ago.
// Each listener stays open until all are picked, so the count are
// distinct.
func freePorts(count int) ([]int, error) {
	var ports []int
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("could not bind to a port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// NewTestConfig returns the configuration RunEtcd starts a server with:
// embed.NewConfig()'s defaults, UnsafeNoFsync, free loopback ports and a
// data directory removed when the test ends (as upstream's).
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	cfg.UnsafeNoFsync = true
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Dir = filepath.Join(t.TempDir(), "data")
	return cfg
}

// autoPortLock serialises the starts that pick their own ports, as
// upstream does, so two starts do not pick the same free port.
var autoPortLock sync.Mutex

// RunEtcd starts a server process with cfg (NewTestConfig(t) if nil) and
// returns a client of it, wrapped in the recorders the tests read, as
// upstream's. The process is stopped when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	if cfg == nil {
		autoPortLock.Lock()
		defer autoPortLock.Unlock()
		cfg = NewTestConfig(t)
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "data")
	}
	bin := os.Getenv(serverBinEnv)
	if bin == "" {
		t.Fatalf("$%s is not set: it names the server binary (bin/cairn or etcd) the storage tests run against", serverBinEnv)
	}
	s := startServer(t, bin, serverArgs(cfg))
	tlsConfig, err := cfg.ClientTLSInfo.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.New(clientv3.Config{
		TLS:         tlsConfig,
		Endpoints:   urlStrings(cfg.AdvertiseClientUrls),
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Closed before the server stops (cleanups run last-in first-out).
	t.Cleanup(func() { client.Close() })
	s.waitReady(t, client.Client)
	recorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, recorder)
	client.Kubernetes = recorder
	return client
}

// serverArgs is the command line carrying cfg: etcd's flags, which cairn
// takes too.
func serverArgs(cfg *embed.Config) []string {
	args := []string{
		"--name", cfg.Name,
		"--data-dir", cfg.Dir,
		"--listen-client-urls", strings.Join(urlStrings(cfg.ListenClientUrls), ","),
		"--advertise-client-urls", strings.Join(urlStrings(cfg.AdvertiseClientUrls), ","),
		"--listen-peer-urls", strings.Join(urlStrings(cfg.ListenPeerUrls), ","),
		"--initial-advertise-peer-urls", strings.Join(urlStrings(cfg.AdvertisePeerUrls), ","),
		"--initial-cluster", cfg.InitialCluster,
		"--log-level", "warn",
	}
	// Zero means the server's default, as in the embedded server.
	if cfg.WatchProgressNotifyInterval > 0 {
		args = append(args, "--watch-progress-notify-interval", cfg.WatchProgressNotifyInterval.String())
	}
	if cfg.MaxRequestBytes > 0 {
		args = append(args, "--max-request-bytes", strconv.FormatUint(uint64(cfg.MaxRequestBytes), 10))
	}
	if cfg.MaxTxnOps > 0 {
		args = append(args, "--max-txn-ops", strconv.FormatUint(uint64(cfg.MaxTxnOps), 10))
	}
	if cfg.QuotaBackendBytes > 0 {
		args = append(args, "--quota-backend-bytes", strconv.FormatInt(cfg.QuotaBackendBytes, 10))
	}
	if cfg.UnsafeNoFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	return args
}

func urlStrings(us []url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// server is one running server process.
type server struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
}

func startServer(t testing.TB, bin string, args []string) *server {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server dies with the test binary, even if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("--- end of %s %s log (%s) ---\n%s", filepath.Base(bin), strings.Join(args, " "), logPath, s.logTail())
		}
	})
	return s
}

// waitReady waits until the server answers a linearizable read.
func (s *server) waitReady(t testing.TB, c *clientv3.Client) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("server exited before it was ready: %v\n%s", s.waitErr, s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = c.Get(ctx, "k8s-storage-readiness-probe")
		cancel()
		if lastErr == nil {
			return
		}
		time.Sleep(readyPollInterval)
	}
	t.Fatalf("server not ready after %v: %v\n%s", readyTimeout, lastErr, s.logTail())
}

// stop ends the process: SIGTERM, then SIGKILL after stopTimeout. A
// server that exited on its own before the test ended failed the test.
func (s *server) stop(t testing.TB) {
	select {
	case <-s.exited:
		t.Errorf("server exited during the test: %v", s.waitErr)
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	if len(data) > logTailBytes {
		data = data[len(data)-logTailBytes:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}
