package metrics

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairn-db/cairn/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Level is --metrics: Basic, or Extensive, which adds gRPC handling-time
// histograms, as in etcd.
type Level string

// The levels of --metrics.
const (
	Basic     Level = "basic"
	Extensive Level = "extensive"
)

// ParseLevel reads --metrics.
func ParseLevel(s string) (Level, error) {
	switch Level(s) {
	case Basic, Extensive:
		return Level(s), nil
	}
	return "", fmt.Errorf("--metrics: %q is not basic or extensive", s)
}

// Source is the member state the metrics read.
type Source interface {
	Metrics() node.Metrics
	Status() node.Status
	DBSize() (total, inUse int64)
	CompactionDebtBytes() uint64
	Store() *node.StoreView
}

// Registry is one member's metrics.
type Registry struct {
	reg  *prometheus.Registry
	grpc *grpcMetrics
	// received and sent count the client gRPC payload bytes.
	received, sent prometheus.Counter
}

// New returns the metrics of the member src describes, with quotaBytes its
// --quota-backend-bytes.
func New(src Source, quotaBytes int64, level Level) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.grpc = newGRPCMetrics(level == Extensive)
	r.received = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
		Name: "client_grpc_received_bytes_total", Help: "The total number of bytes received from grpc clients."})
	r.sent = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "network",
		Name: "client_grpc_sent_bytes_total", Help: "The total number of bytes sent to grpc clients."})
	r.reg.MustRegister(r.grpc, r.received, r.sent, &coreCollector{src: src, quotaBytes: quotaBytes},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Register adds collectors measured elsewhere (the peer transport's) to
// the registry; a name registered twice panics, a programmer's error.
func (r *Registry) Register(collectors ...prometheus.Collector) { r.reg.MustRegister(collectors...) }

// GRPCServerOptions count the client gRPC server's requests; its codec
// counts the bytes (Received, Sent). A stats handler could count them too,
// but gRPC then copies every request's metadata and reports seven events
// per call: 3-4 % of a member's throughput under serializable ranges.
func (r *Registry) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(r.grpc.unaryInterceptor),
		grpc.ChainStreamInterceptor(r.grpc.streamInterceptor),
	}
}

// Received counts bytes of messages received from clients
// (etcdapi.ByteCounter).
func (r *Registry) Received(bytes int) { r.received.Add(float64(bytes)) }

// Sent counts bytes of messages sent to clients (etcdapi.ByteCounter).
func (r *Registry) Sent(bytes int) { r.sent.Add(float64(bytes)) }

// InitializeGRPC makes every method of s appear with zero counts; it must
// be called after s's services are registered and before it serves.
func (r *Registry) InitializeGRPC(s *grpc.Server) { r.grpc.initialize(s) }

// Handler serves /metrics.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Gather returns the current metrics, for tests.
func (r *Registry) Gather() ([]string, error) {
	families, err := r.reg.Gather()
	names := make([]string, 0, len(families))
	for _, f := range families {
		names = append(names, f.GetName())
	}
	return names, err
}

// coreCollector reads the core's state at each scrape.
type coreCollector struct {
	src        Source
	quotaBytes int64
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	hasLeader      = desc("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")
	isLeader       = desc("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")
	isLearner      = desc("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.")
	leaderChanges  = desc("etcd_server_leader_changes_seen_total", "The number of leader changes seen.")
	committed      = desc("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.")
	applied        = desc("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.")
	pending        = desc("etcd_server_proposals_pending", "The current number of pending proposals to commit.")
	failed         = desc("etcd_server_proposals_failed_total", "The total number of failed proposals seen.")
	quota          = desc("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.")
	serverID       = desc("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id")
	serverVersion  = desc("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version")
	walFsync       = desc("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.")
	backendCommit  = desc("etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.")
	dbTotal        = desc("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.")
	dbInUse        = desc("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.")
	puts           = desc("etcd_mvcc_put_total", "Total number of puts seen by this member.")
	ranges         = desc("etcd_mvcc_range_total", "Total number of ranges seen by this member.")
	deletes        = desc("etcd_mvcc_delete_total", "Total number of deletes seen by this member.")
	txns           = desc("etcd_mvcc_txn_total", "Total number of txns seen by this member.")
	keys           = desc("etcd_debugging_mvcc_keys_total", "Total number of keys.")
	compactionDebt = desc("cairn_pebble_compaction_debt_bytes", "Bytes Pebble estimates it must compact to bring its LSM back into shape (cairn only).")
	allDescs       = []*prometheus.Desc{hasLeader, isLeader, isLearner, leaderChanges, committed, applied, pending, failed,
		quota, serverID, serverVersion, walFsync, backendCommit, dbTotal, dbInUse, puts, ranges, deletes, txns, keys, compactionDebt}
)

func (c *coreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *coreCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.src.Metrics()
	st := c.src.Status()
	total, inUse := c.src.DBSize()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(hasLeader, boolValue(st.Leader != 0))
	gauge(isLeader, boolValue(st.IsLeader))
	gauge(isLearner, boolValue(isLearnerIn(st)))
	counter(leaderChanges, m.LeaderChanges)
	gauge(committed, float64(st.CommitIndex))
	gauge(applied, float64(st.AppliedIndex))
	gauge(pending, float64(m.ProposalsPending))
	counter(failed, m.ProposalsFailed)
	gauge(quota, float64(c.quotaBytes))
	gauge(serverID, 1, strconv.FormatUint(st.ID, 16))
	gauge(serverVersion, 1, node.EtcdVersion)
	ch <- histogram(walFsync, m.WALSyncSeconds)
	ch <- histogram(backendCommit, m.BackendCommitSeconds)
	gauge(dbTotal, float64(total))
	gauge(dbInUse, float64(inUse))
	counter(puts, m.Puts)
	counter(ranges, m.Ranges)
	counter(deletes, m.Deletes)
	counter(txns, m.Txns)
	if n, err := keyCount(c.src.Store()); err == nil {
		gauge(keys, float64(n))
	} else {
		ch <- prometheus.NewInvalidMetric(keys, err)
	}
	gauge(compactionDebt, float64(c.src.CompactionDebtBytes()))
}

func histogram(d *prometheus.Desc, h node.HistogramSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, len(node.DurationBucketsSeconds))
	for i, bound := range node.DurationBucketsSeconds {
		buckets[bound] = h.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.SumSeconds, buckets)
}

// keyCount counts the keys that exist now, as etcd's keys_total gauge.
func keyCount(s *node.StoreView) (int64, error) {
	resp, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

func isLearnerIn(st node.Status) bool {
	for _, id := range st.Learners {
		if id == st.ID {
			return true
		}
	}
	return false
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
