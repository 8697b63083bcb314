// Package compare runs the same load against fresh etcd and cairn clusters on
// loopback, side by side, and reports both figures and the ratio cairn/etcd.
//
// For every cluster size and round, each case (a workload with its options)
// runs once against a fresh etcd and once against a fresh cairn, the order
// alternating between rounds and cases so that drift of a shared, noisy machine
// hits both systems. After each load it records the servers' peak RSS
// (VmHWM of /proc/PID/status) and the data directories' allocated size, then
// kills the cluster. The summary is the median over rounds; a case with any
// failed operation on either side gets no ratio, only the reason.
//
// Processes: every server is started in its own process group with
// Pdeathsig=SIGKILL and is killed (SIGKILL to the group) when its run ends,
// when the context is cancelled (SIGINT/SIGTERM to the harness), or when the
// harness dies. Ports are loopback only, from Config.BasePort upwards.
//
// Results are written as JSON (docs/bench/*.json) and rendered, with the
// machine and the command, into docs/benchmarks.md and an SVG chart.
package compare
