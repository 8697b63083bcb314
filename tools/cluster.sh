#!/usr/bin/env bash
# cluster.sh BIN DATA_DIR: a local 3-member cairn cluster in the foreground,
# started by the same launcher as the chaos runs, the e2e tests and the
# benchmark (chaos/cluster, through chaos/cmd/cairncluster). Client URLs
# 127.0.0.1:2379, :22379, :32379; peer URLs :2380, :22380, :32380. Each
# member's log lines are prefixed with its name (and kept in DATA_DIR/mN.log).
# Ctrl-C stops all three; their data stays in DATA_DIR/mN.data for the next
# start.
set -euo pipefail
BIN=${1:?usage: cluster.sh BIN DATA_DIR}
DATA=${2:?usage: cluster.sh BIN DATA_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAUNCHER=$(dirname "$BIN")/cairncluster
(cd "$ROOT/chaos" && ${GO:-go} build -o "$LAUNCHER" ./cmd/cairncluster)
exec "$LAUNCHER" -kind cairn -bin "$BIN" -dir "$DATA" -client-ports 2379,22379,32379
