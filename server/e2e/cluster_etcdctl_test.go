//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

const (
	// clusterCtlRetryTimeout bounds the retries of an etcdctl command the
	// cluster refuses for now (unhealthy cluster, learner not in sync).
	clusterCtlRetryTimeout = 10 * time.Second
)

// statusVolatileColumns are the `endpoint status -w table` columns whose
// values depend on the run or the implementation's storage (sizes, raft
// positions, version strings); the others must match etcd's exactly.
var statusVolatileColumns = []string{
	"VERSION", "STORAGE VERSION", "DB SIZE", "IN USE", "PERCENTAGE NOT IN USE",
	"RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX",
}

// ctlCluster is one side of the side-by-side etcdctl comparison: a cluster,
// the IDs of its members and the replacements that make its output
// comparable with the other side's.
type ctlCluster struct {
	cl    *Cluster
	ids   map[string]uint64 // member name -> ID
	m4    *Member           // the learner, once added
	names *strings.Replacer // IDs, cluster ID and URLs -> symbolic names
	// decimal maps IDs as JSON prints them to symbolic names.
	decimal map[string]string
}

// ctlPair runs etcdctl against etcd (ref) and the subject side by side.
type ctlPair struct {
	t        *testing.T
	bin      string
	subject  Kind
	ref, sub *ctlCluster
}

func (p *ctlPair) both() []*ctlCluster { return []*ctlCluster{p.ref, p.sub} }

// step runs one etcdctl command on both sides and compares what they
// printed. endpoints is {m1} or {all}; args may name {id:m1} or {peer:m1}.
// It returns etcd's result for harness checks.
func (p *ctlPair) step(what, endpoints string, args ...string) ctlResult {
	p.t.Helper()
	return p.compare(what, args, p.ref.run(p.t, p.bin, endpoints, args...), p.sub.run(p.t, p.bin, endpoints, args...))
}

// retryStep is step for a command a cluster may refuse for a while (etcd's
// unhealthy cluster, a learner not yet in sync): each side retries until
// the refusal stops, then the results are compared.
func (p *ctlPair) retryStep(what, endpoints string, args ...string) ctlResult {
	p.t.Helper()
	return p.compare(what, args, p.ref.runRetry(p.t, p.bin, endpoints, args...), p.sub.runRetry(p.t, p.bin, endpoints, args...))
}

func (p *ctlPair) compare(what string, args []string, etcd, other ctlResult) ctlResult {
	p.t.Helper()
	if etcd.String() != other.String() {
		p.t.Errorf("%s: etcdctl %v: %s differs from etcd\n--- etcd:\n%s\n--- %s:\n%s", what, args, p.subject, etcd, p.subject, other)
	}
	return etcd
}

// expectEtcd checks etcd's own result (exit code, stderr fragments), so that
// the comparison is known to cover what it claims to.
func (p *ctlPair) expectEtcd(what string, r ctlResult, code int, stderr ...string) {
	p.t.Helper()
	if r.exitCode != code {
		p.t.Errorf("%s: harness check: etcd exited %d, want %d:\n%s", what, r.exitCode, code, r)
	}
	for _, want := range stderr {
		if !strings.Contains(r.stderr, want) {
			p.t.Errorf("%s: harness check: etcd's stderr has no %q:\n%s", what, want, r)
		}
	}
}

// TestClusterEtcdctl runs the same etcdctl membership and maintenance
// commands against a 3-member etcd cluster and a 3-member cairn cluster, side
// by side, and compares what etcdctl printed after normalising IDs, URLs,
// raft positions and sizes.
func TestClusterEtcdctl(t *testing.T) {
	p := &ctlPair{t: t, bin: requireBin(t, "ETCDCTL_BIN"), subject: subjectKind(t)}
	p.ref = newCtlCluster(t, KindEtcd)
	p.sub = newCtlCluster(t, p.subject)
	started := time.Now()
	ctlListStatusMoveLeader(p)
	// etcd refuses membership changes until its peers have been connected
	// for 5 s; waiting here keeps the outputs below comparable.
	time.Sleep(time.Until(started.Add(5500 * time.Millisecond)))
	ctlAddLearner(p)
	ctlPromoteUpdateRemove(p)
}

// ctlListStatusMoveLeader: member list in three formats, endpoint status,
// and move-leader, with m1 leading at first on both sides.
func ctlListStatusMoveLeader(p *ctlPair) {
	t := p.t
	for _, c := range p.both() {
		c.leadBy(t, "m1")
	}
	p.expectEtcd("member list json", p.step("member list json", "{m1}", "member list", "-w", "json"), 0)
	p.step("member list table", "{m1}", "member list", "-w", "table")
	p.step("member list simple", "{m2}", "member list")
	r := p.step("endpoint status --cluster", "{m1}", "endpoint status", "--cluster", "-w", "table")
	if header := strings.SplitN(r.stdout, "\n", 2)[0]; len(strings.Split(header, " | ")) != 16 {
		t.Errorf("harness check: endpoint status header has not 16 columns: %s", header)
	}
	p.step("endpoint status json", "{m1}", "endpoint status", "--cluster", "-w", "json")
	p.expectEtcd("move-leader", p.step("move-leader to m2", "{all}", "move-leader", "{id:m2}"), 0)
	for _, c := range p.both() {
		if lead := c.cl.WaitLeader(c.cl.Client()); lead.Name != "m2" {
			t.Errorf("%s: after move-leader, the leader is %s, want m2", c.cl.Kind, lead.Name)
		}
	}
	r = p.step("move-leader without the leader's endpoint", "{m1}", "move-leader", "{id:m3}")
	p.expectEtcd("move-leader without the leader's endpoint", r, 128, "no leader endpoint given")
	p.step("endpoint status after move-leader", "{m1}", "endpoint status", "--cluster", "-w", "table")
}

// ctlAddLearner: member add --learner, and what is refused while the
// learner has not started.
func ctlAddLearner(p *ctlPair) {
	for _, c := range p.both() {
		c.m4 = c.cl.newMember("m4")
		c.refreshNames(p.t)
	}
	r := p.step("member add --learner", "{m1}", "member add", "m4", "--peer-urls={peer:m4}", "--learner")
	p.expectEtcd("member add --learner", r, 0)
	for _, c := range p.both() {
		c.addedM4(p.t)
	}
	p.step("member list with a learner", "{m1}", "member list", "-w", "table")
	r = p.step("promote a learner not started", "{m1}", "member promote", "{id:m4}")
	p.expectEtcd("promote a learner not started", r, 1, "Error: etcdserver: can only promote a learner member which is in sync with leader")
	r = p.step("move-leader to a learner", "{all}", "move-leader", "{id:m4}")
	p.expectEtcd("move-leader to a learner", r, 1, "Error: etcdserver: bad leader transferee")
	r = p.step("add a second learner", "{m1}", "member add", "m5", "--peer-urls=http://127.0.0.1:1", "--learner")
	p.expectEtcd("add a second learner", r, 1, "Error: etcdserver: too many learner members in cluster")
}

// ctlPromoteUpdateRemove: the learner starts, catches up and is promoted,
// updated and removed, with the errors of an unknown or removed member.
func ctlPromoteUpdateRemove(p *ctlPair) {
	t := p.t
	for _, c := range p.both() {
		put, err := c.cl.Client().Put(ctxTimeout(t, clusterRequestTimeout), "ctl/key", "v")
		if err != nil {
			t.Fatalf("%s: put: %v", c.cl.Kind, err)
		}
		c.m4.Launch()
		c.cl.WaitSerializable(c.m4, "ctl/key", "v", put.Header.Revision, learnerCatchUpTimeout)
	}
	p.expectEtcd("member promote", p.retryStep("member promote", "{m1}", "member promote", "{id:m4}"), 0)
	for _, c := range p.both() {
		waitMemberList(t, c.cl.Client(c.cl.Members[0]), func(ms []*etcdserverpb.Member) bool {
			return len(ms) == 4 && !slices.ContainsFunc(ms, func(pm *etcdserverpb.Member) bool { return pm.Name == "" || pm.IsLearner })
		})
	}
	p.step("member list after promote", "{m3}", "member list", "-w", "table")
	p.expectEtcd("member update", p.step("member update", "{m1}", "member update", "{id:m4}", "--peer-urls={peer:m4}"), 0)
	r := p.step("member update unknown", "{m1}", "member update", "1234", "--peer-urls=http://127.0.0.1:1")
	p.expectEtcd("member update unknown", r, 1, "Error: etcdserver: member not found")
	r = p.step("member update bad url", "{m1}", "member update", "{id:m4}", "--peer-urls=not-a-url")
	p.expectEtcd("member update bad url", r, 1, "Error:")
	p.expectEtcd("member remove", p.retryStep("member remove", "{m1}", "member remove", "{id:m4}"), 0)
	for _, c := range p.both() {
		if exited, _ := c.m4.WaitExit(removedExitTimeout); !exited {
			t.Errorf("%s: removed m4 still runs after %v", c.cl.Kind, removedExitTimeout)
		}
	}
	r = p.step("member remove again", "{m1}", "member remove", "{id:m4}")
	p.expectEtcd("member remove again", r, 1, "Error: etcdserver: member not found")
	p.step("member list after remove", "{m1}", "member list", "-w", "json")
	p.step("endpoint status at the end", "{m1}", "endpoint status", "--cluster", "-w", "table")
}

func newCtlCluster(t *testing.T, kind Kind) *ctlCluster {
	t.Helper()
	c := &ctlCluster{cl: StartCluster(t, kind, 3)}
	c.refreshNames(t)
	return c
}

// leadBy moves leadership to the named member unless it leads already.
func (c *ctlCluster) leadBy(t *testing.T, name string) {
	t.Helper()
	cli := c.cl.Client()
	want := c.cl.Member(name)
	if lead := c.cl.WaitLeader(cli); lead != want {
		if _, err := c.cl.Client(lead).MoveLeader(ctxTimeout(t, clusterRequestTimeout), c.ids[name]); err != nil {
			t.Fatalf("%s: move leader %s -> %s: %v", c.cl.Kind, lead.Name, name, err)
		}
	}
	if lead := c.cl.WaitLeader(cli); lead != want {
		t.Fatalf("%s: leader is %s, want %s", c.cl.Kind, lead.Name, name)
	}
}

// refreshNames reads the member IDs from MemberList and rebuilds the
// replacements.
func (c *ctlCluster) refreshNames(t *testing.T) {
	t.Helper()
	cli := c.cl.Client(c.cl.Members[0])
	list, err := cli.MemberList(ctxTimeout(t, clusterRequestTimeout))
	if err != nil {
		t.Fatalf("%s: member list: %v", c.cl.Kind, err)
	}
	c.ids = map[string]uint64{}
	var pairs []string
	for _, pm := range list.Members {
		for _, m := range c.cl.Members {
			if slices.Equal(pm.PeerURLs, []string{m.PeerURL}) {
				c.ids[m.Name] = pm.ID
			}
		}
	}
	for _, m := range c.members() {
		pairs = append(pairs, m.ClientURL, "<client:"+m.Name+">", m.PeerURL, "<peer:"+m.Name+">",
			m.Endpoint(), "<endpoint:"+m.Name+">")
	}
	// etcdctl prints IDs with %x, or %16x in some sentences: the padding
	// depends on the ID's value, so canonical collapses runs of spaces.
	c.decimal = map[string]string{}
	for name, id := range c.ids {
		pairs = append(pairs, fmt.Sprintf("%x", id), "<id:"+name+">")
		c.decimal[strconv.FormatUint(id, 10)] = "<id:" + name + ">"
	}
	cid := list.Header.ClusterId
	pairs = append(pairs, fmt.Sprintf("%x", cid), "<cluster>")
	c.decimal[strconv.FormatUint(cid, 10)] = "<cluster>"
	c.names = strings.NewReplacer(pairs...)
}

// args expands {m1}, {all}, {id:m1} and {peer:m1} in etcdctl arguments.
func (c *ctlCluster) args(endpoints string, args []string) []string {
	var all []string
	for _, m := range c.cl.Running() {
		all = append(all, m.ClientURL)
	}
	ep := strings.Join(all, ",")
	if endpoints != "{all}" {
		ep = c.cl.Member(strings.Trim(endpoints, "{}")).ClientURL
	}
	out := []string{"--endpoints=" + ep, "--dial-timeout=3s", "--command-timeout=5s"}
	for _, a := range args {
		for _, m := range c.members() {
			a = strings.ReplaceAll(a, "{id:"+m.Name+"}", fmt.Sprintf("%x", c.ids[m.Name]))
			a = strings.ReplaceAll(a, "{peer:"+m.Name+"}", m.PeerURL)
		}
		out = append(out, strings.Fields(a)...)
	}
	return out
}

// ctlRetryable are the refusals runRetry waits out.
var ctlRetryable = []string{"unhealthy cluster", "in sync with leader"}

// runRetry is run, repeated while the command is refused with one of
// ctlRetryable, for at most clusterCtlRetryTimeout.
func (c *ctlCluster) runRetry(t *testing.T, bin, endpoints string, args ...string) ctlResult {
	t.Helper()
	deadline := time.Now().Add(clusterCtlRetryTimeout)
	for {
		r := c.run(t, bin, endpoints, args...)
		retry := slices.ContainsFunc(ctlRetryable, func(s string) bool { return strings.Contains(r.stderr, s) })
		if !retry || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs etcdctl and normalises what it printed.
func (c *ctlCluster) run(t *testing.T, bin, endpoints string, args ...string) ctlResult {
	t.Helper()
	full := c.args(endpoints, args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := ctlResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		if !isExitError(err) {
			t.Fatalf("etcdctl %s: %v", strings.Join(full, " "), err)
		}
		res.exitCode = cmd.ProcessState.ExitCode()
	}
	res = normalizeCtl(res)
	res.stdout = c.canonical(res.stdout)
	res.stderr = c.names.Replace(res.stderr)
	return res
}

// canonical makes output independent of member order and of the values
// that differ by run: JSON is re-marshalled with IDs named, volatile fields
// blanked and members sorted by name, tables are reduced to their cells
// with rows sorted and volatile columns blanked, and ETCD_INITIAL_CLUSTER's
// members are sorted.
func (c *ctlCluster) canonical(s string) string {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) == nil && !dec.More() {
		out, err := json.MarshalIndent(c.canonicalValue(doc), "", " ")
		if err != nil {
			return fmt.Sprintf("(cannot marshal: %v)", err)
		}
		return string(out) + "\n"
	}
	s = c.names.Replace(s)
	if strings.HasPrefix(s, "┌") || strings.HasPrefix(s, "+") {
		return canonicalTable(s)
	}
	s = newMemberID.ReplaceAllString(spaces.ReplaceAllString(s, " "), "Member <new-id> added")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, `ETCD_INITIAL_CLUSTER="`); ok {
			parts := strings.Split(strings.TrimSuffix(v, `"`), ",")
			slices.Sort(parts)
			lines[i] = `ETCD_INITIAL_CLUSTER="` + strings.Join(parts, ",") + `"`
		}
	}
	if len(lines) > 1 && !strings.Contains(s, "ETCD_") {
		// member list's simple format: one line per member, in ID order.
		slices.Sort(lines[:len(lines)-1])
	}
	return strings.Join(lines, "\n")
}

var (
	spaces = regexp.MustCompile(` {2,}`)
	// newMemberID matches member add's first line: the new ID is not known
	// before the output is normalised.
	newMemberID = regexp.MustCompile(`Member [0-9a-f]{1,16} added`)
)

// jsonVolatileFields are the JSON fields blanked before comparison.
var jsonVolatileFields = []string{
	"raft_term", "revision", "raftTerm", "raftIndex", "raftAppliedIndex",
	"dbSize", "dbSizeInUse", "version", "storageVersion",
}

func (c *ctlCluster) canonicalValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if slices.Contains(jsonVolatileFields, k) {
				x[k] = "*"
				continue
			}
			x[k] = c.canonicalValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = c.canonicalValue(e)
		}
		slices.SortFunc(x, func(a, b any) int { return strings.Compare(sortKey(a), sortKey(b)) })
		return x
	case json.Number:
		if name, ok := c.decimal[x.String()]; ok {
			return name
		}
		return x
	case string:
		return c.names.Replace(x)
	}
	return v
}

func sortKey(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	return fmt.Sprint(m["name"], m["Endpoint"], m["peerURLs"])
}

// canonicalTable reduces a table to its cells, one row per line, with the
// data rows sorted and volatile columns' cells replaced by "*".
func canonicalTable(s string) string {
	var rows [][]string
	for _, l := range strings.Split(s, "\n") {
		sep := "|"
		if strings.HasPrefix(l, "│") {
			sep = "│"
		} else if !strings.HasPrefix(l, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(l, sep), sep)
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		return s
	}
	header := rows[0]
	for _, row := range rows[1:] {
		for i := range row {
			if i < len(header) && slices.Contains(statusVolatileColumns, header[i]) {
				row[i] = "*"
			}
		}
	}
	var lines []string
	for _, row := range rows[1:] {
		lines = append(lines, strings.Join(row, " | "))
	}
	slices.Sort(lines)
	return strings.Join(append([]string{strings.Join(header, " | ")}, lines...), "\n") + "\n"
}

// members returns the cluster's members and m4, added or not.
func (c *ctlCluster) members() []*Member {
	if c.m4 == nil || slices.Contains(c.cl.Members, c.m4) {
		return c.cl.Members
	}
	return append(slices.Clone(c.cl.Members), c.m4)
}

// addedM4 records the ID the cluster gave m4 and sets it up to start with
// --initial-cluster-state existing.
func (c *ctlCluster) addedM4(t *testing.T) {
	t.Helper()
	c.cl.Members = append(c.cl.Members, c.m4)
	c.refreshNames(t)
	c.m4.InitialCluster = c.cl.initialCluster(c.cl.Members)
	c.m4.Extra = c.cl.memberFlags("existing")
}
