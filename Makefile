# cairn's front door. Every command a contributor, the README and CI use
# is a target here. Go modules come from the module proxy; nothing else is
# downloaded.

SHELL := /bin/bash
GO ?= go
MODULES := node server client linearizability sim chaos deploy
# Packages with goroutines of their own or concurrent readers: the driver
# loop and gRPC services, the keyspace's concurrent reads, the recorder.
RACE_PACKAGES := server:./... node:./... linearizability:./... chaos:./proxy/...
BIN := $(CURDIR)/bin
REF := $(CURDIR)/.ref/bin
TOOLS := $(CURDIR)/.tools/bin
ETCD_VERSION := v3.7.3
DATA_DIR ?= $(CURDIR)/default.cairn
SEEDS ?= 1000

export CAIRN_BIN := $(BIN)/cairn
export ETCD_BIN := $(REF)/etcd
export ETCDCTL_BIN := $(REF)/etcdctl
export ETCDUTL_BIN := $(REF)/etcdutl
export CAIRNUTL_BIN := $(BIN)/cairnutl
export CAIRN_FAILPOINTS_BIN := $(BIN)/cairn-failpoints

.PHONY: all build build-failpoints image test-deploy k8s-storage run cluster test test-unit test-race test-e2e test-chaos test-sim sim chaos lint ref bench bench-tools bench-large bench-smoke bench-soak bench-defrag bench-etcdtool bench-largevalues bench-micro clean

all: build

## build: compile cairn and cairnutl (server) and cairnsim into ./bin
build:
	@mkdir -p $(BIN)
	cd server && $(GO) build -o $(BIN)/cairn ./cmd/cairn
	cd server && $(GO) build -o $(BIN)/cairnutl ./cmd/cairnutl
	cd sim && $(GO) build -o $(BIN)/cairnsim ./cmd/cairnsim

## image: cairn's container image as a tarball, bin/cairn-image.tar, for
## `docker load -i` or `podman load -i`, written without a Docker daemon
## (deploy/image; the Dockerfile describes the same image). IMAGE_TAG names it.
IMAGE_TAG ?= cairn:latest
image:
	@mkdir -p $(BIN)/image
	cd server && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/image/cairn ./cmd/cairn
	cd deploy && $(GO) run ./cmd/cairnimage -binary $(BIN)/image/cairn -out $(BIN)/cairn-image.tar -tag $(IMAGE_TAG) \
		-version "$$($(BIN)/image/cairn --version | sed -n 's/^cairn Version: //p')"

## test-deploy: the image, Compose, Kubernetes and systemd tests alone (also in
## make test): manifests decoded strictly, their flags run through cairn's parser
test-deploy:
	cd deploy && $(GO) test -count=1 ./...

## run: one cairn node on localhost:2379 with its data in ./default.cairn
run: build
	$(BIN)/cairn --name default --data-dir $(DATA_DIR)

## cluster: a local 3-member cluster in the foreground (clients on ports
## 2379, 22379, 32379), data in ./cluster.cairn; Ctrl-C stops it
CLUSTER_DIR ?= $(CURDIR)/cluster.cairn
cluster: build
	@bash tools/cluster.sh $(BIN)/cairn $(CLUSTER_DIR)

## ref: the real etcd, etcdctl and etcdutl ($(ETCD_VERSION)) from the module proxy into .ref/bin
ref:
	@bash tools/ref/build.sh $(REF) $(ETCD_VERSION)

## test: everything CI runs: lint, unit tests (with the short simulator
## sweep), race tests, interop, differential and crash tests against real
## etcd, and a short chaos run with the checkers' self-tests (~90 s)
test: lint test-unit test-race test-e2e test-chaos

test-unit:
	@set -e; for m in $(MODULES); do \
		if [ -z "$$(cd $$m && $(GO) list ./... 2>/dev/null)" ]; then echo "== $$m: no packages yet"; continue; fi; \
		echo "== go test $$m"; (cd $$m && $(GO) test -count=1 ./...); done

test-race:
	@set -e; for mp in $(RACE_PACKAGES); do m=$${mp%%:*}; p=$${mp#*:}; \
		echo "== go test -race $$m $$p"; (cd $$m && $(GO) test -count=1 -race $$p); done

test-e2e: build build-failpoints ref
	cd server && $(GO) test -count=1 -tags e2e ./e2e/...

## test-chaos: a 40 s chaos run of every fault against a 3-member cairn, and
## the self-tests: cairn built with planted bugs (stale linearizable reads,
## acks before fsync) must fail the checks. Knobs: CHAOS_SEED, CHAOS_DURATION.
test-chaos: build build-failpoints
	cd chaos && $(GO) test -count=1 -timeout 10m -tags e2e ./...

## build-failpoints: cairn with the chaos self-tests' failpoints compiled in
## (switched on by $$CAIRN_FAILPOINTS); never a production binary
build-failpoints:
	@mkdir -p $(BIN)
	cd server && $(GO) build -tags chaosfailpoints -o $(BIN)/cairn-failpoints ./cmd/cairn

## chaos: one seeded schedule of faults against real processes (docs/chaos.md).
## Knobs: DURATION (default 5m), SEED (default: from the clock), MEMBERS (3
## or 5), TARGET=etcd (the same run against the reference etcd), FAULTS
## (comma-separated subset). Prints one summary line; the report is in chaos-out/.
TARGET ?= cairn
MEMBERS ?= 3
SEED ?= 0
CHAOS_DURATION := $(if $(filter command line environment,$(origin DURATION)),$(DURATION),5m)
chaos: build $(if $(filter etcd,$(TARGET)),ref)
	cd chaos && $(GO) build -o $(BIN)/cairnchaos ./cmd/cairnchaos
	$(BIN)/cairnchaos -target $(TARGET) -members $(MEMBERS) -duration $(CHAOS_DURATION) -seed $(SEED) \
		-report $(CURDIR)/chaos-out $(if $(FAULTS),-faults $(FAULTS))

## sim: a long simulator sweep, SEEDS seeds (default 1000) on every core;
## DURATION sets the virtual time per run (default 60s)
DURATION ?= 60s
sim: build
	$(BIN)/cairnsim -seeds $(SEEDS) -duration $(DURATION)

## bench: cairn against the real etcd, side by side, 1- and 3-member clusters,
## every workload; prints the table, rewrites docs/benchmarks.md and
## docs/bench/{results.json,chart.svg}. QUICK=1: 1 round of 3 s (a few minutes).
## Knobs: ROUNDS, DURATION (per run), CLIENTS, CONNS, SIZES (1,3), CASES (all),
## DROP_CACHES=1 (as root: drop the page cache before each run; see docs/benchmarks.md).
## bench-large: N keys (default 1000000) in each system: RSS, disk, read latency.
## bench-smoke: every cairnctl workload for ~1 s against one cairn and one etcd.
## bench-etcdtool: etcd's own benchmark tool against both (tools/bench/compare.sh);
## rewrites docs/benchmarks.md and docs/bench/etcdtool.json. Knobs: ROUNDS (3),
## TOTAL (30000), DROP_CACHES=1.
## bench-largevalues: issue 16's run, etcd's benchmark tool putting large values
## into one member of each (tools/bench/largevalues.sh): put/s, peak RSS and
## bytes written per byte put. Knobs: VAL_SIZE (20480), TOTAL (10000), STEPS (4).
## bench-micro: Go micro-benchmarks of the hot paths (raft log, MVCC, watch
## fan-out, the node's Process), plain `go test -bench` output for benchstat;
## knobs BENCHTIME (default 1s) and COUNT (default 1). docs/microbenchmarks.md.
BENCH_BIN := $(BIN)/bench
BENCH_DURATION := $(if $(filter command line environment,$(origin DURATION)),$(DURATION),$(if $(QUICK),3s,10s))
BENCH_FLAGS = -etcd $(REF)/etcd -cairn $(BENCH_BIN)/cairn -repo $(CURDIR) \
	-results $(CURDIR)/docs/bench -doc $(CURDIR)/docs/benchmarks.md \
	$(if $(QUICK),-quick) -command "make $@ $(strip $(MAKEOVERRIDES))"
N ?= 1000000
SIZES ?= 1,3
# cairn is built into bin/bench/ so a concurrent `make build` cannot swap the
# binary under a running comparison.
bench-tools: ref
	@mkdir -p $(BENCH_BIN)
	cd server && $(GO) build -o $(BENCH_BIN)/cairn ./cmd/cairn
	cd client && $(GO) build -o $(BIN)/cairnctl ./cmd/cairnctl && $(GO) build -o $(BIN)/cairnbench ./cmd/cairnbench
bench: bench-tools
	$(BIN)/cairnbench compare $(BENCH_FLAGS) -rounds $(or $(ROUNDS),$(if $(QUICK),1,3)) -duration $(BENCH_DURATION) \
		-clients $(or $(CLIENTS),100) -conns $(or $(CONNS),10) -sizes $(SIZES) $(if $(CASES),-cases $(CASES)) \
		$(if $(DROP_CACHES),-drop-caches)
bench-large: bench-tools
	$(BIN)/cairnbench large $(BENCH_FLAGS) -n $(N) -duration $(BENCH_DURATION) -clients $(or $(CLIENTS),50)
bench-smoke: bench-tools
	@bash tools/bench/smoke.sh $(BIN)/cairnctl $(BENCH_BIN)/cairn $(REF)/etcd
## bench-soak: RSS every second under sustained puts of 1 KiB, 20 KiB, 100 KiB
## and 1 MiB values, cairn and etcd side by side; rewrites docs/benchmarks.md
## and docs/bench/{soak.json,soak.svg}. Knobs: SOAK_DURATION (per size and
## system, default 3m), SOAK_SIZES (bytes), MEMORY_BUDGET_MIB (cairn's, 320),
## DROP_CACHES=1 (as root: drop the page cache before each soak).
SOAK_DURATION ?= 3m
SOAK_SIZES ?= 1024,20480,102400,1048576
MEMORY_BUDGET_MIB ?= 320
bench-soak: bench-tools
	$(BIN)/cairnbench soak $(BENCH_FLAGS) -duration $(SOAK_DURATION) -sizes $(SOAK_SIZES) -memory-budget-mib $(MEMORY_BUDGET_MIB) \
		$(if $(DROP_CACHES),-drop-caches)
## bench-defrag: read and write latency (p50/p99/max) before and during a
## Defragment of a KEYS-key database (default 1000000), one member of each
## system side by side, with the defragment's duration and the db size
## before and after; rewrites docs/benchmarks.md and docs/bench/defrag.json.
KEYS ?= 1000000
bench-defrag: bench-tools
	$(BIN)/cairnbench defrag $(BENCH_FLAGS) -keys $(KEYS)
bench-etcdtool: bench-tools
	@rm -f $(BENCH_BIN)/etcdtool.record
	@for w in put range range-serializable; do \
		CAIRN=$(BENCH_BIN)/cairn RECORD=$(BENCH_BIN)/etcdtool.record tools/bench/compare.sh $$w || exit 1; done
	$(BIN)/cairnbench etcdtool $(BENCH_FLAGS) -record $(BENCH_BIN)/etcdtool.record
BENCHTIME ?= 1s
COUNT ?= 1
MICRO_FLAGS = -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT)
bench-micro:
	@cd node && $(GO) test $(MICRO_FLAGS) ./mvcc/ ./raftlog/ .
	@cd server && $(GO) test $(MICRO_FLAGS) ./watch/

bench-largevalues: build ref
	tools/bench/largevalues.sh

## k8s-storage: Kubernetes' own etcd3 storage tests (k8s.io/apiserver
## pkg/storage/etcd3, from the module proxy) against bin/cairn and the
## reference etcd, with the EtcdRangeStream gate's default off and on; prints
## the counts per system and gate, reports in k8s-storage-out/. Not part of
## `make test` (a large dependency tree; tools/k8sstorage is its own module,
## outside go.work). Knobs: K8S_RUN (a -run regexp), K8S_SYSTEMS, K8S_GATES.
K8S_SYSTEMS ?= cairn=$(BIN)/cairn,etcd=$(REF)/etcd
K8S_GATES ?= off,on
k8s-storage: build ref
	cd tools/k8sstorage && GOWORK=off GOFLAGS=-mod=mod $(GO) run ./cmd/k8sstorage \
		-systems $(K8S_SYSTEMS) -gates $(K8S_GATES) -out $(CURDIR)/k8s-storage-out $(if $(K8S_RUN),-run '$(K8S_RUN)')

## lint: gofmt, go vet and staticcheck on every module
lint:
	@bash tools/lint.sh $(TOOLS) $(MODULES)

clean:
	rm -rf $(BIN) .ref .tools
