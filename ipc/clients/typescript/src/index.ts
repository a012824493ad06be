// mcpkey: a client of the mcpkey agent (https://github.com/mcpkey/mcpkey),
// the per-user daemon that holds MCP OAuth sessions, signs in, refreshes
// and hands out access tokens over a Unix socket.

import { type AgentEvent, type SessionInfo, type Token, type TokenOptions } from './client.js';
import { defaultClient } from './fetch.js';

export { Client, McpkeyError } from './client.js';
export type { AgentEvent, CallOptions, ClientOptions, HelloResult, LoginOptions, SessionInfo, Token, TokenOptions } from './client.js';
export { authHeaders, checkOrigin, defaultClient, dpopNonceChallenge, dpopUrl, insufficientScope, mcpkeyFetch } from './fetch.js';
export type { FetchLike, McpkeyFetchOptions } from './fetch.js';
export { agentLockPath, defaultSocketPath, runningAgentSocket } from './path.js';
export type { Getenv } from './path.js';

/** An access token for server (a configured name or URL) from the agent. */
export function getToken(server: string, options: TokenOptions = {}): Promise<Token> {
  return defaultClient().getToken(server, options);
}

/** The agent's sessions, without secrets. */
export function sessions(): Promise<SessionInfo[]> {
  return defaultClient().sessions();
}

/** The agent's events until signal aborts (or the loop breaks). */
export function watch(options: { signal?: AbortSignal } = {}): AsyncGenerator<AgentEvent> {
  return defaultClient().watch(options);
}
