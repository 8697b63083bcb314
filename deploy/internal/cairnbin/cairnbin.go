package cairnbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Package is cairn's main package; the workspace (go.work) resolves it.
const Package = "github.com/cairn-db/cairn/server/cmd/cairn"

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Static returns a statically linked cairn (CGO_ENABLED=0, as the image
// holds it), built once per test process into a directory that lives as
// long as the process.
func Static(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cairnbin")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "cairn")
		cmd := exec.Command("go", "build", "-trimpath", "-o", built, Package)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", Package, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Accepts runs `cairn args... --check-config` with exactly env as its
// environment: status 0 means cairn accepts every flag, ETCD_* variable
// and feature gate. The error carries cairn's one-line complaint.
func Accepts(t testing.TB, args, env []string) error {
	t.Helper()
	cmd := exec.Command(Static(t), append(append([]string{}, args...), "--check-config")...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cairn %q with %q: %v: %s", args, env, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
