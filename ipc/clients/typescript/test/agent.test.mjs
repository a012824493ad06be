// Tests against a real agent, the e2e authorization server (oidc-provider)
// and the go-sdk resource server (e2e/mcpserver), which e2e/clients_test.go
// starts, signs in to, and describes in the environment:
//
//   MCPKEY_SOCK             the agent's socket
//   MCPKEY_TEST_SERVER      the MCP server's URL (a session for it is signed in)
//   MCPKEY_TEST_AS          the authorization server's issuer (its /_test/stats)
//   MCPKEY_TEST_AGENT_HOME  the agent's HOME (its per-user lock is named after it)
//   MCPKEY_TEST_DPOP_SERVER an MCP server of a DPoP-bound session (when the agent speaks DPoP);
//                           it hands out a new nonce on every response it accepts
//
// Without them the tests skip, or fail under MCPKEY_E2E_REQUIRE=1 (CI).
// The tests share one agent, so they run in order, in one file.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client, getToken, McpkeyError, mcpkeyFetch, sessions, watch } from '../dist/index.js';

const server = process.env.MCPKEY_TEST_SERVER;
const issuer = process.env.MCPKEY_TEST_AS;
const required = process.env.MCPKEY_E2E_REQUIRE === '1';
if (!server && required) throw new Error('MCPKEY_TEST_SERVER is not set (MCPKEY_E2E_REQUIRE=1): run through e2e/clients_test.go');
const skip = server ? false : 'no agent fixture: run through e2e/clients_test.go (./e2e/test.sh -run TestTypeScriptClient)';
const opts = { skip, timeout: 120_000 };

async function stats(url) {
  const r = await fetch(url);
  assert.equal(r.status, 200);
  return r.json();
}
const asStats = () => stats(`${issuer}/_test/stats`);
/** The agent's sessions for the test server (the agent may hold others, e.g. the DPoP server's). */
const mine = async () => (await sessions()).filter((s) => s.server === server);
const rsStats = () => stats(new URL('/_test/stats', server).href);

/** An MCP SDK client connected through mcpkeyFetch. */
async function connect(fetchOptions = {}) {
  const mcp = new McpClient({ name: 'mcpkey-ts-test', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(server), { fetch: mcpkeyFetch(server, fetchOptions) }));
  return mcp;
}

/** A base fetch that spoils the token of the requests tamper(n) picks: a fault at the network edge, so the real server answers 401. */
function tampering(tamper) {
  let n = 0;
  const sent = [];
  const f = (url, init) => {
    const headers = new Headers(init.headers);
    const auth = headers.get('authorization');
    sent.push(auth);
    if (tamper(++n) && auth) headers.set('authorization', `${auth}x`);
    return fetch(url, { ...init, headers });
  };
  return { fetch: f, sent };
}

const whoami = async (mcp) => (await mcp.callTool({ name: 'whoami', arguments: {} })).structuredContent;

test('getToken and sessions: the signed-in session, a token the server accepts', opts, async () => {
  const hello = await new Client().hello();
  assert.equal(hello.protocol_version, 1);
  assert.ok(hello.capabilities.includes('token.get'));

  const tok = await getToken(server, { scopes: ['mcp:tools'], minTtlSeconds: 30 });
  assert.equal(tok.server, server);
  assert.match(tok.token_type, /^bearer$/i);
  assert.ok(tok.access_token.split('.').length === 3, 'a JWT');
  assert.ok(Date.parse(tok.expires_at) > Date.now() + 30_000);
  assert.ok(!('refresh_token' in tok));

  const ss = await mine();
  assert.equal(ss.length, 1);
  assert.equal(ss[0].server, server);
  assert.equal(ss[0].state, 'ready');
  assert.equal(ss[0].issuer, issuer);
  assert.ok(!JSON.stringify(ss).includes(tok.access_token));

  await assert.rejects(getToken('http://127.0.0.1:1/nothing'), (e) => e instanceof McpkeyError && ['not_found', 'needs_login'].includes(e.code));
  await assert.rejects(getToken(server, { scopes: ['mcp:tools', 'admin:all'] }),
    (e) => e.code === 'needs_login' && e.data.scopes.includes('admin:all'));
});

test('a program that asked for a token exits: an idle connection keeps nothing alive', opts, async () => {
  const { execFile } = await import('node:child_process');
  const script = `import('${new URL('../dist/index.js', import.meta.url)}').then(async (m) => { const t = await m.getToken(process.env.MCPKEY_TEST_SERVER); await m.sessions(); console.log(t.server); })`;
  const out = await new Promise((res, rej) => {
    execFile(process.execPath, ['-e', script], { timeout: 15_000 }, (err, stdout) => (err ? rej(err) : res(stdout)));
  });
  assert.equal(out.trim(), server);
});

test('an agent that listens elsewhere is found through its lock, as when a host strips the environment', opts, async () => {
  const empty = mkdtempSync(join(tmpdir(), 'mk-ts-'));
  try {
    const vars = { HOME: process.env.MCPKEY_TEST_AGENT_HOME, XDG_RUNTIME_DIR: empty };
    const c = new Client({ getenv: (k) => vars[k] });
    const tok = await c.getToken(server);
    assert.equal(tok.server, server);
    c.close();
    // With another HOME there is no lock record for it: no agent.
    const other = new Client({ getenv: (k) => ({ ...vars, HOME: empty })[k] });
    await assert.rejects(other.getToken(server), (e) => e.code === 'no_agent');
  } finally {
    rmSync(empty, { recursive: true });
  }
});

test('the MCP SDK through mcpkeyFetch: every request carries the agent token, nothing of OAuth reaches the SDK', opts, async () => {
  const before = await asStats();
  const base = tampering(() => false);
  const mcp = await connect({ fetch: base.fetch });
  const me = await whoami(mcp);
  assert.deepEqual(me.aud, [server]);
  assert.equal(me.sub, 'alice');
  await mcp.close();
  assert.ok(base.sent.length >= 3);
  assert.ok(base.sent.every((a) => /^Bearer ey/.test(a)), 'every request has the Bearer token');
  const after = await asStats();
  assert.equal(after.refresh_grants, before.refresh_grants, 'no refresh: the agent cached the token');
  assert.equal(after.code_grants, before.code_grants);
});

test('a 401 asks the agent once: the agent refreshes and the request goes through', opts, async () => {
  const asBefore = await asStats();
  const rsBefore = await rsStats();
  const base = tampering((n) => n === 1);
  // A transport whose first request the server rejects.
  const mcp2 = new McpClient({ name: 'mcpkey-ts-test', version: '1.0.0' });
  await mcp2.connect(new StreamableHTTPClientTransport(new URL(server), { fetch: mcpkeyFetch(server, { fetch: base.fetch }) }));
  assert.equal((await whoami(mcp2)).sub, 'alice');
  const asAfter = await asStats();
  const rsAfter = await rsStats();
  assert.equal(rsAfter.refused - rsBefore.refused, 1, 'one 401');
  assert.equal(asAfter.refresh_grants - asBefore.refresh_grants, 1, 'the agent refreshed once');
  assert.equal(asAfter.code_grants, asBefore.code_grants, 'no sign-in');
  assert.notEqual(base.sent[1], base.sent[0], 'the retry carries the new token');
  await mcp2.close();
});

test('watch: events arrive as the agent refreshes', opts, async () => {
  const ac = new AbortController();
  const events = watch({ signal: ac.signal });
  const first = events.next(); // subscribes
  await new Promise((r) => setImmediate(r));
  // Poll until the subscription is live: a forced refresh makes an event.
  let ev;
  const deadline = Date.now() + 20_000;
  while (!ev && Date.now() < deadline) {
    await getToken(server, { minTtlSeconds: 86400 });
    ev = await Promise.race([first, new Promise((r) => setTimeout(() => r(undefined), 200))]);
  }
  assert.ok(ev, 'an event within 20 s');
  assert.equal(ev.value.server, server);
  assert.match(ev.value.kind, /^session\./);
  ac.abort();
  for await (const _ of events) {
    // what arrived before the abort; the loop must end
  }
});

test('login: progress carries the URL to show, and an abort cancels the login in the agent', opts, async () => {
  const c = new Client();
  const ac = new AbortController();
  let shown;
  const login = c.login(server, { account: 'second', noBrowser: true, signal: ac.signal, onProgress: (ev) => {
    if (ev.url && !shown) { // with noBrowser the caller shows it
      shown = ev.url;
      ac.abort();
    }
  } });
  await assert.rejects(login, (e) => e.name === 'AbortError');
  assert.equal(new URL(shown).origin, issuer);
  const deadline = Date.now() + 10_000;
  let status;
  do {
    status = await c.call('agent.status');
  } while (status.pending_logins !== 0 && Date.now() < deadline && (await new Promise((r) => setTimeout(r, 50)), true));
  assert.equal(status.pending_logins, 0, 'the agent dropped the cancelled login');
  assert.deepEqual((await mine()).map((s) => s.account), ['']);
});

test('needs_login: concurrent callers share one sign-in through the agent', opts, async () => {
  await new Client().call('session.logout', { server, keep_remote: true });
  assert.equal((await mine()).length, 0);
  const before = await asStats();
  // Five callers, each with its own connection to the agent, as five processes would have.
  const results = await Promise.all(Array.from({ length: 5 }, async () => {
    const mcp = await connect({ client: new Client() });
    const me = await whoami(mcp);
    await mcp.close();
    return me;
  }));
  assert.ok(results.every((me) => me.sub === 'alice'));
  const after = await asStats();
  assert.equal(after.code_grants - before.code_grants, 1, 'one sign-in for five callers');
  assert.equal((await mine()).length, 1);
});

test('a server that rejects every token ends in token_rejected after one extra sign-in, never a loop', opts, async () => {
  const before = await asStats();
  const base = tampering(() => true);
  const f = mcpkeyFetch(server, { fetch: base.fetch, client: new Client() });
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  await assert.rejects(f(server, { method: 'POST', body, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }),
    (e) => e instanceof McpkeyError && e.code === 'token_rejected');
  const after = await asStats();
  assert.equal(after.refresh_grants - before.refresh_grants, 1, 'one refresh');
  assert.equal(after.code_grants - before.code_grants, 1, 'one extra sign-in');
  assert.equal(base.sent.length, 3, 'three attempts');
  // A user's sign-in resets it (the next tests, and users, go on).
  await new Client().login(server);
});

test('DPoP: a proof per request when the agent speaks DPoP', opts, async (t) => {
  const hello = await new Client().hello();
  if (!hello.capabilities.includes('dpop')) {
    t.skip('the agent does not announce "dpop" in agent.hello');
    return;
  }
  const dpopServer = process.env.MCPKEY_TEST_DPOP_SERVER;
  assert.ok(dpopServer, 'the agent speaks DPoP: e2e/clients_test.go must sign in to a DPoP server and set MCPKEY_TEST_DPOP_SERVER');
  const base = tampering(() => false);
  const seen = [];
  const record = (url, init) => {
    const h = new Headers(init.headers);
    seen.push({ method: init.method ?? 'GET', url: String(url), auth: h.get('authorization'), proof: h.get('dpop') });
    return base.fetch(url, init);
  };
  const dpopStats = () => stats(new URL('/_test/stats', dpopServer).href);
  const before = await dpopStats();
  const mcp = new McpClient({ name: 'mcpkey-ts-test', version: '1.0.0' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(dpopServer), { fetch: mcpkeyFetch(dpopServer, { fetch: record }) }));
  await mcp.listTools();
  for (let i = 0; i < 3; i++) await mcp.callTool({ name: 'echo', arguments: { text: `bound ${i}` } });
  await mcp.close();
  const after = await dpopStats();
  // One nonce challenge (the agent knew no nonce of this server), answered
  // with one retry; the nonces the server rotates to on each response reach
  // the next proof, so no request after it needs another (RFC 9449 §9).
  assert.equal(after.nonce_challenges - before.nonce_challenges, 1, 'nonce challenges');
  assert.equal(after.proofs_refused - before.proofs_refused, 0, 'proofs refused');
  assert.ok(seen.length >= 6);
  const jtis = new Set();
  for (const s of seen) {
    assert.match(s.auth, /^DPoP /);
    const [, payload] = s.proof.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const u = new URL(s.url);
    assert.equal(claims.htm, s.method);
    assert.equal(claims.htu, `${u.protocol}//${u.host}${u.pathname}`);
    assert.equal(claims.ath, createHash('sha256').update(s.auth.slice(5)).digest('base64url'));
    assert.ok(!jtis.has(claims.jti), 'a fresh proof per request');
    jtis.add(claims.jti);
  }
});
