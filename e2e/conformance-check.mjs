// Judges one suite's results from `conformance client --suite S -o DIR`:
// every scored scenario must have run and have no FAILURE and no WARNING.
// Scored: every scenario of the auth, backcompat and extensions suites and of
// the grants group (conformance.sh), and the auth/* scenarios of the draft suite (its other scenarios test general MCP client
// features that mcpkey probe does not implement; they are listed, not scored).
//
// Usage: node conformance-check.mjs <suite> <output-dir>
import fs from 'node:fs';
import path from 'node:path';

// How many scored scenarios each suite has in @modelcontextprotocol/conformance
// 0.2.0-alpha.12; fewer results means a scenario did not run.
const expected = { auth: 14, backcompat: 2, draft: 11, extensions: 6, grants: 4 };

const [suite, dir] = process.argv.slice(2);
if (!suite || !dir) {
  console.error('usage: node conformance-check.mjs <suite> <output-dir>');
  process.exit(2);
}
const scored = (name) => suite !== 'draft' || name.startsWith('auth/');

// The scenarios only add a FAILURE for the steps they are about, so a client
// that logs in and then never calls the server can look clean. Every scenario
// but these must therefore also show the MCP server accepting a token
// (valid-bearer-token): in these the right behaviour is to refuse to
// authorize, or the server never accepts any token.
const noTokenExpected = new Set([
  'auth/resource-mismatch',
  'auth/iss-supported-missing',
  'auth/iss-wrong-issuer',
  'auth/iss-unexpected',
  'auth/iss-normalized',
  'auth/metadata-issuer-mismatch',
  'auth/scope-retry-limit',
]);

// The DPoP scenarios' server checks tokens itself and reports no
// valid-bearer-token: there the proof that it accepted a key-bound token is
// the check that needs an authenticated request with a valid proof.
const tokenAccepted = {
  'auth/dpop': 'sep-1932-client-fresh-proof',
  'auth/dpop-nonce': 'sep-1932-client-rs-nonce',
};

const results = [];
for (const rel of fs.readdirSync(dir, { recursive: true })) {
  if (path.basename(rel) !== 'checks.json') continue;
  // <scenario>-<ISO timestamp>/checks.json; the scenario may contain a slash.
  const name = path.dirname(rel).split(path.sep).join('/').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
  const checks = JSON.parse(fs.readFileSync(path.join(dir, rel), 'utf8'));
  results.push({ name, checks });
}
results.sort((a, b) => a.name.localeCompare(b.name));

let failed = 0;
let count = 0;
for (const { name, checks } of results) {
  const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
  const accepted = tokenAccepted[name] ?? 'valid-bearer-token';
  if (!noTokenExpected.has(name) && !checks.some((c) => c.id === accepted && c.status === 'SUCCESS')) {
    bad.push({ status: 'FAILURE', id: accepted, description: 'the client never called the MCP server with a valid token (conformance-check.mjs rule)' });
  }
  const ok = checks.filter((c) => c.status === 'SUCCESS').length;
  if (!scored(name)) {
    console.log(`  - ${name}: not scored (${ok} passed, ${bad.length} failed)`);
    continue;
  }
  count++;
  if (bad.length === 0) {
    console.log(`  ✓ ${name}: ${ok} passed`);
    continue;
  }
  failed++;
  console.log(`  ✗ ${name}: ${ok} passed, ${bad.length} failed`);
  for (const c of bad) console.log(`      ${c.status} ${c.id}: ${c.description}${c.errorMessage ? ` (${c.errorMessage})` : ''}`);
}
if (expected[suite] !== undefined && count !== expected[suite]) {
  console.log(`  ✗ ${suite}: ${count} scored scenarios ran, expected ${expected[suite]}`);
  failed++;
}
console.log(failed === 0 ? `${suite}: all ${count} scored scenarios passed` : `${suite}: ${failed} problem(s)`);
process.exit(failed === 0 ? 0 : 1);
