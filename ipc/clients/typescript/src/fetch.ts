// The transport hook: a fetch for the MCP SDK's HTTP transports that asks
// the agent for the token of every request.

import { Client, McpkeyError, type AgentEvent, type Token } from './client.js';

/** The shape of the MCP SDK's FetchLike (the transports' fetch option). */
export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

export interface McpkeyFetchOptions {
  /** The agent client; default: one shared by every mcpkeyFetch of this process. */
  client?: Client;
  /** Selects a session when the server has several. */
  account?: string;
  /** Scopes every token must carry. */
  scopes?: string[];
  /** Sends the requests; default: globalThis.fetch. */
  fetch?: FetchLike;
  /**
   * When the agent answers needs_login: true (the default) asks the agent
   * to sign in (one browser tab for every caller) and waits; false throws
   * the McpkeyError (code needs_login).
   */
  login?: boolean;
  /** Logins this fetch may start before it gives up (default 3), so a server that never accepts ends in an error. */
  maxLogins?: number;
  /**
   * Login progress. Default: when the agent could not open a browser
   * (show_url), the URL to open is written to stderr.
   */
  onLoginEvent?: (event: AgentEvent) => void;
}

let sharedClient: Client | undefined;

/** The Client of the module-level functions and of mcpkeyFetch without one. */
export function defaultClient(): Client {
  sharedClient ??= new Client();
  return sharedClient;
}

/** scheme://host:port, default port filled in (ipc.CheckOrigin's origin). */
function origin(u: URL): string {
  const port = u.port || (u.protocol === 'https:' ? '443' : u.protocol === 'http:' ? '80' : '');
  return `${u.protocol}//${u.hostname}:${port}`;
}

/** Refuses to send server's token to another origin (a redirect, a wrong URL). */
export function checkOrigin(server: string, target: URL): void {
  let s: URL | undefined;
  try {
    s = new URL(server);
  } catch {
    // not a URL: refused below
  }
  if (!s || (s.protocol !== 'http:' && s.protocol !== 'https:') || origin(s) !== origin(target)) {
    throw new McpkeyError('other_origin', `mcpkey: refusing to send the credentials for ${server} to ${target.protocol}//${target.host}`);
  }
}

/** The htu of a DPoP proof: the URL without query and fragment (RFC 9449 §4.2). */
export function dpopUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** The Authorization (and, for a DPoP token, DPoP) headers for tok. */
export function authHeaders(tok: Token): Record<string, string> {
  if (/^dpop$/i.test(tok.token_type)) {
    if (!tok.dpop_proof) throw new McpkeyError('internal', `mcpkey: the agent sent a DPoP token for ${tok.server} without a proof`);
    return { authorization: `DPoP ${tok.access_token}`, dpop: tok.dpop_proof };
  }
  return { authorization: `Bearer ${tok.access_token}` };
}

/**
 * A 401's DPoP nonce challenge: the DPoP-Nonce to retry with, when the
 * response says error="use_dpop_nonce" (RFC 9449 §9).
 */
export function dpopNonceChallenge(resp: Response): string | undefined {
  const nonce = resp.headers.get('dpop-nonce');
  const www = resp.headers.get('www-authenticate') ?? '';
  if (!nonce || !/(^|[\s,])dpop\s/i.test(www) || !/error\s*=\s*"?use_dpop_nonce"?/i.test(www)) return undefined;
  return nonce;
}

/**
 * The scopes a 403 asks for when it says error="insufficient_scope"
 * (RFC 6750 §3.1; MCP's step-up), or undefined for any other response.
 */
export function insufficientScope(resp: Response): string[] | undefined {
  const www = resp.headers.get('www-authenticate') ?? '';
  if (resp.status !== 403 || !/error\s*=\s*"?insufficient_scope"?/i.test(www)) return undefined;
  return (/(?:^|[\s,])scope\s*=\s*"([^"]*)"/i.exec(www)?.[1] ?? '').split(' ').filter(Boolean);
}

function union(...lists: (string[] | null | undefined)[]): string[] {
  return [...new Set(lists.flatMap((l) => l ?? []))];
}

/** Reads the body away so the connection can be reused. */
async function discard(resp: Response): Promise<void> {
  try {
    await resp.body?.cancel();
  } catch {
    // nothing to reuse
  }
}

function showURL(server: string): (ev: AgentEvent) => void {
  return (ev) => {
    if (ev.show_url && ev.url) process.stderr.write(`mcpkey: open this URL to sign in to ${server}: ${ev.url}\n`);
    if (ev.user_code) process.stderr.write(`mcpkey: and enter the code ${ev.user_code}\n`);
  };
}

/**
 * Returns a fetch for requests to the MCP server server (its URL, or a name
 * configured in the agent): pass it as the SDK transport's fetch option.
 *
 * For each request it asks the agent for a token (the agent caches,
 * refreshes and stores; this process never sees a refresh token) and sets
 * Authorization. For a DPoP-bound session the agent also signs a proof for
 * the request's method and URL, sent as the DPoP header; a 401 asking for
 * a DPoP nonce is retried once with it, and a DPoP-Nonce on any other
 * response goes to the agent with the next token request, so the next
 * proof carries it (RFC 9449 §9: servers may rotate nonces on any
 * response). Any other 401 reports the token to
 * the agent as rejected and retries with the one it answers (the agent
 * refreshes once however many callers report it, and escalates to one
 * sign-in, then token_rejected, so this never loops). When the agent
 * answers needs_login, the agent signs in (see options.login) and the
 * request goes on; a 403 insufficient_scope signs in again for the union
 * of the scopes asked so far and the challenge's (a step-up). A request to another origin than the server's is refused
 * before a token is asked for or attached (McpkeyError other_origin).
 */
export function mcpkeyFetch(server: string, options: McpkeyFetchOptions = {}): FetchLike {
  const client = options.client ?? defaultClient();
  const base: FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  const maxLogins = options.maxLogins ?? 3;
  const onLoginEvent = options.onLoginEvent ?? showURL(server);
  let logins = 0;
  let scopes = options.scopes; // grows by step-ups
  // A DPoP-Nonce of an ordinary response, until the next getToken reports
  // it: the agent is the one that remembers nonces (per origin, for every
  // caller), so it is forgotten here once told.
  let seenNonce: { origin: string; nonce: string } | undefined;
  const takeNonce = (u: URL): string | undefined => {
    const seen = seenNonce;
    seenNonce = undefined;
    return seen?.origin === origin(u) ? seen.nonce : undefined;
  };
  let serverIsURL = false;
  try {
    serverIsURL = ['http:', 'https:'].includes(new URL(server).protocol);
  } catch {
    // a configured name: checked against the token's server
  }

  return async (input: string | URL, init: RequestInit = {}): Promise<Response> => {
    let req: RequestInit = { ...init };
    let target: URL;
    if (typeof input === 'object' && 'method' in input && 'headers' in input) {
      // A Request: carry what it holds over to init (init wins).
      const r = input as unknown as Request;
      req = { method: r.method, headers: r.headers, signal: r.signal, redirect: r.redirect,
        body: r.body ? await r.arrayBuffer() : undefined, ...init };
      target = new URL(r.url);
    } else {
      target = new URL(String(input));
    }
    if (req.body && typeof (req.body as ReadableStream).getReader === 'function') {
      req.body = await new Response(req.body).arrayBuffer(); // a retry sends it again
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const signal = req.signal ?? undefined;
    if (serverIsURL) checkOrigin(server, target);

    let rejected: string | undefined;
    let nonce: string | undefined;
    let nonceTried = false;
    for (let reports = 0; ; ) {
      let tok: Token;
      try {
        tok = await client.getToken(server, { account: options.account, scopes, rejectedToken: rejected,
          dpopMethod: method, dpopUrl: dpopUrl(target), dpopNonce: nonce ?? takeNonce(target), signal });
      } catch (err) {
        if (err instanceof McpkeyError && err.code === 'needs_login' && options.login !== false && logins < maxLogins) {
          logins++;
          const want = Array.isArray(err.data?.scopes) ? (err.data.scopes as string[]) : scopes;
          await client.sharedLogin(server, { account: options.account, scopes: want, onProgress: onLoginEvent, signal });
          rejected = undefined;
          continue;
        }
        throw err;
      }
      checkOrigin(tok.server, target);
      const headers = new Headers(req.headers);
      for (const [k, v] of Object.entries(authHeaders(tok))) headers.set(k, v);
      const resp = await base(target.href, { ...req, headers });
      const fresh = /^dpop$/i.test(tok.token_type) ? resp.headers.get('dpop-nonce') : null;
      if (fresh && !dpopNonceChallenge(resp)) seenNonce = { origin: origin(target), nonce: fresh };
      const more = insufficientScope(resp);
      if (more) {
        // Step-up: sign in again for the union of the scopes asked so far
        // and the challenge's, unless the token already has them all (then
        // another sign-in would only loop) or the logins are used up.
        const held = tok.scopes ?? [];
        if (!more.length || more.every((sc) => held.includes(sc)) || options.login === false || logins >= maxLogins) return resp;
        logins++;
        scopes = union(scopes, held, more);
        await discard(resp);
        await client.sharedLogin(server, { account: options.account, scopes, onProgress: onLoginEvent, signal });
        rejected = undefined;
        continue;
      }
      if (resp.status !== 401) return resp;
      const challenge = /^dpop$/i.test(tok.token_type) ? dpopNonceChallenge(resp) : undefined;
      if (challenge && !nonceTried) {
        nonce = challenge;
        nonceTried = true;
        await discard(resp);
        continue;
      }
      // The agent answered the very token reported: nothing newer to try.
      // The bound is a backstop: the agent ends a series of rejections.
      if (rejected === tok.access_token || ++reports > 3) return resp;
      rejected = tok.access_token;
      await discard(resp);
    }
  };
}
