#!/usr/bin/env bash
# compare.sh: the same load against a fresh single-member etcd and a fresh
# single-member cairn, side by side, alternating ROUNDS times so machine
# drift hits both. Prints requests/s and p99 per run and the ratio of the
# medians. Load: etcd's own benchmark tool (clientv3 underneath).
#
#   tools/bench/compare.sh [put|range|range-serializable]
#
# Env: ROUNDS (3), TOTAL (30000), CLIENTS (100), CONNS (10), VAL_SIZE (256),
# DROP_CACHES (unset; 1 drops the page cache before each run, as root),
# RECORD (unset; a file to append "WORKLOAD SERVER ROUND REQS P99_MS" to,
# one line per run, for `cairnbench etcdtool`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REF=$ROOT/.ref/bin
CAIRN=${CAIRN:-$ROOT/bin/cairn}
WORKLOAD=${1:-put}
ROUNDS=${ROUNDS:-3}
TOTAL=${TOTAL:-30000}
CLIENTS=${CLIENTS:-100}
CONNS=${CONNS:-10}
VAL_SIZE=${VAL_SIZE:-256}
PORT=${PORT:-23799}
EP=127.0.0.1:$PORT
WORK=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # start NAME: a fresh server on $PORT
	local dir=$WORK/$1-data
	rm -rf "$dir"
	# DROP_CACHES=1 (root): write back and drop the page cache first, so
	# this run does not pay for reclaiming what the last one wrote.
	if [[ -n ${DROP_CACHES:-} ]]; then sync && echo 1 >/proc/sys/vm/drop_caches; fi
	if [[ $1 == etcd ]]; then
		"$REF/etcd" --data-dir "$dir" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
			--listen-peer-urls http://127.0.0.1:0 --initial-advertise-peer-urls http://127.0.0.1:23800 \
			--initial-cluster default=http://127.0.0.1:23800 >"$WORK/$1.log" 2>&1 &
	else
		"$CAIRN" --data-dir "$dir" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" >"$WORK/$1.log" 2>&1 &
	fi
	SERVER_PID=$!
	for _ in $(seq 100); do
		"$REF/etcdctl" --endpoints "$EP" --command-timeout 1s put warmup x >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "compare: $1 did not start; log:" >&2; tail -20 "$WORK/$1.log" >&2; exit 1
}

load() { # load: run the workload, print "REQS P99_MS ERRORS"
	local args=(--endpoints "$EP" --conns "$CONNS" --clients "$CLIENTS")
	local out
	case $WORKLOAD in
	put) out=$("$REF/benchmark" "${args[@]}" put --total "$TOTAL" --key-size 8 --val-size "$VAL_SIZE" --key-space-size 100000 2>&1) ;;
	range) out=$("$REF/benchmark" "${args[@]}" range warmup --total "$TOTAL" --consistency l 2>&1) ;;
	range-serializable) out=$("$REF/benchmark" "${args[@]}" range warmup --total "$TOTAL" --consistency s 2>&1) ;;
	*) echo "compare: unknown workload $WORKLOAD" >&2; exit 2 ;;
	esac
	local reqs p99 errors
	reqs=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '/ 99% in/ {printf "%.1f", $3*1000}' <<<"$out")
	errors=$(grep -c -i "error" <<<"$out" || true)
	echo "${reqs:-0} ${p99:-?} $errors"
}

declare -A results
for round in $(seq "$ROUNDS"); do
	for server in etcd cairn; do
		start $server
		read -r reqs p99 errors < <(load)
		kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
		printf '%-6s round %d  %-20s %10.0f req/s  p99 %6s ms  errors %s\n' "$server" "$round" "$WORKLOAD" "$reqs" "$p99" "$errors"
		results[$server]+="$reqs "
		if [[ -n ${RECORD:-} ]]; then echo "$WORKLOAD $server $round $reqs $p99" >>"$RECORD"; fi
		if [[ $errors != 0 ]]; then echo "compare: $server reported errors; no ratio" >&2; exit 1; fi
	done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
e=$(median "${results[etcd]}"); c=$(median "${results[cairn]}")
awk -v e="$e" -v c="$c" -v w="$WORKLOAD" 'BEGIN {printf "%s: etcd median %.0f req/s, cairn median %.0f req/s, cairn/etcd %.2f\n", w, e, c, c/e}'
