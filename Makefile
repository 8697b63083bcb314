# cairn's front door. Every command a contributor, the README and CI use
# is a target here. Go modules come from the module proxy; nothing else is
# downloaded.

SHELL := /bin/bash
GO ?= go
MODULES := node server client linearizability sim
RACE_PACKAGES := ./server/...
BIN := $(CURDIR)/bin
REF := $(CURDIR)/.ref/bin
TOOLS := $(CURDIR)/.tools/bin
ETCD_VERSION := v3.7.3
DATA_DIR ?= $(CURDIR)/default.cairn
SEEDS ?= 1000

export CAIRN_BIN := $(BIN)/cairn
export ETCD_BIN := $(REF)/etcd
export ETCDCTL_BIN := $(REF)/etcdctl

.PHONY: all build run test test-unit test-race test-e2e sim lint ref bench clean

all: build

## build: compile cairn (server) and cairnsim into ./bin
build:
	@mkdir -p $(BIN)
	cd server && $(GO) build -o $(BIN)/cairn ./cmd/cairn

## run: one cairn node on localhost:2379 with its data in ./default.cairn
run: build
	$(BIN)/cairn --name default --data-dir $(DATA_DIR)

## ref: the real etcd, etcdctl and etcdutl ($(ETCD_VERSION)) from the module proxy into .ref/bin
ref:
	@bash tools/ref/build.sh $(REF) $(ETCD_VERSION)

## test: everything CI runs: lint, unit tests, race tests, interop and differential tests
test: lint test-unit test-race test-e2e

test-unit:
	@set -e; for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GO) test -count=1 ./...); done

test-race:
	cd server && $(GO) test -count=1 -race ./...

test-e2e: build ref
	cd server && $(GO) test -count=1 -tags e2e ./e2e/...

## lint: gofmt, go vet and staticcheck on every module
lint:
	@bash tools/lint.sh $(TOOLS) $(MODULES)

clean:
	rm -rf $(BIN) .ref .tools
