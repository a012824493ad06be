// Package agent is mcpkey's engine: it holds MCP OAuth sessions, logs in,
// refreshes, and hands out access tokens. It knows nothing of sockets; the
// ipc package serves it, and the CLI and tray talk to it through ipc.
//
// # The model
//
// An Agent owns a set of sessions. A session is one OAuth grant for one MCP
// server (the resource, named byte for byte as its Protected Resource
// Metadata names it) and one account label: the stored record
// (store.SessionRecord) with the access token, the refresh token, the
// authorization server it came from and the client registration it was
// issued to. Records live in a store.Store (the OS keyring, keyctl or an
// encrypted file); the agent keeps each session's tokens in memory of its
// own and wipes that memory when it lets a session go (lock, logout,
// supersession).
//
// Callers ask for a token (Agent.Token): the agent serves the held access
// token while it is valid, refreshes it when it is about to expire, and
// says "log in" (NeedsLoginError) when only a person can help. A login
// (Agent.Login) runs OAuth 2.1 with PKCE in the user's browser against a
// loopback redirect listener and stores the new record. Configuration
// (names, accounts, scopes, audience, approval, deny rules) comes from the
// config file (Settings, read by package config) and may be replaced while
// running (ApplySettings, WatchSettings).
//
// # Session states
//
// A session's SessionState, as sessions.list and the tray show it, and
// what moves it:
//
//	authorizing ─ login succeeds ─────────────────────────▶ ready
//	ready       ─ token near expiry, or rejected by server ─▶ refreshing
//	refreshing  ─ new token stored ───────────────────────▶ ready
//	refreshing  ─ network, 5xx, other errors ─────────────▶ error
//	error       ─ backoff elapsed, or a caller asks ──────▶ refreshing
//	refreshing  ─ invalid_grant / invalid_client ─────────▶ needs_login
//	ready       ─ expired and no refresh token ───────────▶ needs_login
//	needs_login ─ login starts ───────────────────────────▶ authorizing
//	broken      ─ logout removes it / a login replaces it ─▶ (gone) / ready
//
// ready serves the token; refreshing has one refresh in flight that every
// caller waits on; error keeps the credentials, serves a still-valid token
// and retries with backoff (5 s doubling to 5 min); needs_login and broken
// (stored items that cannot be read) serve nothing until a login.
//
// # Invariants
//
//   - One refresher. The agent is the only process that uses refresh
//     tokens, and a session has at most one refresh in flight
//     (startRefreshLocked): N waiting callers cause one request.
//   - Persist before serve. A refreshed record is written to the store
//     before its tokens are handed out (session.unpersisted); if the write
//     fails the rotated refresh token stays in memory and the write is
//     retried, since the old one is already spent.
//   - Only the authorization server ends a grant. Only a definitive
//     invalid_grant or invalid_client (oauth.EndsGrant), after re-reading
//     the store in case another process rotated the token, moves a session
//     to needs_login. Network errors, 5xx, pages that are not OAuth answers
//     and other OAuth errors keep the credentials.
//   - A token stays with its audience. A token is served only for the
//     resource it was issued for; registrations are never reused across
//     authorization servers.
//   - No secret leaves in prose. Tokens, codes, verifiers, refresh tokens,
//     client secrets and passphrases never appear in logs, errors, events
//     or audit records.
//
// # Policy
//
// Before a token, a login, a logout or a secret is served, the agent asks
// its policy (package policy): one decision function, Policy.Decide, judges
// every such request — from the main socket, a restricted socket, the
// WebSocket or the proxy, locked or not — by the caller in the request's
// context (WithCaller, WithRestriction), and answers allow, deny (with a
// kind and a reason) or ask the user. The lock, approvals, deny and allow
// rules, caller identity and the audit log live there; Agent.Lock,
// Unlock, Approvals and Answer are its facade.
//
// # Rooms
//
// The Agent is the facade the ipc server uses (see ipc/server.Backend). It
// owns the session table (mu: sessions, the logins in flight, the loader's
// pending and broken sessions, which a lock drops together) and what needs
// it: serving a token and starting a session's one refresh (token.go), the
// login's orchestration and logout (login.go), loading (loading.go) and
// import. The rest is in rooms of their own, each a small type with its own
// state or the services it uses, never the session table:
//
//   - policy.Policy (pol): lock, approvals, deny rules, audit, callers;
//   - hub (events): events, stamped and fanned out without blocking;
//   - resolver (names): configured names and URLs to targets, cached per
//     settings version, and the audience a target's grants send;
//   - outbound (http): the two hardened HTTP clients, and handing memory
//     that held tokens back to the OS;
//   - registrations (regs): the client registrations stored per issuer,
//     as sessions use them (which client a session's tokens belong to);
//   - refresher: renews one session's tokens (the refresh_token grant or
//     its grant again), persists before serving, applies backoff and
//     needs_login; wakeup is the scheduler's doorbell;
//   - authorizer (authz): a browser sign-in's client registration, device
//     grant, browser and loopback callback, and the pending callbacks a
//     pasted redirect URL finds;
//   - idpSignIns (idps): the user's sign-ins at identity providers, and
//     their exchange for identity assertions (enterprise grant);
//   - dpopState (dpop): DPoP nonces per origin, proofs, and the servers
//     that refused a key-bound token;
//   - marginCap, session, flight: one session's tokens and its refresh.
//
// # Threat model
//
// In short: a program running as the user may ask for tokens unless
// approval or deny rules say otherwise, and cannot answer its own approval;
// another user cannot reach the agent; a web page is refused by the
// WebSocket's Host, Origin and secret checks; servers and authorization
// servers are hostile input (one hardened HTTP client, exact issuer and
// resource checks). The README's "Security model (one screen)" and its
// threat-model sections are the full statement.
package agent
