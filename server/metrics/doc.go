// Package metrics exports a member's metrics to Prometheus under etcd's
// names, types and labels, so the alert rules and dashboards written for
// etcd read cairn unchanged. It decides nothing: every value comes from a
// counter or state the core publishes (node.Metrics, node.Status,
// node.DBSize, the keyspace), or from the gRPC server it wraps (requests
// handled, bytes received and sent). Each member has its own registry.
// docs/operations.md says what each metric measures in cairn.
package metrics
