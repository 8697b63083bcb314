#!/bin/bash
# profile.sh CAIRN OUTDIR: CPU profiles of a 3-member cairn cluster under
# load (docs/performance.md). Starts three members on loopback (client
# ports 41379, 42379, 43379; peers on the next port; /metrics and
# /debug/pprof on the one after), then runs put, txn and range loads of
# 26 s each with bin/cairnctl (100 clients, 10 connections, all three
# endpoints) and takes a 20 s CPU profile of the leader and of one follower
# at once, 4 s into each load. Writes OUTDIR/{put,txn,range}-{leader,follower}.pprof,
# the load's JSON result OUTDIR/{put,txn,range}.json, the members' data and
# logs under OUTDIR/data, and stops the members.
#
# SYSTEM=etcd profiles the reference etcd instead (CAIRN is then the etcd
# binary, e.g. .ref/bin/etcd): the same flags, the same loads; etcd serves
# /debug/pprof on its client URL rather than its metrics URL.
set -euo pipefail
CAIRN=$1
OUT=$2
SYSTEM=${SYSTEM:-cairn}
CTL=${CAIRNCTL:-bin/cairnctl}
# RATE, if set, fixes the offered load (operations per second over all
# clients): two builds then batch alike, and their CPU per operation can
# be compared on a machine shared with other work.
RATE=${RATE:-0}
LOAD_SECONDS=26
PROFILE_SECONDS=20
rm -rf "$OUT/data" "$OUT/cpu.txt"
mkdir -p "$OUT/data"
initial="m1=http://127.0.0.1:41380,m2=http://127.0.0.1:42380,m3=http://127.0.0.1:43380"
pids=()
# stop waits for the members to exit, so the next run finds the ports free.
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
for i in 1 2 3; do
	"$CAIRN" --name "m$i" --data-dir "$OUT/data/m$i.data" \
		--listen-client-urls "http://127.0.0.1:4${i}379" --advertise-client-urls "http://127.0.0.1:4${i}379" \
		--listen-peer-urls "http://127.0.0.1:4${i}380" --initial-advertise-peer-urls "http://127.0.0.1:4${i}380" \
		--listen-metrics-urls "http://127.0.0.1:4${i}381" --enable-pprof \
		--initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token perf \
		>"$OUT/data/m$i.log" 2>&1 &
	pids+=($!)
done
leader=""
for _ in $(seq 1 100); do # at most 20 s for an election
	for i in 1 2 3; do
		metrics=$(curl -sf "http://127.0.0.1:4${i}381/metrics" || true)
		if grep -q '^etcd_server_is_leader 1' <<<"$metrics"; then
			leader=$i
		fi
	done
	[ -n "$leader" ] && break
	sleep 0.2
done
[ -n "$leader" ] || { echo "profile.sh: no leader after 20 s" >&2; exit 1; }
follower=$((leader % 3 + 1))
echo "leader m$leader, follower m$follower"
pprofPort=381 # the port that serves /debug/pprof, after 4N
if [ "$SYSTEM" = etcd ]; then pprofPort=379; fi
endpoints=127.0.0.1:41379,127.0.0.1:42379,127.0.0.1:43379
# membersCPUTicks prints the CPU time (user + system, in clock ticks) the
# three members used so far, from /proc/PID/stat.
membersCPUTicks() {
	local total=0
	for p in "${pids[@]}"; do
		read -r -a stat <"/proc/$p/stat"
		total=$((total + stat[13] + stat[14]))
	done
	echo "$total"
}
ticksPerSecond=$(getconf CLK_TCK)
run() { # name, then cairnctl bench arguments
	local name=$1
	shift
	local before
	before=$(membersCPUTicks)
	"$CTL" bench -endpoints "$endpoints" -clients 100 -conns 10 -duration "${LOAD_SECONDS}s" -rate "$RATE" -quiet -json "$@" >"$OUT/$name.json" &
	local load=$!
	sleep 4
	curl -sf -o "$OUT/$name-leader.pprof" "http://127.0.0.1:4${leader}${pprofPort}/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
	local p1=$!
	curl -sf -o "$OUT/$name-follower.pprof" "http://127.0.0.1:4${follower}${pprofPort}/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
	local p2=$!
	wait "$p1" "$p2" "$load"
	# The members' CPU per operation (the load's setup, such as a range's
	# preload, is in it too): on a shared machine a steadier figure than
	# operations per second.
	local ticks ops
	ticks=$(($(membersCPUTicks) - before))
	ops=$(sed -n 's/^  "ops": \([0-9]*\),$/\1/p' "$OUT/$name.json")
	echo "$name: $ops ops, members' CPU $((ticks * 1000000 / ticksPerSecond / ops)) us/op" | tee -a "$OUT/cpu.txt"
}
run put -key-count 100000 put
run txn -key-count 10000 txn
run range -key-count 10000 range
