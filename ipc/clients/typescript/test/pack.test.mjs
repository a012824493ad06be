// npm pack: the package holds the built JavaScript, its types and the
// README, and depends at run time on nothing but the MCP SDK, as a peer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

test('npm pack: dist, types and README; the SDK as the only (peer) dependency', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' });
  const [pack] = JSON.parse(out);
  assert.equal(pack.name, 'mcpkey');
  const files = pack.files.map((f) => f.path).sort();
  for (const want of ['README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/client.js', 'dist/fetch.js', 'dist/path.js']) {
    assert.ok(files.includes(want), `the package lacks ${want}: ${files.join(' ')}`);
  }
  assert.deepEqual(files.filter((f) => !/^(dist\/[a-z]+\.(js|d\.ts)|README\.md|package\.json)$/.test(f)), []);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.dependencies, undefined);
  assert.deepEqual(Object.keys(pkg.peerDependencies), ['@modelcontextprotocol/sdk']);
});
