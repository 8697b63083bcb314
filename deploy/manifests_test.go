package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/deploy/internal/cairnbin"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of the YAML files in a folder.
type manifests struct {
	statefulSets []appsv1.StatefulSet
	services     []corev1.Service
	budgets      []policyv1.PodDisruptionBudget
}

// decodeManifests decodes every document of the folder's *.yaml files
// strictly (an unknown or misspelt field is an error) into the k8s.io/api
// type of its kind.
func decodeManifests(t *testing.T, dir string) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var m manifests
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(text), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := m.add([]byte(doc)); err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var out []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func (m *manifests) add(doc []byte) error {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 StatefulSet":
		var s appsv1.StatefulSet
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			return err
		}
		m.statefulSets = append(m.statefulSets, s)
	case "v1 Service":
		var s corev1.Service
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			return err
		}
		m.services = append(m.services, s)
	case "policy/v1 PodDisruptionBudget":
		var b policyv1.PodDisruptionBudget
		if err := yaml.UnmarshalStrict(doc, &b); err != nil {
			return err
		}
		m.budgets = append(m.budgets, b)
	default:
		return fmt.Errorf("unexpected object %s %s", meta.APIVersion, meta.Kind)
	}
	return nil
}

// TestKubernetesManifests decodes deploy/kubernetes strictly and checks
// that the StatefulSet bootstraps: its initial cluster names each pod by
// its DNS name under a headless Service that publishes pods before they
// are ready, each pod's flags and ETCD_* variables (with Kubernetes'
// $(VAR) expansion) are accepted by cairn, its probes are /livez and
// /readyz on the metrics port, its data is on a claim, and a budget keeps
// a quorum.
func TestKubernetesManifests(t *testing.T) {
	m := decodeManifests(t, "kubernetes")
	if len(m.statefulSets) != 1 || len(m.budgets) != 1 {
		t.Fatalf("%d StatefulSets and %d PodDisruptionBudgets, want one each", len(m.statefulSets), len(m.budgets))
	}
	checkStatefulSet(t, m, m.statefulSets[0])
}

// TestKubernetesTLSManifests checks the TLS variant as the plain one; it
// runs once cairn accepts the TLS flags.
func TestKubernetesTLSManifests(t *testing.T) {
	if err := cairnbin.Accepts(t, []string{"--cert-file=/tls.crt", "--key-file=/tls.key"}, nil); err != nil && strings.Contains(err.Error(), "is not supported") {
		t.Skipf("this cairn does not support TLS yet: %v", err)
	}
	plain := decodeManifests(t, "kubernetes")
	tls := decodeManifests(t, filepath.Join("kubernetes", "tls"))
	plain.statefulSets = tls.statefulSets
	checkStatefulSet(t, plain, tls.statefulSets[0])
}

func checkStatefulSet(t *testing.T, m manifests, sts appsv1.StatefulSet) {
	t.Helper()
	spec := sts.Spec
	podLabels := labels.Set(spec.Template.Labels)
	headless := findService(m.services, spec.ServiceName)
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("serviceName %q is not a headless Service that publishes unready pods: %+v", spec.ServiceName, headless)
	}
	for _, svc := range m.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s selects no cairn pod", svc.Name)
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(m.budgets[0].Spec.Selector)
	if err != nil || !sel.Matches(podLabels) || m.budgets[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget: selector %v (%v), maxUnavailable %v", m.budgets[0].Spec.Selector, err, m.budgets[0].Spec.MaxUnavailable)
	}
	if spec.Replicas == nil || *spec.Replicas != 3 || spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("replicas %v, pod management %q: want 3, Parallel", spec.Replicas, spec.PodManagementPolicy)
	}
	if len(spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Template.Spec.Containers))
	}
	c := spec.Template.Spec.Containers[0]
	checkProbes(t, c)
	checkDataVolume(t, spec, c)
	for i := range int(*spec.Replicas) {
		pod := fmt.Sprintf("%s-%d", sts.Name, i)
		args, env := containerCommandLine(t, c, pod)
		if err := cairnbin.Accepts(t, args, env); err != nil {
			t.Errorf("pod %s: %v", pod, err)
		}
		checkInitialCluster(t, pod, args, env)
	}
}

func findService(services []corev1.Service, name string) *corev1.Service {
	for i := range services {
		if services[i].Name == name {
			return &services[i]
		}
	}
	return nil
}

// checkProbes: liveness on /livez and readiness and startup on /readyz,
// on the port --listen-metrics-urls listens on.
func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	metricsPort := int32(0)
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = p.ContainerPort
		}
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasSuffix(a, fmt.Sprintf(":%d", metricsPort)) && strings.HasPrefix(a, "--listen-metrics-urls=")
	}) {
		t.Errorf("no --listen-metrics-urls on the metrics port %d: %q", metricsPort, c.Args)
	}
	for _, probe := range []struct {
		name string
		p    *corev1.Probe
		path string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/readyz"}} {
		if probe.p == nil || probe.p.HTTPGet == nil || probe.p.HTTPGet.Path != probe.path || probe.p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe %+v, want %s on the metrics port", probe.name, probe.p, probe.path)
		}
	}
}

// checkDataVolume: the data directory is inside a claim mounted at the
// image's volume.
func checkDataVolume(t *testing.T, spec appsv1.StatefulSetSpec, c corev1.Container) {
	t.Helper()
	if len(spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%d volume claim templates", len(spec.VolumeClaimTemplates))
	}
	claim := spec.VolumeClaimTemplates[0].Name
	mounted := slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.Name == claim && v.MountPath == "/var/lib/cairn" })
	dataDir := envValue(c.Env, "ETCD_DATA_DIR")
	if !mounted || !strings.HasPrefix(dataDir, "/var/lib/cairn/") {
		t.Errorf("claim %s mounted at /var/lib/cairn: %v; ETCD_DATA_DIR %q", claim, mounted, dataDir)
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// containerCommandLine is the container's arguments and environment as
// the kubelet gives them to pod: metadata.name and metadata.namespace
// resolved, $(VAR) expanded from the variables defined before.
func containerCommandLine(t *testing.T, c corev1.Container, pod string) (args, env []string) {
	t.Helper()
	values := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			switch f := e.ValueFrom.FieldRef; {
			case f != nil && f.FieldPath == "metadata.name":
				v = pod
			case f != nil && f.FieldPath == "metadata.namespace":
				v = "default"
			default:
				t.Fatalf("variable %s from %+v: the test knows only the pod's name and namespace", e.Name, e.ValueFrom)
			}
		}
		v = expand(v, values)
		values[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	if len(c.Command) > 0 {
		t.Fatalf("command %q overrides the image's entrypoint", c.Command)
	}
	for _, a := range c.Args {
		args = append(args, expand(a, values))
	}
	return args, env
}

var kubernetesVariable = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(NAME) with a defined variable's value, as Kubernetes
// does; an undefined one stays as written.
func expand(s string, values map[string]string) string {
	return kubernetesVariable.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := values[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// checkInitialCluster: the member's name and advertised peer URL are one
// of the initial cluster's entries, or the cluster cannot bootstrap.
func checkInitialCluster(t *testing.T, member string, args, env []string) {
	t.Helper()
	settings := settingsOf(args, env)
	name, peer, cluster := settings["name"], settings["initial-advertise-peer-urls"], settings["initial-cluster"]
	if name != member || !slices.Contains(strings.Split(cluster, ","), name+"="+peer) {
		t.Errorf("member %s: --name %q, peer URL %q, not in --initial-cluster %q", member, name, peer, cluster)
	}
}

// settingsOf merges --flag=value arguments and ETCD_* variables into
// flag names and values.
func settingsOf(args, env []string) map[string]string {
	settings := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if suffix, ok := strings.CutPrefix(k, "ETCD_"); ok {
			settings[strings.ReplaceAll(strings.ToLower(suffix), "_", "-")] = v
		}
	}
	for _, a := range args {
		if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok {
			settings[k] = v
		}
	}
	return settings
}

// composeFile is the part of the Compose format deploy/compose.yaml uses;
// decoding is strict, so anything else in the file is an error.
type composeFile struct {
	Environment map[string]string         `json:"x-cairn-environment"`
	Services    map[string]composeService `json:"services"`
	Volumes     map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	Restart     string            `json:"restart"`
}

// TestComposeFile: three members, each accepted by cairn and in the
// initial cluster, each with a volume of its own at the image's volume.
func TestComposeFile(t *testing.T) {
	text, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.UnmarshalStrict(text, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("%d services, want 3", len(f.Services))
	}
	for name, s := range f.Services {
		var env []string
		for k, v := range s.Environment {
			env = append(env, k+"="+v)
		}
		slices.Sort(env)
		if err := cairnbin.Accepts(t, s.Command, env); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		checkInitialCluster(t, name, s.Command, env)
		if len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":/var/lib/cairn") {
			t.Errorf("service %s volumes %q", name, s.Volumes)
		} else if _, declared := f.Volumes[strings.Split(s.Volumes[0], ":")[0]]; !declared {
			t.Errorf("service %s: volume %q not declared", name, s.Volumes[0])
		}
	}
}

// TestSystemdUnit: the unit's sections and keys are the ones systemd
// knows, and its ExecStart flags and Environment= variables are accepted
// by cairn.
func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, "systemd/cairn.service")
	known := map[string][]string{
		"Unit":    {"Description", "Documentation", "After", "Wants"},
		"Service": {"Type", "User", "Group", "StateDirectory", "StateDirectoryMode", "WorkingDirectory", "Environment", "EnvironmentFile", "ExecStart", "Restart", "RestartSec", "TimeoutStopSec", "LimitNOFILE"},
		"Install": {"WantedBy"},
	}
	for _, e := range unit {
		if !slices.Contains(known[e.section], e.key) {
			t.Errorf("[%s] %s is not a key this test knows systemd to have there", e.section, e.key)
		}
	}
	var env []string
	var exec []string
	for _, e := range unit {
		switch e.key {
		case "Environment":
			env = append(env, strings.Trim(e.value, `"`))
		case "ExecStart":
			exec = strings.Fields(e.value)
		}
	}
	if len(exec) < 2 || exec[0] != "/usr/local/bin/cairn" {
		t.Fatalf("ExecStart %q", exec)
	}
	if err := cairnbin.Accepts(t, exec[1:], env); err != nil {
		t.Error(err)
	}
	checkInitialCluster(t, "infra1", exec[1:], env)
}

type unitEntry struct{ section, key, value string }

// parseUnit reads a systemd unit: sections, key=value lines, comments,
// and lines continued with a trailing backslash.
func parseUnit(t *testing.T, path string) []unitEntry {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []unitEntry
	section, pending := "", ""
	scanner := bufio.NewScanner(bytes.NewReader(text))
	for scanner.Scan() {
		line := pending + strings.TrimSpace(scanner.Text())
		pending = ""
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending = cont + " "
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			entries = append(entries, unitEntry{section, key, value})
		}
	}
	if pending != "" {
		t.Fatalf("%s ends in a continued line", path)
	}
	return entries
}
