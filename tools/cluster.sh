#!/usr/bin/env bash
# cluster.sh BIN DATA_DIR: a local 3-member cairn cluster in the foreground.
# Client URLs 127.0.0.1:2379, :22379, :32379; peer URLs :2380, :22380,
# :32380. Each member's log lines are prefixed with its name. Ctrl-C stops
# all three; their data stays in DATA_DIR for the next start.
set -euo pipefail
BIN=${1:?usage: cluster.sh BIN DATA_DIR}
DATA=${2:?usage: cluster.sh BIN DATA_DIR}
PORTS=(2379 22379 32379)
CLUSTER=""
for i in 0 1 2; do
	CLUSTER+="${CLUSTER:+,}m$((i + 1))=http://127.0.0.1:$((PORTS[i] + 1))"
done
pids=()
stop() {
	trap - INT TERM EXIT
	echo "cluster: stopping" >&2
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
mkdir -p "$DATA"
for i in 0 1 2; do
	name=m$((i + 1))
	client=http://127.0.0.1:${PORTS[i]}
	peer=http://127.0.0.1:$((PORTS[i] + 1))
	"$BIN" --name "$name" --data-dir "$DATA/$name" \
		--listen-client-urls "$client" --advertise-client-urls "$client" \
		--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new > >(sed -u "s/^/$name | /") 2>&1 &
	pids+=($!)
done
echo "cluster: members m1 m2 m3 on 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379; Ctrl-C stops them" >&2
wait
