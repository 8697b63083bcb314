//go:build e2e

// Package e2e tests real processes: the cairn binary ($CAIRN_BIN) side by side
// with the reference etcd ($ETCD_BIN) and etcdctl ($ETCDCTL_BIN).
//
// Every file is guarded by the build tag e2e; run with
//
//	make test-e2e
//	cd server && CAIRN_BIN=... ETCD_BIN=... ETCDCTL_BIN=... go test -count=1 -tags e2e ./e2e/...
//
// A missing binary skips a test on a workstation and fails it when CI=true.
// Each test starts its own processes (single members, or 3-member clusters
// for the cluster tests) on free loopback ports with data in t.TempDir(),
// and kills them when it ends; on failure the tail of each process's stderr
// log is printed. Processes are started, logged, probed for readiness and
// killed by the repository's one launcher, chaos/cluster (StartProcess,
// FreePort), as the chaos runs and the benchmark do.
//
// The tests:
//   - interop_client_test.go: the official Go client against cairn, asserting
//     exact responses and rpctypes errors; each case also runs against etcd so
//     the expectations are proven to be etcd's.
//   - interop_etcdctl_test.go: the same etcdctl commands against etcd and cairn,
//     outputs compared after normalising cluster and member ids.
//   - auth_etcdctl_test.go: etcdctl's user, role and auth commands (adding,
//     granting, revoking, deleting, the root rules, auth enable and status)
//     against etcd and cairn, outputs and errors compared.
//   - auth_client_diff_test.go: raw Auth gRPC requests, including ones etcdctl
//     never sends (empty names, no permission, a client's undecodable hash),
//     responses and errors compared with etcd's.
//   - diff_test.go: a seeded random operation stream sent through the raw KV
//     gRPC stubs to etcd and cairn, every response compared with proto.Equal.
//     E2E_DIFF_SEED and E2E_DIFF_OPS override the seed and length;
//     E2E_DIFF_MAX_MISMATCHES=n reports up to n mismatches instead of one.
//     E2E_SUBJECT=etcd runs etcd against etcd (differential and etcdctl
//     tests) to check the harness itself.
//   - crash_test.go: SIGKILL under concurrent load; every acknowledged write
//     must survive the restart.
//   - watch_client_test.go: watches through the official client and etcdctl,
//     events and control responses compared with etcd's.
//   - lease_diff_test.go: lease responses, errors and expiry compared with
//     etcd's; etcdctl lease commands.
//   - cluster_*_test.go: 3-member clusters: SIGKILL of the leader under load
//     (no acknowledged write lost, the member catches up), a learner added to a
//     long history catches up by snapshot and is promoted, member removal,
//     MoveLeader, a cluster ID mismatch, membership changes read back through
//     every member, and etcdctl's member and endpoint commands side by side
//     with a real etcd cluster.
//   - cluster_tls_test.go, tls_diff_test.go: TLS (etcd and cairn alike,
//     certificates made by server/tlsutil/tlstest): a 3-member cluster with
//     mutual TLS on both ports (workload, etcdctl, a member joining, peers
//     refused for their CN or address), the same refusals of bad clients by
//     etcdctl against both, certificate rotation without a restart.
package e2e
