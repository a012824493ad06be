#!/bin/sh
# Builds Ory Hydra (a production OAuth 2.1/OIDC server, used by the e2e suite)
# from its Go module and caches the binary, keyed by version, outside the repo.
# Prints the binary's path on stdout. Safe to run concurrently.
#
# `go install github.com/ory/hydra/v2@VERSION` refuses (its go.mod has replace
# directives), so: download the module, copy it somewhere writable, drop the
# one replace that points inside Hydra's repository (the module zip leaves
# that nested module out; the proxy serves the release), and build with
# sqlite (DSN "memory" needs it: cgo and a C compiler).
# See ../shared/design/test-components.md §11.
#
# Env: MCPKEY_HYDRA_VERSION  (default v2.3.0)
#      MCPKEY_HYDRA_CACHE    (default: mcpkey-e2e next to the Go build cache)
set -eu
version=${MCPKEY_HYDRA_VERSION:-v2.3.0}
cache=${MCPKEY_HYDRA_CACHE:-$(dirname "$(go env GOCACHE)")/mcpkey-e2e}
out="$cache/hydra-$version"
if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache"
# One build per machine: later callers wait for the first.
exec 9>"$cache/hydra-$version.lock"
if command -v flock >/dev/null; then
	flock 9
fi
if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
command -v gcc >/dev/null || command -v cc >/dev/null || {
	echo "build.sh: no C compiler (Hydra's sqlite needs cgo): apt-get install gcc" >&2
	exit 1
}
src=$(go mod download -json "github.com/ory/hydra/v2@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
	echo "build.sh: go mod download github.com/ory/hydra/v2@$version gave no source dir" >&2
	exit 1
fi
work=$(mktemp -d "$cache/build-XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
cp -R "$src/." "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
go mod edit -dropreplace github.com/ory/hydra-client-go/v2
echo "build.sh: building Ory Hydra $version (once per machine, about 2-4 minutes)" >&2
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -tags sqlite -o "$work/hydra" .
mv "$work/hydra" "$out"
echo "$out"
