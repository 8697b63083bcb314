#!/usr/bin/env bash
# largevalues.sh: sustained puts of large values into a fresh single-member
# etcd and a fresh single-member cairn, side by side, with etcd's own
# benchmark tool (issue 16's measurement): STEPS runs of TOTAL puts of
# VAL_SIZE-byte values over 50 keys from 16 clients, and after each step
# the server's peak RSS (VmHWM). At the end, what the server wrote to disk
# (write_bytes in /proc/PID/io) per byte of values put. ROUNDS alternate
# the two systems so machine drift hits both.
#
#   tools/bench/largevalues.sh
#
# Env: VAL_SIZE (20480), TOTAL (10000), STEPS (4), ROUNDS (1),
# SYSTEMS ("etcd cairn"), CAIRN (bin/cairn), PORT (23899), DROP_CACHES (unset;
# 1 drops the page cache before each run, as root).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REF=$ROOT/.ref/bin
CAIRN=${CAIRN:-$ROOT/bin/cairn}
VAL_SIZE=${VAL_SIZE:-20480}
TOTAL=${TOTAL:-10000}
STEPS=${STEPS:-4}
ROUNDS=${ROUNDS:-1}
SYSTEMS=${SYSTEMS:-etcd cairn}
PORT=${PORT:-23899}
PEER_PORT=$((PORT + 1))
EP=127.0.0.1:$PORT
# STEP_TIMEOUT bounds one step: at 10 puts/s, 10,000 puts would take 17 min.
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
	[[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

start() { # start SYSTEM: a fresh member on $PORT, its PID in SERVER_PID
	local dir=$WORK/$1-data flags
	rm -rf "$dir"
	# DROP_CACHES=1 (root): write back and drop the page cache first, so
	# this run does not pay for reclaiming what the last one wrote.
	if [[ -n ${DROP_CACHES:-} ]]; then sync && echo 1 >/proc/sys/vm/drop_caches; fi
	flags=(--data-dir "$dir" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP"
		--listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT"
		--initial-cluster "default=http://127.0.0.1:$PEER_PORT")
	if [[ $1 == etcd ]]; then
		"$REF/etcd" "${flags[@]}" >"$WORK/$1.log" 2>&1 &
	else
		"$CAIRN" "${flags[@]}" >"$WORK/$1.log" 2>&1 &
	fi
	SERVER_PID=$!
	for _ in $(seq 100); do
		"$REF/etcdctl" --endpoints "$EP" --command-timeout 1s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "largevalues: $1 did not start; log:" >&2
	tail -20 "$WORK/$1.log" >&2
	exit 1
}

stop() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

echo "# $VAL_SIZE-byte values, $STEPS steps of $TOTAL puts, 16 clients, 50 keys; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# system round: put/s per step | peak RSS MB per step | written / values put"
for round in $(seq "$ROUNDS"); do
	for system in $SYSTEMS; do
		start "$system"
		rates=() peaks=()
		for _ in $(seq "$STEPS"); do
			out=$(timeout "$STEP_TIMEOUT" "$REF/benchmark" --endpoints "$EP" --conns 16 --clients 16 \
				put --total "$TOTAL" --val-size "$VAL_SIZE" --key-space-size 50 2>&1)
			rates+=("$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")")
			peaks+=("$(($(status_kib "$SERVER_PID" VmHWM) / 1024))")
		done
		written=$(awk '/^write_bytes:/ {print $2}' "/proc/$SERVER_PID/io")
		stop
		amplification=$(awk -v w="$written" -v n=$((STEPS * TOTAL)) -v v="$VAL_SIZE" 'BEGIN {printf "%.2f", w / (n * v)}')
		echo "$system $round: ${rates[*]} | ${peaks[*]} | ${amplification}x ($((written / 1000000)) MB)"
	done
done
