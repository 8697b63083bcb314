#!/usr/bin/env python3
"""Break a CPU profile down by component (docs/performance.md).

Reads `go tool pprof -traces BINARY PROFILE` on stdin. Each sample is
attributed to the innermost frame of a known component (a runtime.memmove
called by Pebble counts as Pebble); samples under the GC's workers and
assists count as GC; protobuf code counts as the component that called it
("gRPC codec" when gRPC did). The reference etcd's packages have groups of
their own ("etcd ...", bbolt), so its profiles break down the same way.
Arguments are substrings of function names whose cumulative share is
printed too.
"""
import re, sys
from collections import defaultdict

GROUPS = [
    ("pebble", "github.com/cockroachdb/pebble"),
    ("raft", "go.etcd.io/raft"),
    ("mvcc", "github.com/cairn-db/cairn/node/mvcc"),
    ("watch", "github.com/cairn-db/cairn/node/watch"),
    ("watch", "github.com/cairn-db/cairn/server/watch"),
    ("raftlog", "github.com/cairn-db/cairn/node/raftlog"),
    ("node", "github.com/cairn-db/cairn/node"),
    ("transport", "github.com/cairn-db/cairn/server/transport"),
    ("server", "github.com/cairn-db/cairn/server"),
    ("prometheus", "github.com/prometheus"),
    ("prometheus", "github.com/grpc-ecosystem"),
    ("protobuf", "google.golang.org/protobuf"),
    ("protobuf", "go.etcd.io/etcd/api"),
    ("gRPC", "google.golang.org/grpc"),
    ("gRPC", "golang.org/x/net/http2"),
    ("gRPC", "golang.org/x/net/trace"),
    # The reference etcd, for profiles taken with SYSTEM=etcd.
    ("bbolt", "go.etcd.io/bbolt"),
    ("etcd wal", "go.etcd.io/etcd/server/v3/storage/wal"),
    ("etcd mvcc", "go.etcd.io/etcd/server/v3/storage/mvcc"),
    ("etcd mvcc", "github.com/google/btree"),
    ("transport", "go.etcd.io/etcd/server/v3/etcdserver/api/rafthttp"),
    ("etcd server", "go.etcd.io/etcd/server"),
    ("etcd server", "go.etcd.io/etcd/pkg"),
    ("logging", "go.uber.org/zap"),
]
GC_ROOTS = ("runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcAssistAlloc", "runtime.markroot", "runtime.gcDrain")

def group_of(fn):
    for name, prefix in GROUPS:
        if fn.startswith(prefix):
            return name
    return None

def samples(lines):
    value, stack = None, []
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("-----------"):
            if value is not None and stack:
                yield value, stack
            value, stack = None, []
            continue
        m = re.match(r"^\s+(\d+(?:\.\d+)?)(ms|s|us|µs|ns)\s+(\S+)", line)
        if m:
            v, unit = float(m.group(1)), m.group(2)
            value = v * {"s": 1e3, "ms": 1, "us": 1e-3, "µs": 1e-3, "ns": 1e-6}[unit]
            stack = [m.group(3)]
            continue
        m = re.match(r"^\s+(\S+)", line)
        if m and value is not None:
            stack.append(m.group(1))
    if value is not None and stack:
        yield value, stack

def classify(stack):
    if any(f.startswith(GC_ROOTS) for f in stack):
        return "GC (background + assists)"
    for i, fn in enumerate(stack):
        g = group_of(fn)
        if g is None:
            continue
        if g == "protobuf":
            for outer in stack[i+1:]:
                og = group_of(outer)
                if og and og != "protobuf":
                    return "protobuf (%s)" % ("gRPC codec" if og == "gRPC" else og)
            return "protobuf"
        return g
    if any(f.startswith("syscall.") or f.startswith("internal/poll") for f in stack):
        return "syscalls (other)"
    return "runtime (scheduler, other)"

def main():
    wanted = sys.argv[1:]
    total = 0.0
    by = defaultdict(float)
    cum = defaultdict(float)
    malloc = 0.0
    for v, stack in samples(sys.stdin):
        total += v
        by[classify(stack)] += v
        if any(f.startswith("runtime.mallocgc") for f in stack):
            malloc += v
        for w in wanted:
            if any(w in f for f in stack):
                cum[w] += v
    print("total samples: %.0f ms" % total)
    for k, v in sorted(by.items(), key=lambda kv: -kv[1]):
        print("%6.1f%%  %s" % (100 * v / total, k))
    print("%6.1f%%  (of which under runtime.mallocgc, any component)" % (100 * malloc / total))
    for w in wanted:
        print("cum %6.1f%%  %s" % (100 * cum[w] / total, w))

main()
