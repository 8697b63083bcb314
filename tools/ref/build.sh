#!/usr/bin/env bash
# build.sh OUT_DIR VERSION
#
# Builds the reference etcd, etcdctl and etcdutl at VERSION (e.g. v3.7.3),
# and etcd's `benchmark` tool, from the Go module proxy into OUT_DIR.
#
# The binaries are built from two scratch modules next to this script:
#   tools/ref/etcd       pins go.etcd.io/etcd/{server,etcdctl,etcdutl}/v3 at VERSION
#   tools/ref/benchmark  pins go.etcd.io/etcd/v3/tools/benchmark at BENCHMARK_VERSION
#                        (the proxy serves the root module only up to v3.6.8)
# Their go.mod and go.sum are committed so builds are reproducible.
# `go install X@v` cannot be used: etcd's go.mod files carry replace directives.
#
# Idempotent: a binary whose version already matches is not rebuilt.
# Works outside the repo's go.work (GOWORK=off). Fails loudly.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 OUT_DIR VERSION" >&2
	exit 2
fi
OUT_DIR=$1
VERSION=$2
BENCHMARK_VERSION=${BENCHMARK_VERSION:-v3.6.8}
GO=${GO:-go}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ! "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "ref: VERSION must look like v3.7.3, got '$VERSION'" >&2
	exit 2
fi
command -v "$GO" >/dev/null || { echo "ref: '$GO' not found in PATH" >&2; exit 1; }

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
export GOWORK=off
export CGO_ENABLED=${CGO_ENABLED:-0}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

die() {
	echo "ref: FAILED: $*" >&2
	exit 1
}

# bin_has_version BIN ARGS... -- true if `BIN ARGS` prints VERSION (without the v).
bin_has_version() {
	local bin=$1
	shift
	[[ -x "$bin" ]] || return 1
	local out
	out=$("$bin" "$@" 2>/dev/null) || return 1
	grep -qF "${VERSION#v}" <<<"$out"
}

# ensure_module DIR "PKG..." MODULE@VERSION... -- make sure the scratch module in DIR
# requires exactly these versions and has the go.sum entries to build PKG...;
# runs `go get` only when needed.
ensure_module() {
	local dir=$1 pkgs=$2
	shift 2
	[[ -f "$dir/go.mod" ]] || die "$dir/go.mod missing"
	local need=0 spec mod ver
	for spec in "$@"; do
		mod=${spec%@*}
		ver=${spec#*@}
		if [[ "$(cd "$dir" && "$GO" list -m -f '{{.Version}}' "$mod" 2>/dev/null)" != "$ver" ]]; then
			need=1
		fi
	done
	if [[ $need -eq 0 ]] && ! (cd "$dir" && "$GO" list -deps $pkgs >/dev/null 2>&1); then
		need=1 # go.sum incomplete
	fi
	if [[ $need -eq 1 ]]; then
		echo "ref: go get $* (in ${dir#"$HERE"/})"
		(cd "$dir" && "$GO" get "$@") || die "go get $* in $dir"
		(cd "$dir" && "$GO" mod tidy) || die "go mod tidy in $dir"
	fi
}

build_etcd() {
	if bin_has_version "$OUT_DIR/etcd" --version &&
		bin_has_version "$OUT_DIR/etcdctl" version &&
		bin_has_version "$OUT_DIR/etcdutl" version; then
		echo "ref: etcd, etcdctl, etcdutl ${VERSION} up to date in $OUT_DIR"
		return
	fi
	local dir=$HERE/etcd
	ensure_module "$dir" "go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3" \
		"go.etcd.io/etcd/server/v3@$VERSION" \
		"go.etcd.io/etcd/etcdctl/v3@$VERSION" \
		"go.etcd.io/etcd/etcdutl/v3@$VERSION"
	local name pkg
	for name in etcd etcdctl etcdutl; do
		case $name in
		etcd) pkg=go.etcd.io/etcd/server/v3 ;;
		etcdctl) pkg=go.etcd.io/etcd/etcdctl/v3 ;;
		etcdutl) pkg=go.etcd.io/etcd/etcdutl/v3 ;;
		esac
		echo "ref: building $name $VERSION"
		(cd "$dir" && "$GO" build -trimpath -o "$OUT_DIR/$name.tmp" "$pkg") || die "build $name"
		mv -f "$OUT_DIR/$name.tmp" "$OUT_DIR/$name"
	done
	bin_has_version "$OUT_DIR/etcd" --version || die "$OUT_DIR/etcd --version does not report $VERSION"
	bin_has_version "$OUT_DIR/etcdctl" version || die "$OUT_DIR/etcdctl version does not report $VERSION"
	bin_has_version "$OUT_DIR/etcdutl" version || die "$OUT_DIR/etcdutl version does not report $VERSION"
}

build_benchmark() {
	local dir=$HERE/benchmark stamp=$OUT_DIR/.benchmark.version
	if [[ -x "$OUT_DIR/benchmark" && -f "$stamp" && "$(cat "$stamp")" == "$BENCHMARK_VERSION" ]]; then
		echo "ref: benchmark ${BENCHMARK_VERSION} up to date in $OUT_DIR"
		return
	fi
	ensure_module "$dir" go.etcd.io/etcd/v3/tools/benchmark "go.etcd.io/etcd/v3@$BENCHMARK_VERSION"
	echo "ref: building benchmark $BENCHMARK_VERSION"
	(cd "$dir" && "$GO" build -trimpath -o "$OUT_DIR/benchmark.tmp" go.etcd.io/etcd/v3/tools/benchmark) ||
		die "build benchmark"
	mv -f "$OUT_DIR/benchmark.tmp" "$OUT_DIR/benchmark"
	"$OUT_DIR/benchmark" --help >/dev/null 2>&1 || die "$OUT_DIR/benchmark --help fails"
	echo "$BENCHMARK_VERSION" >"$stamp"
}

build_etcd
build_benchmark
