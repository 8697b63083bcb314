package member

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/node"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The health endpoints, as etcd serves them on its client and metrics
// URLs. Each carries state the core publishes (alarms, leader, learner
// role) or a read the core serves; none decides anything a client of the
// keyspace sees.

// healthReadKey is the key the health checks read (etcdctl's endpoint
// health reads the same one); keys only, at most one.
var healthReadKey = []byte("health")

// healthJSON is /health's answer, in etcd's format.
type healthJSON struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// health answers /health as etcd does: unhealthy with the first active
// alarm not excluded by ?exclude=NAME, then without a leader (unless
// ?serializable=true), then if a read fails.
func (m *Member) health(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	serializable := r.URL.Query().Get("serializable") == "true"
	h := m.healthCheck(r.Context(), querySet(r, "exclude"), serializable)
	body, _ := json.Marshal(h)
	if h.Health != "true" {
		http.Error(w, string(body), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (m *Member) healthCheck(ctx context.Context, excludedAlarms map[string]bool, serializable bool) healthJSON {
	for _, a := range m.node.Alarms() {
		if excludedAlarms[a.GetAlarm().String()] {
			continue
		}
		switch a.GetAlarm() {
		case pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT:
			return healthJSON{Health: "false", Reason: "ALARM " + a.GetAlarm().String()}
		}
		return healthJSON{Health: "false", Reason: "ALARM UNKNOWN"}
	}
	if !serializable && m.node.Status().Leader == 0 {
		return healthJSON{Health: "false", Reason: "RAFT NO LEADER"}
	}
	if err := m.readCheck(ctx, serializable); err != nil {
		return healthJSON{Health: "false", Reason: "RANGE ERROR:" + err.Error()}
	}
	return healthJSON{Health: "true"}
}

// readCheck reads through the core as a client would, bounded by the
// request timeout.
func (m *Member) readCheck(ctx context.Context, serializable bool) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// As etcd's, the check reads as the root user.
	_, err := m.driver.Serve(ctx, node.AsMember(node.Request{Range: &pb.RangeRequest{
		Key: healthReadKey, KeysOnly: true, Limit: 1, Serializable: serializable,
	}}))
	return err
}

// healthCheckFunc is one named check of /livez or /readyz.
type healthCheckFunc func(ctx context.Context) error

// livezChecks and readyzChecks are etcd's checks, by name.
func (m *Member) livezChecks() map[string]healthCheckFunc {
	return map[string]healthCheckFunc{
		"serializable_read": func(ctx context.Context) error { return m.readCheck(ctx, true) },
	}
}

func (m *Member) readyzChecks() map[string]healthCheckFunc {
	return map[string]healthCheckFunc{
		"data_corruption": func(context.Context) error {
			for _, a := range m.node.Alarms() {
				if a.GetAlarm() == pb.AlarmType_CORRUPT {
					return fmt.Errorf("alarm activated: %s", a.GetAlarm())
				}
			}
			return nil
		},
		"serializable_read": func(ctx context.Context) error { return m.readCheck(ctx, true) },
		"linearizable_read": func(ctx context.Context) error { return m.readCheck(ctx, false) },
		"non_learner": func(context.Context) error {
			st := m.node.Status()
			if slices.Contains(st.Learners, st.ID) {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		},
	}
}

// installHealthChecks serves root (/livez or /readyz) running every check
// but those named by ?exclude=, and root/NAME running one; ?verbose lists
// each check's outcome. Checks run in name order (etcd's order is a map's).
func installHealthChecks(mux *http.ServeMux, root string, checks map[string]healthCheckFunc) {
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	slices.Sort(names)
	mux.HandleFunc(root, func(w http.ResponseWriter, r *http.Request) {
		excluded := querySet(r, "exclude")
		run := slices.DeleteFunc(slices.Clone(names), func(name string) bool { return excluded[name] })
		serveHealthChecks(w, r, checks, run)
	})
	for _, name := range names {
		mux.HandleFunc(root+"/"+name, func(w http.ResponseWriter, r *http.Request) {
			serveHealthChecks(w, r, checks, []string{name})
		})
	}
}

func serveHealthChecks(w http.ResponseWriter, r *http.Request, checks map[string]healthCheckFunc, names []string) {
	if !onlyGET(w, r) {
		return
	}
	var report strings.Builder
	failed := false
	for _, name := range names {
		if err := checks[name](r.Context()); err != nil {
			fmt.Fprintf(&report, "[-]%s failed: %v\n", name, err)
			failed = true
			continue
		}
		fmt.Fprintf(&report, "[+]%s ok\n", name)
	}
	if failed {
		http.Error(w, report.String(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Has("verbose") {
		fmt.Fprint(w, report.String())
	}
	fmt.Fprint(w, "ok\n")
}

// versionJSON is /version's answer: etcd's fields, with the etcd version
// whose API cairn serves, and cairn's own version.
type versionJSON struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
	Cairn   string `json:"cairn,omitempty"`
}

func (m *Member) version(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	body, _ := json.Marshal(versionJSON{Server: node.EtcdVersion, Cluster: node.ClusterVersion,
		Storage: node.ClusterVersion, Cairn: m.cfg.CairnVersion})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func onlyGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// querySet is the non-empty values of a repeated query parameter.
func querySet(r *http.Request, name string) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()[name] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

// healthMux serves the health and version endpoints.
func (m *Member) healthMux(mux *http.ServeMux) {
	mux.HandleFunc("/health", m.health)
	installHealthChecks(mux, "/livez", m.livezChecks())
	installHealthChecks(mux, "/readyz", m.readyzChecks())
	mux.HandleFunc("/version", m.version)
}
