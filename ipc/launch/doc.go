// Package launch connects MCP hosts to servers without the hosts ever
// holding a token: the three launchers of mcpkey.
//
//   - Bridge (`mcpkey bridge NAME`) is a stdio MCP server that relays every
//     JSON-RPC message, uninterpreted, between the host on stdin/stdout and a
//     remote server over Streamable HTTP (falling back to the 2024-11-05
//     HTTP+SSE transport), adding the agent's token to every request.
//   - Exec (`mcpkey exec NAME -- CMD`) starts a stdio server with tokens and
//     static secrets in its environment, resolved like `op run`.
//   - Proxy (`mcpkey proxy`) is a loopback Streamable HTTP endpoint per
//     configured server for hosts that speak HTTP, forwarding with the token
//     injected.
//
// Snippet prints the host configuration (Claude Desktop, Claude Code,
// Cursor, VS Code) that uses them, and Probe checks a server end to end.
// Their commands (NewCmdBridge, NewCmdExec, NewCmdProxy, NewCmdProbe,
// NewCmdConfig) are built like ipc/cli's and live here, since the
// launchers link the MCP SDK, which ipc/cli must not.
//
// # Tokens
//
// The launchers ask the agent (package ipc) for their tokens; they never
// write one to disk, argv, their own environment or logs. The proxy asks
// per request. The bridge reuses the token the agent last gave it (so a
// message costs no agent round trip) while it is subscribed to the agent's
// events, and drops it on any event (lock, logout, refresh, login, config
// reload), on a 401, after half its remaining lifetime or after a minute,
// whichever comes first; the agent stays the only refresher. A 401 is
// reported to the agent, which refreshes once however many launchers report
// the same token; when the grant is gone, one login runs for all of them
// (the agent joins concurrent logins), and a 403 insufficient_scope starts a
// step-up login with the union of scopes (AuthTransport).
//
// A server whose config has [servers.NAME.headers] is an API-key server: the
// launchers send those headers (values from `mcpkey secret set`) and no
// OAuth token.
//
// # References
//
//   - MCP transports (Streamable HTTP, stdio, the 2024-11-05 HTTP+SSE
//     fallback): https://modelcontextprotocol.io/specification/2025-11-25/basic/transports
//   - Server-sent events: https://html.spec.whatwg.org/multipage/server-sent-events.html
//   - RFC 9110 §7.6.1 (hop-by-hop fields): https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
package launch
