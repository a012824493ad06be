// Tests that need no agent: socket path rules, the header logic, and the
// fetch wrapper's DPoP flow against a fake agent (the agent's side of DPoP
// is not in this tree yet; the fake speaks ipc/doc.go's token.get with the
// DPoP params of the agreed contract) and a real node:http resource server.

import assert from 'node:assert/strict';
import { chownSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  authHeaders, checkOrigin, Client, defaultSocketPath, dpopNonceChallenge, dpopUrl, McpkeyError, mcpkeyFetch,
} from '../dist/index.js';

const env = (vars) => (k) => vars[k];
const uid = process.getuid();

test('defaultSocketPath: MCPKEY_SOCK wins, then XDG_RUNTIME_DIR, then /run/user/UID or TMPDIR', () => {
  assert.equal(defaultSocketPath(env({ MCPKEY_SOCK: '/x/a.sock', XDG_RUNTIME_DIR: '/r' })), '/x/a.sock');
  assert.equal(defaultSocketPath(env({ XDG_RUNTIME_DIR: '/run/user/1234' })), '/run/user/1234/mcpkey/agent.sock');
  // Without XDG_RUNTIME_DIR (what MCP hosts pass): /run/user/UID when it
  // is a private directory of ours, else TMPDIR.
  let runOurs = false;
  try {
    const st = lstatSync(`/run/user/${uid}`);
    runOurs = st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0;
  } catch {}
  const want = runOurs ? `/run/user/${uid}/mcpkey/agent.sock` : `/var/tmp/x/mcpkey-${uid}/agent.sock`;
  assert.equal(defaultSocketPath(env({ TMPDIR: '/var/tmp/x' })), want);
  if (!runOurs) assert.equal(defaultSocketPath(env({})), `/tmp/mcpkey-${uid}/agent.sock`);
});

test('authHeaders: Bearer, DPoP with its proof, and a DPoP token without a proof refused', () => {
  assert.deepEqual(authHeaders({ access_token: 'at', token_type: 'Bearer', server: 'https://m/mcp' }), { authorization: 'Bearer at' });
  assert.deepEqual(authHeaders({ access_token: 'at', token_type: 'bearer', server: 'https://m/mcp' }), { authorization: 'Bearer at' });
  assert.deepEqual(authHeaders({ access_token: 'at', token_type: 'DPoP', dpop_proof: 'p.r.f', server: 'https://m/mcp' }),
    { authorization: 'DPoP at', dpop: 'p.r.f' });
  assert.throws(() => authHeaders({ access_token: 'at', token_type: 'DPoP', server: 'https://m/mcp' }),
    (e) => e instanceof McpkeyError && e.code === 'internal' && !e.message.includes('at '));
});

test('dpopNonceChallenge: only a DPoP use_dpop_nonce 401 with a DPoP-Nonce', () => {
  const r = (h) => new Response(null, { status: 401, headers: h });
  assert.equal(dpopNonceChallenge(r({ 'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="x"', 'dpop-nonce': 'n1' })), 'n1');
  assert.equal(dpopNonceChallenge(r({ 'www-authenticate': 'Bearer realm="x", DPoP error="use_dpop_nonce"', 'dpop-nonce': 'n2' })), 'n2');
  assert.equal(dpopNonceChallenge(r({ 'www-authenticate': 'DPoP error="use_dpop_nonce"' })), undefined);
  assert.equal(dpopNonceChallenge(r({ 'www-authenticate': 'DPoP error="invalid_token"', 'dpop-nonce': 'n' })), undefined);
  assert.equal(dpopNonceChallenge(r({ 'www-authenticate': 'Bearer error="use_dpop_nonce"', 'dpop-nonce': 'n' })), undefined);
});

test('dpopUrl drops query and fragment; checkOrigin compares scheme, host and port', () => {
  assert.equal(dpopUrl(new URL('https://m.example:8443/mcp?session=1#f')), 'https://m.example:8443/mcp');
  checkOrigin('https://m.example/mcp', new URL('https://M.example:443/other'));
  for (const bad of ['http://m.example/mcp', 'https://m.example:444/mcp', 'https://evil.example/mcp']) {
    assert.throws(() => checkOrigin('https://m.example/mcp', new URL(bad)), (e) => e.code === 'other_origin');
  }
  assert.throws(() => checkOrigin('my-server', new URL('https://m.example/mcp')), (e) => e.code === 'other_origin');
});

test('no agent: code no_agent, with the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mk-ts-'));
  try {
    const c = new Client({ path: join(dir, 'none.sock') });
    await assert.rejects(c.getToken('https://m.example/mcp'), (e) => e instanceof McpkeyError && e.code === 'no_agent' && e.message.includes('none.sock'));
  } finally {
    rmSync(dir, { recursive: true });
  }
});

/** A fake agent: answers each request with reply(msg), recording the requests. */
async function fakeAgent(t, reply) {
  const dir = mkdtempSync(join(tmpdir(), 'mk-ts-'));
  const path = join(dir, 'agent.sock');
  const seen = [];
  const conns = new Set();
  const srv = net.createServer((c) => {
    conns.add(c);
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0;) {
        const msg = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        seen.push(msg);
        if (msg.id !== undefined) c.write(JSON.stringify({ jsonrpc: '2.0', id: msg.id, ...reply(msg) }) + '\n');
      }
    });
  });
  await new Promise((r) => srv.listen(path, r));
  t.after(() => {
    for (const c of conns) c.destroy(); // the client's end never keeps a process alive; this one would
    srv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, seen };
}

/** A resource server on loopback: handler(req) → [status, headers]. */
async function resourceServer(t, handler) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const [status, headers] = handler(req, seen.length);
      res.writeHead(status, headers).end(status === 200 ? '{"ok":true}' : '');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => { srv.closeAllConnections(); srv.close(); });
  return { url: `http://127.0.0.1:${srv.address().port}/mcp`, seen };
}

test('mcpkeyFetch with a DPoP session: a proof per request, one retry with the nonce a 401 asks for', async (t) => {
  let n = 0;
  const rs = await resourceServer(t, (req, count) => {
    if (count === 1) return [401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'nonce-1' }];
    return [200, { 'content-type': 'application/json' }];
  });
  const agent = await fakeAgent(t, (msg) => {
    if (msg.method !== 'token.get') return { error: { code: -32601, message: 'method not found' } };
    n++;
    return { result: { access_token: 'at-dpop', token_type: 'DPoP', dpop_proof: `proof-${n}`, server: rs.url, account: '', scopes: [], expires_at: '0001-01-01T00:00:00Z' } };
  });
  const f = mcpkeyFetch(rs.url, { client: new Client({ path: agent.path }) });
  const resp = await f(`${rs.url}?q=1`, { method: 'POST', body: '{"jsonrpc":"2.0"}' });
  assert.equal(resp.status, 200);
  const gets = agent.seen.filter((m) => m.method === 'token.get').map((m) => m.params);
  assert.equal(gets.length, 2);
  assert.deepEqual(gets[0], { server: rs.url, dpop_method: 'POST', dpop_url: rs.url });
  assert.deepEqual(gets[1], { server: rs.url, dpop_method: 'POST', dpop_url: rs.url, dpop_nonce: 'nonce-1' });
  assert.equal(rs.seen.length, 2);
  assert.deepEqual(rs.seen.map((r) => [r.headers.authorization, r.headers.dpop, r.body]),
    [['DPoP at-dpop', 'proof-1', '{"jsonrpc":"2.0"}'], ['DPoP at-dpop', 'proof-2', '{"jsonrpc":"2.0"}']]);

  // A second nonce challenge is not retried again: the 401 is returned.
  const rs2 = await resourceServer(t, () => [401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'again' }]);
  const agent2 = await fakeAgent(t, (msg) => ({ result: { access_token: 'x', token_type: 'DPoP', dpop_proof: 'p', server: rs2.url } }));
  const f2 = mcpkeyFetch(rs2.url, { client: new Client({ path: agent2.path }) });
  const r2 = await f2(rs2.url);
  assert.equal(r2.status, 401);
  // nonce retry, then one rejected_token report (the agent answers the same token: done)
  assert.equal(rs2.seen.length, 3);
  assert.equal(agent2.seen.filter((m) => m.params?.rejected_token === 'x').length, 1);
});

test('mcpkeyFetch with a DPoP session: a DPoP-Nonce on a 200 goes with the next token request (RFC 9449 §9)', async (t) => {
  const rs = await resourceServer(t, (req, count) => [200, count < 3 ? { 'dpop-nonce': `n${count}` } : {}]);
  const agent = await fakeAgent(t, () => ({ result: { access_token: 'at', token_type: 'DPoP', dpop_proof: 'p', server: rs.url, account: '', scopes: [], expires_at: '0001-01-01T00:00:00Z' } }));
  const f = mcpkeyFetch(rs.url, { client: new Client({ path: agent.path }) });
  for (let i = 0; i < 4; i++) assert.equal((await f(rs.url)).status, 200);
  assert.deepEqual(agent.seen.filter((m) => m.method === 'token.get').map((m) => m.params.dpop_nonce), [undefined, 'n1', 'n2', undefined]);
});

test('mcpkeyFetch with a Bearer session: no DPoP header, a 401 reports the token once', async (t) => {
  const rs = await resourceServer(t, (req) => (req.headers.authorization === 'Bearer new' ? [200, {}] : [401, { 'www-authenticate': 'Bearer error="invalid_token"' }]));
  const agent = await fakeAgent(t, (msg) => ({
    result: { access_token: msg.params.rejected_token ? 'new' : 'old', token_type: 'Bearer', server: rs.url },
  }));
  const resp = await mcpkeyFetch(rs.url, { client: new Client({ path: agent.path }) })(rs.url, { method: 'GET' });
  assert.equal(resp.status, 200);
  assert.deepEqual(rs.seen.map((r) => [r.headers.authorization, r.headers.dpop]), [['Bearer old', undefined], ['Bearer new', undefined]]);
  assert.deepEqual(agent.seen.map((m) => m.params.rejected_token), [undefined, 'old']);
});

test('mcpkeyFetch refuses another origin before asking the agent', async (t) => {
  const agent = await fakeAgent(t, () => ({ result: {} }));
  const f = mcpkeyFetch('https://m.example/mcp', { client: new Client({ path: agent.path }) });
  await assert.rejects(f('https://evil.example/mcp'), (e) => e.code === 'other_origin');
  assert.equal(agent.seen.length, 0);
});

test('agent errors keep their code and data', async (t) => {
  const agent = await fakeAgent(t, () => ({
    error: { code: -32002, message: 'login needed for https://m.example/mcp', data: { code: 'needs_login', scopes: ['a'] } },
  }));
  const f = mcpkeyFetch('https://m.example/mcp', { client: new Client({ path: agent.path }), login: false });
  await assert.rejects(f('https://m.example/mcp'), (e) => e instanceof McpkeyError && e.code === 'needs_login' && e.data.scopes[0] === 'a');
});

test('a socket another user owns is refused before anything is sent (foreign_socket)', { skip: process.getuid() !== 0 && 'needs root to chown the socket' }, async (t) => {
  const agent = await fakeAgent(t, () => ({ result: { protocol_version: 1 } }));
  await new Client({ path: agent.path }).hello(); // ours: fine
  chownSync(agent.path, 65534, 65534);
  await assert.rejects(new Client({ path: agent.path }).hello(), (e) => e.code === 'foreign_socket' && e.message.includes('65534'));
  assert.equal(agent.seen.length, 1);
});

test('403 insufficient_scope: one step-up sign-in for the union of the scopes, then the request goes on', async (t) => {
  const challenge = { 'www-authenticate': 'Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", resource_metadata="x"' };
  const rs = await resourceServer(t, (req) => (req.headers.authorization === 'Bearer wide' ? [200, {}] : [403, challenge]));
  let signedIn = false;
  const agent = await fakeAgent(t, (msg) => {
    if (msg.method === 'session.login') {
      signedIn = true;
      return { result: { server: rs.url } };
    }
    return { result: { access_token: signedIn ? 'wide' : 'narrow', token_type: 'Bearer', server: rs.url,
      scopes: signedIn ? ['mcp:tools', 'mcp:admin'] : ['mcp:tools', 'openid'] } };
  });
  const f = mcpkeyFetch(rs.url, { client: new Client({ path: agent.path }), scopes: ['mcp:tools'] });
  assert.equal((await f(rs.url)).status, 200);
  const logins = agent.seen.filter((m) => m.method === 'session.login').map((m) => m.params.scopes);
  assert.deepEqual(logins, [['mcp:tools', 'openid', 'mcp:admin']]);
  // Later requests ask for the wider scopes; a server that still says 403 with
  // scopes the token holds is answered as it is, with no sign-in.
  assert.deepEqual(agent.seen.at(-1).params.scopes, ['mcp:tools', 'openid', 'mcp:admin']);
  const rs2 = await resourceServer(t, () => [403, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="mcp:tools"' }]);
  const agent2 = await fakeAgent(t, (msg) => ({ result: { access_token: 'a', token_type: 'Bearer', server: rs2.url, scopes: ['mcp:tools'] } }));
  assert.equal((await mcpkeyFetch(rs2.url, { client: new Client({ path: agent2.path }) })(rs2.url)).status, 403);
  assert.equal(agent2.seen.filter((m) => m.method === 'session.login').length, 0);
});
