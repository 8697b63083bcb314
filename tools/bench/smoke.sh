#!/usr/bin/env bash
# smoke.sh CAIRNCTL CAIRN ETCD: runs every `cairnctl bench` workload for about
# a second against a fresh single-member cairn and a fresh single-member etcd
# on loopback, and fails if any run fails. A workload the server does not
# support (exit 3, e.g. lease on a cairn without leases) is reported, not a
# failure. The load generator's only test against real servers: client/ cannot
# import server/, so its unit tests run without one.
set -euo pipefail
if [[ $# -ne 3 ]]; then
	echo "usage: $0 CAIRNCTL CAIRN ETCD" >&2
	exit 2
fi
CTL=$1 CAIRN=$2 ETCD=$3
PORT=${PORT:-24700}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

failed=0
for server in cairn etcd; do
	bin=$CAIRN
	[[ $server == etcd ]] && bin=$ETCD
	ep=127.0.0.1:$PORT
	peer=http://127.0.0.1:$((PORT + 1))
	"$bin" --name m0 --data-dir "$WORK/$server" --listen-client-urls "http://$ep" --advertise-client-urls "http://$ep" \
		--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "m0=$peer" \
		--log-level warn >"$WORK/$server.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	# Wait until the server takes a write, so start-up is not timed.
	timeout 30 "$CTL" bench -endpoints "$ep" -total 1 -clients 1 -conns 1 -quiet put >/dev/null 2>&1 ||
		{ echo "smoke: $server did not start; log:" >&2; tail -5 "$WORK/$server.log" >&2; exit 1; }
	for w in put range txn watch lease k8s; do
		set +e
		out=$(timeout 60 "$CTL" bench -endpoints "$ep" -duration 1s -clients 10 -conns 2 -key-count 1000 -watchers 10 -quiet "$w" 2>&1)
		rc=$?
		set -e
		case $rc in
		0) echo "smoke: $server $w ok: $(grep -E '^ops' <<<"$out")" ;;
		3) echo "smoke: $server $w: not supported" ;;
		*)
			echo "smoke: $server $w FAILED (exit $rc):" >&2
			echo "$out" | tail -5 >&2
			failed=1
			;;
		esac
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	PORT=$((PORT + 2))
done
if [[ $failed -ne 0 ]]; then
	echo "smoke: FAILED" >&2
	exit 1
fi
echo "smoke: ok"
