// The wire client: JSON-RPC 2.0, one message per line, over the agent's
// Unix socket (the protocol is ipc/doc.go in the mcpkey repository).

import { statSync } from 'node:fs';
import net from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { defaultSocketPath, runningAgentSocket, type Getenv } from './path.js';

/** token.get's result; field names as on the wire. */
export interface Token {
  access_token: string;
  /** "Bearer", or "DPoP" for a key-bound session (then dpop_proof is set). */
  token_type: string;
  /** RFC 3339; the zero time ("0001-01-01T00:00:00Z") when the token has no expiry. */
  expires_at: string;
  scopes: string[] | null;
  /** The canonical MCP server (resource) URL the token is for. */
  server: string;
  account: string;
  /** A fresh DPoP proof for the request named by dpopMethod and dpopUrl. */
  dpop_proof?: string;
}

/** One session as sessions.list describes it (no secrets). */
export interface SessionInfo {
  server: string;
  name?: string;
  account: string;
  issuer: string;
  client_id: string;
  scopes: string[] | null;
  state: 'ready' | 'refreshing' | 'needs_login' | 'authorizing' | 'error' | 'broken' | string;
  error?: string;
  expires_at: string;
  obtained_at: string;
  has_refresh_token: boolean;
  store_backend: string;
}

/** An agent event (events.subscribe, login.progress). */
export interface AgentEvent {
  kind: string;
  time: string;
  server?: string;
  account?: string;
  session?: SessionInfo;
  message?: string;
  /** The authorization URL; show it when show_url is true. */
  url?: string;
  show_url?: boolean;
  user_code?: string;
  error?: string;
  [field: string]: unknown;
}

export interface HelloResult {
  protocol_version: number;
  agent_version: string;
  capabilities: string[];
}

/**
 * An error from the agent or from reaching it. Branch on code, never on
 * the message: the agent's codes (not_found, needs_login, locked, denied,
 * store_unavailable, invalid_request, token_rejected, cancelled, internal,
 * dpop_required, method_not_found) and this client's own: no_agent (nothing
 * listens on the socket), connection_lost, foreign_socket (the socket is
 * not ours), other_origin (a request to another origin than the token's
 * server).
 */
export class McpkeyError extends Error {
  readonly code: string;
  /** The JSON-RPC error code, for errors from the agent. */
  readonly rpcCode?: number;
  /** The error's data: for needs_login {server, account, scopes, reason}. */
  readonly data?: Record<string, unknown>;

  constructor(code: string, message: string, opts: { rpcCode?: number; data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'McpkeyError';
    this.code = code;
    this.rpcCode = opts.rpcCode;
    this.data = opts.data;
  }
}

export interface ClientOptions {
  /** The agent's socket; default: $MCPKEY_SOCK, the default path, then the agent lock's record. */
  path?: string;
  /** agent.hello's client name. */
  name?: string;
  /** The environment the default path is derived from (tests). */
  getenv?: Getenv;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** login.progress events of this call (session.login). */
  onProgress?: (event: AgentEvent) => void;
}

export interface TokenOptions {
  account?: string;
  /** Scopes the token must carry; a session without them answers needs_login. */
  scopes?: string[];
  /** A token expiring sooner is refreshed first. */
  minTtlSeconds?: number;
  /** The token a resource server just answered 401 to. */
  rejectedToken?: string;
  /** DPoP: the method and URL of the request the token is for. */
  dpopMethod?: string;
  dpopUrl?: string;
  /** DPoP: the DPoP-Nonce a resource server sent. */
  dpopNonce?: string;
  signal?: AbortSignal;
}

export interface LoginOptions {
  account?: string;
  scopes?: string[];
  /** Do not open a browser: the agent sends the URL (an event with show_url). */
  noBrowser?: boolean;
  onProgress?: (event: AgentEvent) => void;
  signal?: AbortSignal;
}

/** Methods the client may resend on a fresh connection (ipc/methods.go: Idempotent). */
const idempotent = new Set(['agent.hello', 'agent.status', 'sessions.list', 'token.get', 'secret.get',
  'secret.list', 'server.resolve', 'approvals.list', 'socket.list']);

/** The agent's frame cap times 16, as the Go client reads. */
const maxLine = 16 << 20;

interface Pending {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  onProgress?: (event: AgentEvent) => void;
}

/** One connection: a reader that routes replies by id, progress to its call, events to onEvent. */
class Conn {
  private nextId = 0;
  private buf = '';
  private readonly pending = new Map<number, Pending>();
  dead: Error | undefined;

  constructor(readonly sock: net.Socket, private readonly onEvent?: (event: AgentEvent) => void, private readonly onClose?: () => void) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.read(chunk));
    sock.on('error', (err) => this.fail(new McpkeyError('connection_lost', `connection to agent lost: ${err.message}`, { cause: err })));
    sock.on('close', () => this.fail(new McpkeyError('connection_lost', 'connection to agent lost')));
    sock.unref(); // an idle connection never keeps the process alive
  }

  private read(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.trim()) this.dispatch(line);
      if (this.dead) return;
    }
    if (this.buf.length > maxLine) this.fail(new McpkeyError('connection_lost', 'connection to agent lost: a message over the size limit'));
  }

  private dispatch(line: string): void {
    let m: { id?: unknown; method?: string; params?: any; result?: unknown; error?: any };
    try {
      m = JSON.parse(line);
    } catch {
      this.fail(new McpkeyError('connection_lost', 'connection to agent lost: a message that is not JSON'));
      return;
    }
    if (m.method === 'login.progress') {
      this.pending.get(m.params?.id)?.onProgress?.(m.params?.event);
      return;
    }
    if (m.method === 'event') {
      if (m.params?.event) this.onEvent?.(m.params.event);
      return;
    }
    if (m.method !== undefined || typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.settle(m.id);
    if (m.error) p.reject(agentError(m.error));
    else p.resolve(m.result);
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0 && !this.onEvent) this.sock.unref();
  }

  fail(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.sock.destroy();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.onClose?.();
  }

  /** Sends one request and waits for its reply; sent says whether any byte went out. */
  call(method: string, params: unknown, opts: CallOptions = {}): { sent: boolean; reply: Promise<unknown> } {
    if (this.dead) return { sent: false, reply: Promise.reject(this.dead) };
    if (opts.signal?.aborted) return { sent: false, reply: Promise.reject(opts.signal.reason) };
    const id = ++this.nextId;
    const reply = new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.has(id)) return;
        this.settle(id);
        // The agent stops working for us; the reply it still sends is dropped.
        this.sock.write(JSON.stringify({ jsonrpc: '2.0', method: 'rpc.cancel', params: { id } }) + '\n');
        reject(opts.signal!.reason);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => opts.signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (r) => { done(); resolve(r); },
        reject: (e) => { done(); reject(e); },
        onProgress: opts.onProgress,
      });
    });
    const msg: Record<string, unknown> = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    this.sock.ref();
    this.sock.write(JSON.stringify(msg) + '\n');
    return { sent: true, reply };
  }
}

function agentError(e: { code?: number; message?: string; data?: any }): McpkeyError {
  let code = typeof e.data?.code === 'string' ? e.data.code : undefined;
  if (!code) code = e.code === -32601 ? 'method_not_found' : 'internal';
  const data = e.data && typeof e.data === 'object' ? e.data : undefined;
  return new McpkeyError(code, `mcpkey: ${e.message ?? code}`, { rpcCode: e.code, data });
}

/** Connects to path, refusing a socket another user owns. */
function dial(path: string): Promise<net.Socket> {
  if (/^wss?:\/\//.test(path)) {
    return Promise.reject(new McpkeyError('invalid_request',
      `mcpkey: ${path.replace(/#.*/, '')}: this client speaks the agent's Unix socket, not its WebSocket; unset MCPKEY_SOCK or point it at the socket`));
  }
  // Node has no SO_PEERCRED (the Go and Python clients check the peer's
  // uid): the socket file's owner is checked instead. The agent makes its
  // directory 0700, so only we (or root) can have bound it there.
  try {
    const st = statSync(path);
    const me = process.getuid?.();
    if (me !== undefined && st.uid !== me) {
      return Promise.reject(new McpkeyError('foreign_socket',
        `mcpkey: connect to agent on ${path}: socket is owned by uid ${st.uid}, not ${me}; refusing it`));
    }
  } catch {
    // ENOENT: the connect below says "no agent"
  }
  return new Promise((resolveConn, reject) => {
    const sock = net.connect(path);
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      resolveConn(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new McpkeyError('no_agent', `mcpkey: no agent running on ${path}\nhint: start one with: mcpkey agent`, { cause: err }));
      } else {
        reject(new McpkeyError('connection_lost', `mcpkey: connect to agent on ${path}: ${err.message}`, { cause: err }));
      }
    });
  });
}

/**
 * A client of the mcpkey agent. Calls share one lazily dialled connection,
 * multiplexed by request id, redialled after an error; it never keeps the
 * process alive while idle.
 */
export class Client {
  private conn: Promise<Conn> | undefined;
  private readonly logins = new Map<string, Promise<SessionInfo>>();

  constructor(private readonly opts: ClientOptions = {}) {}

  /** Dials the agent the way the Go client does (ipc.Client.dial). */
  private async open(onEvent?: (event: AgentEvent) => void, onClose?: () => void): Promise<Conn> {
    const getenv = this.opts.getenv ?? ((k: string) => process.env[k]);
    const path = this.opts.path || defaultSocketPath(getenv);
    let sock: net.Socket;
    try {
      sock = await dial(path);
    } catch (err) {
      // The default socket has no agent, but the user's agent may listen
      // elsewhere (another XDG_RUNTIME_DIR, --socket): its lock says where.
      const running = !this.opts.path && !getenv('MCPKEY_SOCK') && err instanceof McpkeyError && err.code === 'no_agent'
        ? runningAgentSocket(getenv) : undefined;
      if (!running || running === path) throw err;
      sock = await dial(running);
    }
    return new Conn(sock, onEvent, onClose);
  }

  /**
   * Calls one method (see ipc/doc.go) and returns its result. An idempotent
   * method whose reused connection turns out dead (the agent restarted) is
   * sent once more on a fresh one.
   */
  async call<T = unknown>(method: string, params?: unknown, opts: CallOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let fresh = false;
      if (!this.conn) {
        this.conn = this.open();
        fresh = true;
      }
      const connP = this.conn;
      let conn: Conn;
      try {
        conn = await connP;
      } catch (err) {
        if (this.conn === connP) this.conn = undefined;
        throw err;
      }
      if (conn.dead && !fresh) {
        if (this.conn === connP) this.conn = undefined;
        continue;
      }
      const { sent, reply } = conn.call(method, params, opts);
      try {
        return (await reply) as T;
      } catch (err) {
        const lost = err instanceof McpkeyError && err.code === 'connection_lost';
        if (lost && this.conn === connP) this.conn = undefined;
        if (!lost || fresh || attempt > 0 || (sent && !idempotent.has(method))) throw err;
      }
    }
  }

  /** agent.hello: the agent's version and the methods it serves (capabilities). */
  hello(opts: CallOptions = {}): Promise<HelloResult> {
    return this.call('agent.hello', { client: this.opts.name ?? 'mcpkey-js', protocol_version: 1 }, opts);
  }

  /** token.get: an access token for server (a configured name or URL). */
  getToken(server: string, opts: TokenOptions = {}): Promise<Token> {
    const p: Record<string, unknown> = { server };
    if (opts.account) p.account = opts.account;
    if (opts.scopes?.length) p.scopes = opts.scopes;
    if (opts.minTtlSeconds && opts.minTtlSeconds > 0) p.min_ttl_seconds = Math.ceil(opts.minTtlSeconds);
    if (opts.rejectedToken) p.rejected_token = opts.rejectedToken;
    if (opts.dpopMethod) p.dpop_method = opts.dpopMethod;
    if (opts.dpopUrl) p.dpop_url = opts.dpopUrl;
    if (opts.dpopNonce) p.dpop_nonce = opts.dpopNonce;
    return this.call('token.get', p, { signal: opts.signal });
  }

  /** sessions.list: the agent's sessions, without secrets. */
  async sessions(opts: CallOptions = {}): Promise<SessionInfo[]> {
    const r = await this.call<{ sessions: SessionInfo[] | null }>('sessions.list', undefined, opts);
    return r.sessions ?? [];
  }

  /**
   * session.login: the agent runs the login (or joins the one running for
   * the same session, so the user sees one browser tab) in the browser of
   * this process's $BROWSER/$DISPLAY/$WAYLAND_DISPLAY.
   */
  login(server: string, opts: LoginOptions = {}): Promise<SessionInfo> {
    const p: Record<string, unknown> = { server };
    if (opts.account) p.account = opts.account;
    if (opts.scopes?.length) p.scopes = opts.scopes;
    if (opts.noBrowser) p.no_browser = true;
    const env = callerEnv();
    if (!opts.noBrowser && Object.keys(env).length) p.env = env;
    return this.call('session.login', p, { signal: opts.signal, onProgress: opts.onProgress });
  }

  /**
   * One login for server at a time from this client: callers that need one
   * while it runs wait for the same login. signal stops this caller's wait,
   * not the login.
   */
  sharedLogin(server: string, opts: LoginOptions = {}): Promise<SessionInfo> {
    const key = `${server}\n${opts.account ?? ''}`;
    let p = this.logins.get(key);
    if (!p) {
      p = this.login(server, { ...opts, signal: undefined }).finally(() => this.logins.delete(key));
      this.logins.set(key, p);
    }
    const signal = opts.signal;
    if (!signal) return p;
    return new Promise((res, rej) => {
      if (signal.aborted) return rej(signal.reason);
      signal.addEventListener('abort', () => rej(signal.reason), { once: true });
      p.then(res, rej);
    });
  }

  /**
   * events.subscribe on a connection of its own: yields the agent's events
   * until signal aborts, the loop breaks, or the connection is lost (the
   * agent drops subscribers that fall behind).
   */
  async *watch(opts: { signal?: AbortSignal } = {}): AsyncGenerator<AgentEvent> {
    const queue: AgentEvent[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const conn = await this.open((ev) => { queue.push(ev); wake?.(); }, () => { closed = true; wake?.(); });
    const stop = () => conn.fail(new McpkeyError('cancelled', 'watch stopped'));
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      await conn.call('events.subscribe', undefined, { signal: opts.signal }).reply;
      conn.sock.ref(); // a subscriber waits for events
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (closed) return;
        await new Promise<void>((r) => { wake = r; });
        wake = undefined;
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      stop();
    }
  }

  /** Closes the shared connection; the next call dials again. */
  close(): void {
    const c = this.conn;
    this.conn = undefined;
    c?.then((conn) => conn.fail(new McpkeyError('connection_lost', 'client closed')), () => {});
  }
}

/** This process's browser environment; relative $BROWSER entries made absolute (the agent runs elsewhere). */
function callerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  const browser = process.env.BROWSER;
  if (browser) {
    env.BROWSER = browser.split(':').map((p) => (p.includes('/') && !isAbsolute(p) ? resolve(p) : p)).join(':');
  }
  if (process.env.DISPLAY) env.DISPLAY = process.env.DISPLAY;
  if (process.env.WAYLAND_DISPLAY) env.WAYLAND_DISPLAY = process.env.WAYLAND_DISPLAY;
  return env;
}
