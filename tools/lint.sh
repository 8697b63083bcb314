#!/usr/bin/env bash
# lint.sh TOOLS_DIR MODULE...
#
# Runs, for every MODULE folder (relative to the repo root):
#   gofmt -l          any file listed is a failure
#   go vet ./...      (with -tags e2e so the e2e harness is vetted too)
#   staticcheck ./... (honnef.co/go/tools, installed into TOOLS_DIR if missing)
# and, for node/'s non-test .go files, a banned-pattern check: the node is a
# deterministic state machine, so it must not start goroutines or read the wall
# clock or a global random source.
#
# Every check runs even after one fails; all failures are listed at the end and
# the exit status is non-zero. A module without Go packages is skipped.
set -uo pipefail

STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
LINT_TAGS=${LINT_TAGS:-e2e}
GO=${GO:-go}

if [[ $# -lt 2 ]]; then
	echo "usage: $0 TOOLS_DIR MODULE..." >&2
	exit 2
fi
TOOLS_DIR=$1
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$TOOLS_DIR" && TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd) || exit 2

failures=()
fail() {
	failures+=("$1")
	echo "lint: FAIL: $1" >&2
}

# Banned in node/ (non-test files). Each entry is "extended regexp ## why".
# Comments are stripped before matching, so prose may mention these names.
BANNED=(
	'^[[:space:]]*go[[:space:]]+[[:alnum:]_(] ## go statement: the node has no goroutines of its own'
	'(^|[^[:alnum:]_])time\.Now([^[:alnum:]_]|$) ## time.Now: use the clock the driver supplies'
	'(^|[^[:alnum:]_])time\.Since([^[:alnum:]_]|$) ## time.Since: use the clock the driver supplies'
	'"math/rand(/v2)?" ## math/rand: use the seeded random source the driver supplies'
	'"crypto/rand" ## crypto/rand: use the seeded random source the driver supplies'
)

ensure_staticcheck() {
	local bin=$TOOLS_DIR/staticcheck
	if [[ -x "$bin" ]] && "$bin" -version 2>/dev/null | grep -qF "${STATICCHECK_VERSION#v}"; then
		return 0
	fi
	echo "lint: installing staticcheck $STATICCHECK_VERSION into $TOOLS_DIR"
	GOWORK=off GOBIN=$TOOLS_DIR "$GO" install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
}

check_gofmt() {
	local dir=$1 out
	out=$(find "$dir" -name '*.go' -not -path '*/testdata/*' -not -path '*/vendor/*' -print0 |
		xargs -0 -r gofmt -l 2>&1)
	if [[ -n "$out" ]]; then
		echo "$out" | sed 's/^/  not gofmt-ed: /' >&2
		fail "gofmt $dir"
	fi
}

check_banned() {
	local dir=$1 file entry re why hits
	while IFS= read -r -d '' file; do
		for entry in "${BANNED[@]}"; do
			re=${entry%% ## *}
			why=${entry#* ## }
			# Strip // comments (roughly: good enough for a grep lint) then match.
			hits=$(sed -e 's#//.*$##' "$file" | grep -nE -- "$re")
			if [[ -n "$hits" ]]; then
				echo "$hits" | sed "s#^#  $file:#" >&2
				fail "banned in $dir: $why ($file)"
			fi
		done
	done < <(find "$dir" -name '*.go' -not -name '*_test.go' -not -path '*/testdata/*' -print0)
}

lint_module() {
	local mod=$1 pkgs
	if [[ ! -f "$mod/go.mod" ]]; then
		fail "$mod: no go.mod"
		return
	fi
	echo "== lint $mod"
	check_gofmt "$mod"
	if [[ "$mod" == node || "$mod" == node/ ]]; then
		check_banned "$mod"
	fi
	pkgs=$(cd "$mod" && "$GO" list -tags "$LINT_TAGS" ./... 2>/dev/null)
	if [[ -z "$pkgs" ]] && ! (cd "$mod" && "$GO" list -tags "$LINT_TAGS" ./... >/dev/null 2>&1); then
		# go list failed: let vet report the real error.
		pkgs=unknown
	fi
	if [[ -z "$pkgs" ]]; then
		echo "   (no Go packages in $mod yet; skipped vet and staticcheck)"
		return
	fi
	(cd "$mod" && "$GO" vet -tags "$LINT_TAGS" ./...) || fail "go vet $mod"
	if [[ -n "$STATICCHECK" ]]; then
		(cd "$mod" && "$STATICCHECK" -tags "$LINT_TAGS" ./...) || fail "staticcheck $mod"
	fi
}

STATICCHECK=
if ensure_staticcheck; then
	STATICCHECK=$TOOLS_DIR/staticcheck
else
	fail "install staticcheck $STATICCHECK_VERSION"
fi

for mod in "$@"; do
	lint_module "${mod%/}"
done
check_gofmt tools

if [[ ${#failures[@]} -gt 0 ]]; then
	echo "lint: ${#failures[@]} check(s) failed:" >&2
	printf '  - %s\n' "${failures[@]}" >&2
	exit 1
fi
echo "lint: ok"
