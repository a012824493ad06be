// Package ipc is the wire between the mcpkey agent and local programs: the
// protocol (method names, params and result types, error codes), the
// framing (LineConn), socket paths, and the Go client (Client, Dial,
// Client.Transport). It links only package api and the standard library, so
// a program that asks for a token carries nothing of the agent, the keyring
// or D-Bus (TestClientLinksOnlyTheWire checks it). The servers that answer
// this protocol live in ipc/server, which imports the agent.
//
// This comment is the protocol's specification; a client in any language can
// be written from it.
//
// # Transports and framing
//
// Messages are JSON-RPC 2.0 (https://www.jsonrpc.org/specification), UTF-8
// JSON objects. Batches (arrays) are not supported.
//
// On the Unix socket each message is one line: a JSON object followed by
// "\n". JSON text never contains a raw newline, so the framing is
// unambiguous; empty lines are ignored. A message may be at most 1 MiB
// (DefaultMaxFrame) without its newline: a longer one gets an
// invalid-request error (id null) and the connection is closed. Once the
// first byte of a message has arrived, the rest must follow within 30 s
// (server.ServerOptions.FrameTimeout) or the connection is closed; a
// connection may idle between messages for as long as it likes
// (subscribers do). Arrays
// and objects may nest at most 64 levels (MaxDepth); a deeper message gets
// an invalid-request error (id null) before it is decoded, and the
// connection stays usable.
//
// The codec is separate from the transport (MessageConn, LineConn, and
// server.Server.ServeConn): the WebSocket transport (below) carries the same
// messages, one per text frame, through the same dispatcher.
//
// # Authentication
//
// The Unix socket lives in a directory that must be 0700 and owned by the
// user (Listen refuses anything else, naming the directory); the socket is
// 0600. The server also checks every connection's peer credentials
// (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS and FreeBSD): a peer whose
// uid differs from the agent's is disconnected before anything is read. The
// peer's pid and, on Linux, executable (/proc/PID/exe) are attached to every
// request as an agent.Caller. The Go client checks the same from its side:
// it refuses an agent socket served by another uid. On Windows the socket
// (AF_UNIX) sits in %LOCALAPPDATA%, whose ACL admits only the user; no peer
// uid is available there. On other Unix systems without a peer-credential
// call the server refuses every connection.
//
// Default socket paths: see DefaultSocketPath ($MCPKEY_SOCK overrides).
//
// # WebSocket
//
// For clients that cannot open a Unix socket (browser extensions, sandboxed
// editors), "mcpkey agent --ws" (or ws_listen in the config) also serves the
// protocol on ws://127.0.0.1:PORT/v1/ws: loopback only (ListenWebSocket
// refuses any other address), a random port unless configured. At start the
// agent writes agent.ws.json (mode 0600; for a socket X.sock, X.ws.json) next to its socket:
//
//	{"url":"ws://127.0.0.1:PORT/v1/ws","secret":"<43 base64url chars>","pid":N}
//
// The secret is 32 random bytes, new at every start; reading the file proves
// the client runs as the agent's user. The file is removed at shutdown;
// agent.status reports the URL (websocket_url), never the secret.
//
// Every upgrade request is checked in this order, and refused with an HTTP
// status and no upgrade:
//
//  1. Host must be 127.0.0.1:PORT, localhost:PORT or [::1]:PORT, else 421.
//     This defeats DNS rebinding: a page on evil.test whose name now
//     resolves to 127.0.0.1 still sends Host: evil.test:PORT.
//  2. Origin: a request without one (a native client) passes; any Origin
//     header must equal one of the config's ws_allowed_origins exactly (such
//     as "chrome-extension://ID"), else 403. Web pages, file:// pages
//     (Origin "null") and the agent's own origin are refused.
//  3. The secret: "Authorization: Bearer <secret>", or, for an allowed
//     Origin only (browsers cannot set headers), the subprotocols
//     "mcpkey.v1" and "mcpkey.secret.<secret>" in Sec-WebSocket-Protocol;
//     the server then answers with "mcpkey.v1" alone. Compared in constant
//     time; else 401. Never in the URL. Refusals are logged without the
//     offered secret.
//  4. The path must be /v1/ws, else 404.
//
// Each message is one text frame (fragmented frames are joined); a binary
// frame closes the connection with 1003, a message over 1 MiB gets the
// invalid-request error, then close 1009. A message must complete within
// 30 s of its first frame. The server pings every 20 s; a connection silent
// for 60 s (no message, no pong) is closed. Each connection may send 100
// messages per second with bursts of 200: beyond that it is closed with 1008
// "request rate limit exceeded" (a close, not an error reply, so a runaway
// client stops at once and learns why). At most 64 WebSocket connections are
// open at a time; another is closed at once with 1013 "too many connections;
// try again later". Before the upgrade a connection is bounded too: on
// Linux one from another uid (sock_diag) is closed as it is accepted; at
// most 32 may be in their handshake at once (the next wait in the kernel's
// backlog), each for at most 5 s. These limits apply to the WebSocket only: socket
// clients are never slowed by them. Callers appear as agent.Caller
// {Transport: "websocket", Client: "ws"}: a TCP peer has no pid.
//
// ipc.Client uses the WebSocket when Client.WebSocket is set (it reads
// agent.ws.json next to Client.Path or the default socket at every dial) or
// when Client.Path, or $MCPKEY_SOCK, is "ws://127.0.0.1:PORT/v1/ws#FILE",
// FILE being the agent.ws.json that holds the secret.
//
// # Versioning
//
// ProtocolVersion is 1. New methods, new optional params and new result
// fields are added without changing it; clients must ignore unknown result
// fields and the server ignores unknown params. A change that would break a
// version-1 client bumps the version. A client may call agent.hello with
// protocol_version set to the version it requires; an agent that does not
// speak it answers invalid_request.
//
// # Requests and notifications
//
// A request carries "jsonrpc":"2.0", an "id" (string or number), a "method"
// and, where the method takes them, "params" (an object). Every request gets
// exactly one response with the same id. Requests on one connection are
// served concurrently (at most 32 at a time; further requests wait to be
// read), so responses may come in any order. A message without an id is a
// notification and gets no response; unknown notifications are ignored.
//
// Field names are snake_case; times are RFC 3339 strings; absent optional
// fields may be omitted.
//
// The methods are the rows of the protocol table, Methods(), in the order
// below; each row also says whether the method is idempotent (the Go client
// resends it once on a fresh connection), allowed on a restricted socket,
// answered while the agent is locked, and subject to approval.
//
// agent.hello — params {client?: string, protocol_version?: int}; result
// {protocol_version: 1, agent_version: string, capabilities: [string]}, the
// capabilities being the method names this agent serves, then its features:
// "dpop" when token.get signs DPoP proofs (below).
//
// agent.status — no params; result agent.Status: {version, pid,
// store_backend, locked, sessions, needs_login, key_bound?, started, socket?,
// websocket_url?, config_path?, config_error?, pending_logins, grants?:
// {grant: count} for sessions without a browser sign-in}.
//
// sessions.list — no params; result {sessions: [agent.SessionInfo]}, each
// {server, name?, account, issuer, client_id, scopes, state, error?,
// expires_at, obtained_at, has_refresh_token, store_backend, dpop?,
// grant?}. No secrets. dpop true: the session's tokens are bound to the
// agent's key. grant is absent for a browser sign-in, else
// client_credentials, jwt_bearer or enterprise (api.Grants).
//
// token.get — params {server, account?, scopes?, min_ttl_seconds?,
// rejected_token?, dpop_method?, dpop_url?, dpop_nonce?}; result
// {access_token, token_type, expires_at, scopes, server, account,
// dpop_proof?}. server is a configured name or a URL. A token expiring
// within min_ttl_seconds is refreshed first. rejected_token reports a token
// a resource server answered 401 to: if it is still the session's current
// token the agent refreshes (once, however many callers report it),
// otherwise it returns the newer token. A token issued moments ago that is
// rejected answers needs_login the first time (one extra sign-in) and
// token_rejected after that, so 401 handlers never loop through logins.
//
// DPoP (RFC 9449): token.get also takes {dpop_method?, dpop_url?,
// dpop_nonce?}, the HTTP method and URL of the request the token is for and
// a DPoP-Nonce the resource server just sent (the agent remembers it for
// the URL's origin, for every caller). For a key-bound
// session (sessions.list: dpop true) the result has token_type "DPoP" and
// dpop_proof, a fresh compact JWS (typ dpop+jwt, ES256, claims htm, htu =
// dpop_url without query and fragment, iat, jti, ath, and nonce when one is
// known for the URL's origin) signed with the session's key, which never
// leaves the agent; every answer has a new proof. The caller sends
// "Authorization: DPoP <access_token>" and "DPoP: <dpop_proof>"; on a 401
// with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a DPoP-Nonce
// header it asks once more with dpop_nonce set; a DPoP-Nonce on any other
// response (servers may rotate nonces on any response, RFC 9449 §9) goes
// with its next token.get. Without dpop_method and
// dpop_url a key-bound session answers dpop_required, and a dpop_url on
// another origin than the server's invalid_request; bearer sessions ignore
// the three params (token_type "Bearer", no dpop_proof).
//
// session.logout — params {server, account?, keep_remote?, forget_client?,
// forget_idp?}; result {server, account, revoked, revoke_error?,
// forgot_client?, forgot_idp?}. keep_remote skips revocation at the
// authorization server; forget_idp also drops an enterprise session's
// sign-in at its identity provider.
//
// session.login — params {server, account?, scopes?, no_browser?,
// client_id?, client_secret?, client_metadata_url?, dpop?, grant?: {mode?,
// client_key?, client_key_alg?, assertion_file?, idp?}, env?: {BROWSER?,
// DISPLAY?, WAYLAND_DISPLAY?}}; result agent.SessionInfo. grant runs a
// login without a browser (api.GrantLogin): client_credentials,
// jwt_bearer or enterprise. While the login
// runs, the server sends notifications login.progress {id: <this request's
// id>, event: agent.Event} on the same connection, all before the response.
// An event may carry url (the authorization URL to open or show; show_url
// true when the agent could not open a browser and the caller must show
// it) and user_code (device grant). env is the caller's browser environment (as
// gpg-agent's updatestartuptty): used only on the main Unix socket from a
// peer of the agent's uid, ignored on the WebSocket (restricted sockets
// refuse session.login); a BROWSER from it is never run as root. A login
// nobody finishes within the agent's login timeout (10 minutes) answers
// internal with "nobody finished signing in to … within 10m; run `mcpkey
// login …` again".
//
// session.complete — params {url}; result {}. Hands a pasted redirect URL
// to the headless login whose state it carries.
//
// session.import — params {server, account?, from?, access_token?,
// refresh_token, token_type?, expires_at?, scopes?, client: {client_id,
// client_secret?, token_endpoint_auth_method?, issuer?}}; result
// agent.SessionInfo. Adopts a session another tool kept in a plain file
// (mcpkey import mcp-remote): the agent discovers the server's
// authorization server (refusing when client.issuer names another one),
// runs one refresh with the given client to prove the refresh token works,
// and stores the refreshed session as a login's result, recording the
// client it was issued to. A refresh that fails answers its error and
// keeps nothing; a server that already has a session for the account
// answers invalid_request. Not served on restricted sockets.
//
// events.subscribe — no params; result {subscribed: true}. Afterwards the
// server sends notifications event {event: agent.Event} ({kind, time,
// server?, account?, session?, message?, url?, show_url?, user_code?, error?}) on this
// connection until it closes. A subscriber that falls behind is
// disconnected: the connection closing is how a client learns it lost
// events. Subscribe on a connection of its own.
//
// rpc.cancel — a notification from the client, params {id}: cancels the
// request with that id on this connection. The cancelled request is still
// answered, with the cancelled error, unless it finished first. Closing a
// connection cancels all its requests.
//
// Approvals, lock and restricted sockets (the first four served by agents
// whose Backend is a PolicyBackend; others answer method not found):
//
// approvals.list — no params; result {approvals: [agent.Approval]}, each
// {id, server, name?, account, scopes?, caller: {transport, uid, pid, exe?,
// cmdline?, parents?: [{pid, exe?, cmdline?}], client?}, requested,
// deadline, remember_seconds, waiting}. With confirm on, a token.get from a
// program not on the allow list waits (up to approval_timeout, default 60 s)
// until answered; requests of one program for one server share one
// approval. Events approval.requested and approval.answered (with
// approval.decision: allow_once, allow, deny, timeout, cancelled, locked)
// announce them to subscribers. An unanswered request gets denied.
//
// approval.answer — params {id, decision: "allow_once"|"allow"|"deny",
// remember?}; result {}. allow is remembered per (executable, server) for
// the server's remember time (default 8 h); deny is remembered when
// remember is true. A program cannot answer its own approval (nor can its
// descendants): denied. Unknown or settled ids: not_found.
//
// agent.lock — params {passphrase?}; result {}. Drops the in-memory
// tokens, forgets remembered approvals, refuses waiting ones and cancels
// logins in flight; until agent.unlock, token.get, session.login and
// session.logout answer locked. Locking a locked agent answers locked.
//
// agent.unlock — params {passphrase?}; result {}. Reads the sessions back
// from the keyring. If the lock set a passphrase it must match; a wrong
// one answers denied after 1 s, 2 s, 4 s … (at most 30 s), one attempt at a
// time.
//
// socket.add — params {servers: [string], path?, ttl?: "8h"}; result
// {path, servers, expires_at?, from_config?}. Opens a restricted socket
// (0600, in a 0700 directory; without path, next to this socket) until ttl
// or the agent ends.
//
// socket.list — no params; result {sockets: [...]}, as socket.add answers.
//
// socket.remove — params {path}; result {}.
//
// # Restricted sockets
//
// A restricted socket serves agent.hello (capabilities: agent.hello,
// token.get) and token.get for its listed servers only; token.get for any
// other server and every other method, known or not, answer denied. It is
// meant for forwarding: `ssh -R /tmp/mcpkey.sock:LOCAL devbox`, then on the
// remote machine MCPKEY_SOCK=/tmp/mcpkey.sock. The peer-uid check and the
// approval policy apply as on the main socket (the caller is the local ssh
// client).
//
// Static secrets and launcher configuration (served by agents whose Backend
// is a SecretBackend; others answer method not found). Secret values travel
// only over this socket, never in argv, env or logs of mcpkey itself:
//
// secret.set — params {name, value}; result {}. Stores an API key or other
// static secret under name (letters, digits and . _ @ -; up to 64 KiB).
//
// secret.get — params {name}; result {name, value}; not_found if none.
//
// secret.list — no params; result {names: [string]}. Reads no value.
//
// secret.delete — params {name}; result {}; not_found if none.
//
// server.resolve — params {server}; result {name?, url, resource, account?,
// headers?: {header: "secret:NAME"}, env?: {VAR: "token" | "secret:NAME"},
// login_wait_seconds}: what mcpkey bridge, exec and proxy need to launch a
// server, from its [servers.NAME] table (a URL not in the config resolves to
// itself, with no headers or env). References only, never values.
//
// # Errors
//
// Error responses carry a JSON-RPC error object {code, message, data?}.
// Protocol errors use the standard codes, with data.code "invalid_request"
// except for method-not-found:
//
//	-32700  parse error (id null; the connection stays usable)
//	-32600  invalid request (not JSON-RPC 2.0, bad id, duplicate id in
//	        flight, frame over the cap, nesting over MaxDepth)
//	-32601  method not found (no data)
//	-32602  invalid params (wrong types, missing server); the message names
//	        the field and the expected type, never the value sent
//
// Application errors have a code in -32000..-32099 and a stable string in
// data.code, which clients branch on:
//
//	-32000  internal           anything else
//	-32001  not_found          no such server or session
//	-32002  needs_login        no usable grant; data has server, account,
//	                           scopes (what a step-up login must ask for)
//	                           and reason
//	-32003  locked             the agent is locked
//	-32004  denied             the caller was refused
//	-32005  store_unavailable  the credential store did not answer in time
//	-32006  invalid_request    the request is wrong (bad URL, protocol
//	                           version, ...)
//	-32007  token_rejected     token.get reported a RejectedToken, and the
//	                           resource server keeps rejecting freshly
//	                           issued tokens (likely an audience mismatch):
//	                           another login would not help
//	-32008  dpop_required      token.get for a key-bound (DPoP) session
//	                           without dpop_method and dpop_url
//	-32800  cancelled          the request was cancelled by rpc.cancel
//
// ipc.Client maps these back to the agent package's sentinels, so Go
// callers use errors.Is(err, agent.ErrNeedsLogin) and errors.As(err,
// &*agent.NeedsLoginError). The message is the Backend error's text:
// Backends must keep their errors free of secrets, since the server sends
// them as they are. The server never logs params or results.
//
// # Limits
//
// A connection whose outbound queue (256 messages) overflows, or whose
// socket does not accept a write within 10 s, is closed: a client that never
// reads its replies or events never blocks the agent or other clients.
//
// # Example
//
// A token from a shell, with socat:
//
//	printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"https://mcp.example.com/mcp"}}' |
//	  socat -t5 - UNIX-CONNECT:"$XDG_RUNTIME_DIR/mcpkey/agent.sock"
//
// # References
//
//   - JSON-RPC 2.0: https://www.jsonrpc.org/specification
//   - Cancellation, as in the Language Server Protocol:
//     https://microsoft.github.io/language-server-protocol/specifications/lsp/3.17/specification/#cancelRequest
//   - unix(7) SO_PEERCRED: https://man7.org/linux/man-pages/man7/unix.7.html
//   - The WebSocket protocol, RFC 6455: https://www.rfc-editor.org/rfc/rfc6455
//   - 421 Misdirected Request, RFC 9110 §15.5.20: https://www.rfc-editor.org/rfc/rfc9110#section-15.5.20
package ipc
