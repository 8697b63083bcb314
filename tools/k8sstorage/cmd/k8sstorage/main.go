package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// upstreamPackage is the test package run; upstreamTestserver the package
// whose files the shim replaces.
const (
	upstreamModule     = "k8s.io/apiserver"
	upstreamPackage    = "k8s.io/apiserver/pkg/storage/etcd3"
	upstreamTestserver = "pkg/storage/etcd3/testserver"
	shimFile           = "testserver/test_server.go"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.systems, "systems", "", "comma-separated NAME=BINARY pairs of the servers to test (e.g. cairn=bin/cairn,etcd=.ref/bin/etcd)")
	flag.StringVar(&cfg.gates, "gates", "off,on", "comma-separated defaults of the EtcdRangeStream gate to run with (off, on)")
	flag.StringVar(&cfg.out, "out", "k8s-storage-out", "directory for the test binary and the reports")
	flag.StringVar(&cfg.run, "run", "", "run only the tests matching this regular expression (go test -run)")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "timeout of one run (go test -timeout)")
	flag.IntVar(&cfg.parallel, "parallel", 2, "tests run in parallel within a run (go test -parallel)")
	flag.Parse()
	failed, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sstorage:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

type config struct {
	systems, gates, out, run string
	timeout                  time.Duration
	parallel                 int
}

// system is one server under test.
type system struct{ name, bin string }

func parseSystems(s string) ([]system, error) {
	var out []system
	for _, pair := range strings.Split(s, ",") {
		name, bin, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" || bin == "" {
			return nil, fmt.Errorf("-systems %q: want NAME=BINARY pairs", s)
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			return nil, fmt.Errorf("%s binary %s: not a file (%v)", name, abs, err)
		}
		out = append(out, system{name: name, bin: abs})
	}
	return out, nil
}

func parseGates(s string) ([]string, error) {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "off" && g != "on" {
			return nil, fmt.Errorf("-gates %q: want off and/or on", s)
		}
		out = append(out, g)
	}
	return out, nil
}

func run(cfg config) (failed bool, err error) {
	systems, err := parseSystems(cfg.systems)
	if err != nil {
		return false, err
	}
	gates, err := parseGates(cfg.gates)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return false, err
	}
	out, err := filepath.Abs(cfg.out)
	if err != nil {
		return false, err
	}
	testBin := filepath.Join(out, "etcd3.test")
	if err := compileTests(out, testBin); err != nil {
		return false, err
	}
	var results []runResult
	for _, sys := range systems {
		for _, gate := range gates {
			r, err := runTests(cfg, out, testBin, sys, gate)
			if err != nil {
				return false, err
			}
			results = append(results, r)
			failed = failed || r.Failed > 0 || r.Err != ""
		}
	}
	printSummary(os.Stdout, results)
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return false, err
	}
	return failed, os.WriteFile(filepath.Join(out, "summary.json"), b, 0o644)
}

// compileTests builds the upstream test package with the shim in place of
// the upstream testserver files, into testBin. Go refuses overlays of files
// in the module cache, so the upstream module is first copied, unchanged,
// to OUT/src (outside the repository's files) and used through a replace
// directive in a copy of this module's go.mod (go test -modfile); the
// overlay then swaps the testserver file of that copy.
func compileTests(out, testBin string) error {
	cached, err := goOutput("list", "-m", "-f", "{{.Dir}}", upstreamModule)
	if err != nil {
		return err
	}
	src := filepath.Join(out, "src", filepath.Base(cached))
	if err := copyTree(cached, src); err != nil {
		return fmt.Errorf("copy %s: %w", upstreamModule, err)
	}
	modfile, err := writeModfile(out, src)
	if err != nil {
		return err
	}
	shim, err := filepath.Abs(shimFile)
	if err != nil {
		return err
	}
	replace, err := overlayReplacements(filepath.Join(src, upstreamTestserver), shim)
	if err != nil {
		return err
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": replace})
	if err != nil {
		return err
	}
	overlayPath := filepath.Join(out, "overlay.json")
	if err := os.WriteFile(overlayPath, overlay, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "k8sstorage: compiling %s with %s in place of %s\n", upstreamPackage, shimFile, upstreamTestserver)
	cmd := exec.Command("nice", "go", "test", "-c", "-modfile", modfile, "-overlay", overlayPath, "-o", testBin, upstreamPackage)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compile %s: %w", upstreamPackage, err)
	}
	return nil
}

// writeModfile writes OUT/go.mod, this module's go.mod with the upstream
// module replaced by its copy in src, and its go.sum beside it.
func writeModfile(out, src string) (string, error) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", err
	}
	modfile := filepath.Join(out, "go.mod")
	mod = fmt.Appendf(mod, "\nreplace %s => %s\n", upstreamModule, src)
	if err := os.WriteFile(modfile, mod, 0o644); err != nil {
		return "", err
	}
	return modfile, os.WriteFile(filepath.Join(out, "go.sum"), sum, 0o644)
}

// copyTree copies the regular files under from to to (which it replaces),
// writable.
func copyTree(from, to string) error {
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// overlayReplacements maps the upstream testserver's Go files to the shim:
// test_server.go to the shim file, any other non-test file to nothing, so
// the package is the shim alone.
func overlayReplacements(upstreamDir, shim string) (map[string]string, error) {
	entries, err := os.ReadDir(upstreamDir)
	if err != nil {
		return nil, fmt.Errorf("upstream testserver: %w", err)
	}
	replace := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		replace[filepath.Join(upstreamDir, name)] = ""
	}
	main := filepath.Join(upstreamDir, "test_server.go")
	if _, ok := replace[main]; !ok {
		return nil, fmt.Errorf("upstream testserver has no test_server.go in %s: the shim no longer fits this version", upstreamDir)
	}
	replace[main] = shim
	return replace, nil
}

func goOutput(args ...string) (string, error) {
	out, err := exec.Command("go", args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, ee.Stderr)
	}
	return strings.TrimSpace(string(out)), err
}

// runResult counts one run's tests. Top-level tests and subtests are
// counted apart; a parent test fails when any subtest fails.
type runResult struct {
	System string `json:"system"`
	// Gate is the EtcdRangeStream default of the run; tests that set the
	// gate themselves (subtests named rangeStream=true/false) override it.
	Gate string `json:"etcdRangeStreamDefault"`
	Counts
	Subtests    Counts   `json:"subtests"`
	FailedTests []string `json:"failedTests,omitempty"`
	Seconds     float64  `json:"seconds"`
	// Err is set when the test binary itself failed beyond failed tests
	// (a panic, a timeout, a build problem).
	Err string `json:"error,omitempty"`
}

// Counts are the tests that ended in each way.
type Counts struct {
	Run     int `json:"run"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

func (c *Counts) add(action string) {
	c.Run++
	switch action {
	case "pass":
		c.Passed++
	case "fail":
		c.Failed++
	case "skip":
		c.Skipped++
	}
}

// testEvent is one line of go test -json (test2json's TestEvent).
type testEvent struct {
	Action  string
	Test    string
	Output  string
	Elapsed float64
}

func runTests(cfg config, out, testBin string, sys system, gate string) (runResult, error) {
	base := filepath.Join(out, fmt.Sprintf("%s-rangestream-%s", sys.name, gate))
	jsonFile, err := os.Create(base + ".json")
	if err != nil {
		return runResult{}, err
	}
	defer jsonFile.Close()
	args := []string{"tool", "test2json", "-t", "-p", upstreamPackage, testBin,
		"-test.v=test2json", "-test.count=1", "-test.timeout=" + cfg.timeout.String(),
		"-test.parallel=" + fmt.Sprint(cfg.parallel)}
	if cfg.run != "" {
		args = append(args, "-test.run="+cfg.run)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(),
		"K8S_STORAGE_SERVER_BIN="+sys.bin,
		"K8S_STORAGE_FEATURE_GATES=EtcdRangeStream="+fmt.Sprint(gate == "on"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return runResult{}, err
	}
	cmd.Stderr = os.Stderr
	fmt.Fprintf(os.Stderr, "k8sstorage: running against %s (%s), EtcdRangeStream default %s\n", sys.name, sys.bin, gate)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return runResult{}, err
	}
	r := runResult{System: sys.name, Gate: gate}
	outputs, err := collect(io.TeeReader(stdout, jsonFile), &r)
	waitErr := cmd.Wait()
	r.Seconds = time.Since(start).Round(time.Second).Seconds()
	if err != nil {
		return runResult{}, err
	}
	if waitErr != nil && r.Failed == 0 && r.Subtests.Failed == 0 {
		r.Err = waitErr.Error()
	}
	return r, writeFailures(base+".failures.txt", r.FailedTests, outputs)
}

// collect reads go test -json events, counts the tests' ends into r and
// returns each test's output.
func collect(events io.Reader, r *runResult) (map[string][]string, error) {
	outputs := map[string][]string{}
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Test == "" {
			continue // a line of the binary's own, or the package's end
		}
		switch ev.Action {
		case "output":
			outputs[ev.Test] = append(outputs[ev.Test], ev.Output)
		case "pass", "fail", "skip":
			if strings.Contains(ev.Test, "/") {
				r.Subtests.add(ev.Action)
			} else {
				r.Counts.add(ev.Action)
			}
			if ev.Action == "fail" {
				r.FailedTests = append(r.FailedTests, ev.Test)
			}
		}
	}
	slices.Sort(r.FailedTests)
	return outputs, sc.Err()
}

// writeFailures writes the output of every failed test that has no failed
// subtest (the parents' output repeats their subtests').
func writeFailures(path string, failed []string, outputs map[string][]string) error {
	var b strings.Builder
	for _, name := range failed {
		if slices.ContainsFunc(failed, func(other string) bool { return strings.HasPrefix(other, name+"/") }) {
			continue
		}
		fmt.Fprintf(&b, "=== %s\n%s\n", name, strings.Join(outputs[name], ""))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func printSummary(w io.Writer, results []runResult) {
	fmt.Fprintf(w, "\n%-8s %-18s %-30s %-30s %s\n", "system", "EtcdRangeStream", "tests run/passed/failed/skipped", "subtests run/passed/failed/skipped", "time")
	for _, r := range results {
		fmt.Fprintf(w, "%-8s %-18s %-30s %-30s %.0fs\n", r.System, "default "+r.Gate,
			fmt.Sprintf("%d/%d/%d/%d", r.Run, r.Passed, r.Failed, r.Skipped),
			fmt.Sprintf("%d/%d/%d/%d", r.Subtests.Run, r.Subtests.Passed, r.Subtests.Failed, r.Subtests.Skipped), r.Seconds)
		if r.Err != "" {
			fmt.Fprintf(w, "         the test binary failed: %s\n", r.Err)
		}
		for _, name := range r.FailedTests {
			fmt.Fprintf(w, "         FAIL %s\n", name)
		}
	}
}
