package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcStatusOfThisProcess(t *testing.T) {
	hwm, err := procStatusBytes(os.Getpid(), "VmHWM:")
	if err != nil || hwm < 1<<20 {
		t.Fatalf("VmHWM %d, %v", hwm, err)
	}
	if _, err := parseKB(" 12 MB"); err == nil {
		t.Fatal("parseKB accepted MB")
	}
	dir := t.TempDir()
	empty, err := DirAllocatedBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/f", make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := DirAllocatedBytes(dir)
	if err != nil || n-empty < 1<<20 {
		t.Fatalf("1 MiB file: %d more bytes, %v", n-empty, err)
	}
}

// TestProcessLogsExitAndEcho: a process's output goes to its log between
// the start and exit lines and, prefixed, to the echo writer; its exit
// status is kept.
func TestProcessLogsExitAndEcho(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "p.log")
	var echo bytes.Buffer
	p, err := StartProcess(ProcessConfig{
		Bin: "/bin/sh", Args: []string{"-c", "echo one; echo two >&2; exit 3"},
		LogPath: logPath, Start: 7, Echo: &echo, EchoPrefix: "m9 | ",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(10 * time.Second) {
		t.Fatal("sh did not exit")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("exit error %v, want status 3", err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "=== start #7 at ") || !strings.HasPrefix(lines[3], "=== exit at ") ||
		!strings.HasSuffix(lines[3], "exit status 3") {
		t.Fatalf("log:\n%s", log)
	}
	got := echo.String()
	if !strings.Contains(got, "m9 | one\n") || !strings.Contains(got, "m9 | two\n") || strings.Count(got, "m9 | ") != 2 {
		t.Fatalf("echo %q", got)
	}
}

// TestProcessKillAndReadiness: Kill ends a paused process, and WaitReady
// gives up with ErrExited once the process has gone.
func TestProcessKillAndReadiness(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "p.log")
	p, err := StartProcess(ProcessConfig{Bin: "/bin/sleep", Args: []string{"60"}, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if p.WaitExit(100 * time.Millisecond) {
		t.Fatal("sleep exited on SIGSTOP")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || !strings.Contains(ExitStatus(p.Err()), "killed") {
		t.Fatalf("after Kill: running %v, exit %v", p.Running(), p.Err())
	}
	if err := p.WaitReady("http://127.0.0.1:1", nil, 5*time.Second); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady of an exited process: %v", err)
	}
}

func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < portsLow || p >= portsHigh {
			t.Fatalf("port %d: repeated or outside [%d, %d)", p, portsLow, portsHigh)
		}
		seen[p] = true
	}
}

func TestLinePrefixerAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	l := &linePrefixer{w: &out, prefix: "> "}
	for _, chunk := range []string{"ab", "c\nd", "e\n\nf"} {
		if n, err := l.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if got, want := out.String(), "> abc\n> de\n> \n> f"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
