// Package policy is the agent's access control: who may have a token, a
// login, a logout or a secret, and when. It holds the lock, the approvals
// (waiting, remembered, and who may answer them), the config's deny and
// allow rules, the audit log, and the identity of the program that asks.
// It knows nothing of sessions or sockets: the agent owns one Policy and
// is its facade for the ipc server.
//
// # One decision
//
// Every request that policy can refuse goes through Policy.Decide, which
// never blocks:
//
//	Decide(ctx, Request{Op, Server, Name, Account, Scopes, Secret}) Decision
//
// The caller (WithCaller: transport, uid, pid, executable, WebSocket
// client) and the restricted socket it came through (WithRestriction)
// travel in ctx. The Decision is Allow, Deny (a Kind — restricted, locked,
// deny_rule — and an error wrapping api.ErrDenied or api.ErrLocked, plus
// the audit record of the refusal) or Ask: only the user can decide.
// Policy.Admit is what the agent calls: Decide, the audit record, and for
// Ask the wait for the user's answer (Await). In order, Decide checks:
//
//  1. the restricted socket: tokens for its servers only; no login,
//     logout, secret, approval or lock request (OpManage);
//  2. the lock: no token, login, logout or secret while locked (the
//     management requests, unlock included, are answered);
//  3. the deny rules, against the caller's whole chain: the peer and its
//     parents (principal explains why the parents count);
//  4. for token.get under confirm: allow rules, then a remembered "allow",
//     admit; anything else is Ask.
//
// In-process callers (no Caller, or transport "in-process") pass 3 and 4.
//
// # Approvals
//
// An Ask becomes one pending approval per program identity and server,
// however many requests wait on it; it is answered by the tray, by
// `mcpkey approve` on a terminal (which must echo a code the agent writes
// to that terminal), or by a trusted prompt (polkit), never by the asking
// program or its relatives (approver.go). Answers may be remembered,
// bound to the program's executable content (identity.go). The lock
// refuses every waiting approval and forgets remembered ones.
//
// # Lock
//
// Lock and Unlock are ssh-add -x and -X: an optional passphrase (PBKDF2,
// compared in constant time, backoff after failures), plus locks after
// lock_after_idle and on the desktop's screen lock (lock_linux.go).
// Options.OnLock lets the agent drop its in-memory sessions.
//
// # Audit
//
// The audit log (audit.go) is JSON lines, written by one goroutine so a
// request never waits on the disk, rotated by size; it never carries
// token material.
package policy
