// Package api holds the types the mcpkey agent and its clients share: the
// requests and results of its methods (TokenRequest, Token, LoginRequest,
// SessionInfo, Status, …), events (Event and its kinds), the caller a
// request comes from, approvals, and the sentinel errors callers branch on
// with errors.Is (ErrNeedsLogin, ErrLocked, …) with their typed forms
// (*NeedsLoginError, *TokenRejectedError).
//
// It imports only the standard library. Package agent uses these types under
// its own names (agent.Token is api.Token); package ipc sends them over the
// socket and its Client returns them, so a client links api and ipc, never
// the agent.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
)

// SessionState is where a session stands.
type SessionState string

const (
	// StateReady: an access token is held and valid (or refreshable).
	StateReady SessionState = "ready"
	// StateRefreshing: a refresh is in flight.
	StateRefreshing SessionState = "refreshing"
	// StateNeedsLogin: the grant is gone (invalid_grant, logout on the AS,
	// step-up required); only a new login helps.
	StateNeedsLogin SessionState = "needs_login"
	// StateAuthorizing: a login is in flight.
	StateAuthorizing SessionState = "authorizing"
	// StateError: the last refresh failed for a transient reason (network,
	// 5xx); credentials are kept and retried with backoff.
	StateError SessionState = "error"
	// StateBroken: the stored session cannot be read (a corrupt item);
	// Error names the item. Logout removes it, a login replaces it.
	StateBroken SessionState = "broken"
)

// SessionInfo is the non-secret view of a session: what sessions.list and the
// tray show. It never carries token material.
type SessionInfo struct {
	// Server is the canonical MCP server (resource) URL, exactly as its
	// Protected Resource Metadata names it.
	Server string `json:"server"`
	// Name is the configured name for Server, if any.
	Name string `json:"name,omitempty"`
	// Account is the label that tells several sessions of one server apart
	// ("" is the default account).
	Account  string       `json:"account"`
	Issuer   string       `json:"issuer"`
	ClientID string       `json:"client_id"`
	Scopes   []string     `json:"scopes"`
	State    SessionState `json:"state"`
	// Error says why State is StateError or StateNeedsLogin; it never
	// contains secrets.
	Error      string    `json:"error,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
	ObtainedAt time.Time `json:"obtained_at"`
	HasRefresh bool      `json:"has_refresh_token"`
	// DPoP: the session's tokens are bound to a key the agent holds (RFC
	// 9449); token.get needs the request's method and URL and answers a
	// proof with the token.
	DPoP         bool   `json:"dpop,omitempty"`
	StoreBackend string `json:"store_backend"`
	// Grant is how the session gets its tokens: GrantAuthorizationCode
	// ("", a person signs in through the browser), GrantClientCredentials,
	// GrantJWTBearer (workload identity) or GrantEnterprise (identity
	// assertion). Sessions of the last three have no refresh token: the
	// agent runs the grant again when the token nears expiry.
	Grant string `json:"grant,omitempty"`
	// ID is the stored session's id, set for a broken session: when its
	// metadata is unreadable too, it is the only name logout can use.
	ID string `json:"id,omitempty"`
}

// TokenRequest asks for an access token for one server.
type TokenRequest struct {
	// Server is a configured name or a URL.
	Server string `json:"server"`
	// Account selects a session when there are several ("" = default).
	Account string `json:"account,omitempty"`
	// Scopes the token must carry. A session lacking one of them answers
	// ErrNeedsLogin with the union of scopes a step-up login must ask for.
	Scopes []string `json:"scopes,omitempty"`
	// MinTTL is the least remaining lifetime the caller accepts; a token
	// expiring sooner is refreshed first.
	MinTTL time.Duration `json:"-"`
	// RejectedToken is the access token a resource server just answered 401
	// to. When it is still the session's current token the agent refreshes
	// (once, however many callers report it); otherwise the newer token is
	// returned. Never logged.
	RejectedToken string `json:"-"`
	// DPoPMethod and DPoPURL are the HTTP method and URL of the request the
	// token is for. A key-bound (DPoP, RFC 9449) session needs them: the
	// agent signs a fresh proof for exactly that request (htu is the URL
	// without query and fragment). Bearer sessions ignore them.
	DPoPMethod string `json:"-"`
	DPoPURL    string `json:"-"`
	// DPoPNonce is a DPoP-Nonce a resource server just sent (with a
	// use_dpop_nonce challenge, or on any other response: RFC 9449 §9);
	// the proof carries it (and the agent remembers it for the URL's
	// origin).
	DPoPNonce string `json:"-"`
}

// Token is an access token handed to a local caller.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	Scopes      []string  `json:"scopes"`
	Server      string    `json:"server"`
	Account     string    `json:"account"`
	// DPoPProof is set for a key-bound session (TokenType "DPoP"): a fresh
	// proof (RFC 9449 §4) for the request named by TokenRequest.DPoPMethod
	// and DPoPURL, signed by the session's key, which never leaves the
	// agent. Send it as the DPoP header with "Authorization: DPoP
	// <AccessToken>". Each proof has its own jti: use it once.
	DPoPProof string `json:"dpop_proof,omitempty"`
}

// TokenTypeDPoP is Token.TokenType of a key-bound session; TokenTypeBearer
// of the others.
const (
	TokenTypeDPoP   = "DPoP"
	TokenTypeBearer = "Bearer"
)

// KeyBound reports whether t is DPoP-bound (needs its proof on each request).
func (t Token) KeyBound() bool { return strings.EqualFold(t.TokenType, TokenTypeDPoP) }

// LogValue keeps the token out of logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server", t.Server), slog.String("account", t.Account),
		slog.Time("expires_at", t.ExpiresAt), slog.String("access_token", "REDACTED"))
}

// LoginRequest asks the agent to run (or join) an OAuth login; it is
// session.login's params on the wire too.
type LoginRequest struct {
	Server  string   `json:"server"`
	Account string   `json:"account,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	// NoBrowser: do not open a browser; the caller is shown the URL (and a
	// device code when the AS supports RFC 8628) and may paste the redirect
	// URL back through PasteRedirect.
	NoBrowser bool `json:"no_browser,omitempty"`
	// ClientID and ClientSecret pre-register a client for this login. The
	// secret travels only over the agent's socket, never argv.
	ClientID          string `json:"client_id,omitempty"`
	ClientSecret      string `json:"client_secret,omitempty"`
	ClientMetadataURL string `json:"client_metadata_url,omitempty"`
	// DPoP, when set, decides whether this login asks for key-bound (RFC
	// 9449) tokens, over the server's dpop setting and what it asks for.
	DPoP *bool `json:"dpop,omitempty"`
	// Grant chooses a grant without a browser (GrantClientCredentials,
	// GrantJWTBearer, GrantEnterprise); "" is the configured one, else the
	// browser sign-in. See GrantLogin for its parameters.
	Grant GrantLogin `json:"grant,omitzero"`
	// Env is the caller's $BROWSER, $DISPLAY and $WAYLAND_DISPLAY for the
	// browser this login opens (see agent/browser), as gpg-agent's
	// updatestartuptty does for pinentry. The agent uses it only from a
	// peer of its own uid on its main socket: the ipc server clears it for
	// restricted sockets and the WebSocket.
	Env BrowserEnv `json:"env,omitzero"`
}

// ImportRequest hands the agent a session another tool obtained and kept
// in a plain file (mcpkey import mcp-remote): its tokens and the client
// they were issued to. The agent discovers the server's authorization
// server, checks the refresh token with one refresh, and stores the
// session as a login's result; the tokens travel only over the agent's
// socket, never argv or logs.
type ImportRequest struct {
	Server  string `json:"server"`
	Account string `json:"account,omitempty"`
	// From names the tool the session comes from ("mcp-remote"), for the
	// agent's log and audit trail.
	From         string         `json:"from,omitempty"`
	AccessToken  string         `json:"access_token,omitempty"`
	RefreshToken string         `json:"refresh_token"`
	TokenType    string         `json:"token_type,omitempty"`
	ExpiresAt    time.Time      `json:"expires_at"`
	Scopes       []string       `json:"scopes,omitempty"`
	Client       ImportedClient `json:"client"`
}

// ImportedClient is the OAuth client an imported session's tokens were
// issued to (the other tool's registration).
type ImportedClient struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// Issuer is the authorization server the client was registered with,
	// when the tool recorded it; the agent refuses the import when
	// discovery names another one.
	Issuer string `json:"issuer,omitempty"`
}

// LogValue keeps the tokens and the client secret out of logs.
func (r ImportRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server", r.Server), slog.String("account", r.Account),
		slog.String("from", r.From), slog.String("client_id", r.Client.ClientID), slog.String("tokens", "REDACTED"))
}

// Status describes the agent.
type Status struct {
	Version      string `json:"version"`
	PID          int    `json:"pid"`
	StoreBackend string `json:"store_backend"`
	// StoreNotice is what the user should know about the store, such as
	// store.KeyctlNotice when auto fell back to the kernel keyring.
	StoreNotice string `json:"store_notice,omitempty"`
	// StoreUsage is how much of its quota the store uses, where it has one
	// (the kernel keyring): "1585 of 20000 bytes and 9 of 200 keys in use".
	StoreUsage string `json:"store_usage,omitempty"`
	Locked     bool   `json:"locked"`
	Sessions   int    `json:"sessions"`
	NeedsLogin int    `json:"needs_login"`
	// Broken counts stored sessions that cannot be read; Loading those
	// not read yet (the agent reads them in the background after start).
	Broken int `json:"broken,omitempty"`
	// KeyBound counts the sessions whose tokens are bound to a key the
	// agent holds (DPoP).
	KeyBound      int       `json:"key_bound,omitempty"`
	Loading       int       `json:"loading,omitempty"`
	Started       time.Time `json:"started"`
	Socket        string    `json:"socket,omitempty"`
	WebSocketURL  string    `json:"websocket_url,omitempty"`
	ConfigPath    string    `json:"config_path,omitempty"`
	ConfigError   string    `json:"config_error,omitempty"`
	PendingLogins int       `json:"pending_logins"`
	// Grants counts the sessions by grant without a browser
	// (SessionInfo.Grant: client_credentials, jwt_bearer, enterprise).
	Grants map[string]int `json:"grants,omitempty"`
}

// EventKind names an event.
type EventKind string

const (
	EventSessionChanged EventKind = "session.changed"
	EventSessionRemoved EventKind = "session.removed"
	EventLoginNeeded    EventKind = "login.needed"
	EventLoginProgress  EventKind = "login.progress"
	EventLoginFinished  EventKind = "login.finished"
	EventLocked         EventKind = "agent.locked"
	EventUnlocked       EventKind = "agent.unlocked"
	EventConfigReloaded EventKind = "config.reloaded"
)

// Event is published to subscribers (events.subscribe) and, for login
// progress, to the callers of a login.
type Event struct {
	Kind    EventKind    `json:"kind"`
	Time    time.Time    `json:"time"`
	Server  string       `json:"server,omitempty"`
	Account string       `json:"account,omitempty"`
	Session *SessionInfo `json:"session,omitempty"`
	// Message is human-readable progress ("discovering https://…").
	Message string `json:"message,omitempty"`
	// URL is set on the login progress step that opens (or would open) the
	// browser, so a headless caller can show it.
	URL string `json:"url,omitempty"`
	// ShowURL: the agent could not open a browser; the caller should show
	// URL for the user to open (callers branch on it, never on Message).
	ShowURL bool `json:"show_url,omitempty"`
	// UserCode is set when a device authorization grant is in use.
	UserCode string `json:"user_code,omitempty"`
	Error    string `json:"error,omitempty"`
	// Approval is set on EventApprovalRequested and EventApprovalAnswered.
	Approval *Approval `json:"approval,omitempty"`
}

// Caller identifies the local process on the other end of a request. The ipc
// server attaches it to the request context (agent.WithCaller).
type Caller struct {
	Transport string `json:"transport"` // "unix", "websocket", "proxy", "in-process"
	UID       int    `json:"uid"`
	PID       int    `json:"pid"`
	Exe       string `json:"exe,omitempty"`
	// Cmdline and Parents describe the process further (Linux: /proc);
	// they are filled in when an approval needs them (see DescribeCaller),
	// so the token hot path never reads /proc.
	Cmdline []string  `json:"cmdline,omitempty"`
	Parents []Process `json:"parents,omitempty"`
	// Client names a WebSocket or proxy client by the secret it presented
	// (such as "ws"); those callers have no pid.
	Client string `json:"client,omitempty"`

	// FindPID, for transports without peer credentials (the WebSocket),
	// finds the peer's pid when policy needs it (a deny rule, an approval);
	// it may be costly (a walk of /proc) and is called once per context
	// WithCaller made. 0: not found.
	FindPID func() int `json:"-"`
}

// Describe is a one-line human description: "/usr/bin/python3 (pid 42)".
func (c Caller) Describe() string {
	name := c.Exe
	if name == "" {
		name = "unknown program"
		if c.Client != "" {
			name = c.Client
		}
	}
	var b strings.Builder
	b.WriteString(name)
	if c.PID > 0 {
		fmt.Fprintf(&b, " (pid %d)", c.PID)
	} else if c.Transport != "" && c.Transport != "unix" {
		fmt.Fprintf(&b, " (%s)", c.Transport)
	}
	return b.String()
}

// LogoutRequest removes a session; it is session.logout's params on the
// wire too.
type LogoutRequest struct {
	Server  string `json:"server"`
	Account string `json:"account,omitempty"`
	// KeepRemote skips RFC 7009 revocation at the authorization server.
	KeepRemote bool `json:"keep_remote,omitempty"`
	// ForgetClient also deletes the client registration stored for the
	// session's issuer, so that the next login registers again (for a
	// registration the server forgot, or one to start over with).
	ForgetClient bool `json:"forget_client,omitempty"`
	// ForgetIdP also deletes the sign-in at the identity provider of an
	// enterprise session (every server of that IdP then needs the browser
	// sign-in again).
	ForgetIdP bool `json:"forget_idp,omitempty"`
}

// LogoutResult says what a logout did.
type LogoutResult struct {
	Server  string `json:"server"`
	Account string `json:"account"`
	// Revoked is true when the refresh token was revoked at the AS.
	Revoked bool `json:"revoked"`
	// RevokeError explains a failed or skipped revocation (local removal
	// still happened).
	RevokeError string `json:"revoke_error,omitempty"`
	// ForgotClient is the issuer whose stored client registration was
	// deleted (ForgetClient), "" when none was.
	ForgotClient string `json:"forgot_client,omitempty"`
	// ForgotIdP is the identity provider whose sign-in was deleted
	// (ForgetIdP), "" when none was.
	ForgotIdP string `json:"forgot_idp,omitempty"`
}

// ServerConfig is what a launcher (mcpkey bridge, exec, proxy) needs to know
// about one server: where it is and which stored secrets it references. It
// carries references ("secret:NAME", "token"), never secret values.
type ServerConfig struct {
	// Name is the configured name ("" for a server named by URL only).
	Name string `json:"name,omitempty"`
	// URL is the MCP endpoint as configured (or as given).
	URL string `json:"url"`
	// Resource is URL's canonical form: the session key and token audience.
	Resource string `json:"resource"`
	// Account is the configured default account label.
	Account string `json:"account,omitempty"`
	// Headers maps request header names to "secret:NAME" references.
	Headers map[string]string `json:"headers,omitempty"`
	// Env maps environment variables to "token" or "secret:NAME".
	Env map[string]string `json:"env,omitempty"`
	// LoginWait is how long a launcher waits for a login (the config's
	// login_wait, or DefaultLoginWait).
	LoginWait time.Duration `json:"-"`
}

// BrowserEnv is what a login's caller passes for its browser; empty fields
// leave the agent's own value.
type BrowserEnv struct {
	Browser        string `json:"BROWSER,omitempty"`
	Display        string `json:"DISPLAY,omitempty"`
	WaylandDisplay string `json:"WAYLAND_DISPLAY,omitempty"`
}

// IsZero reports whether e sets nothing.
func (e BrowserEnv) IsZero() bool { return e == BrowserEnv{} }

// Process is one process in a caller's parent chain.
type Process struct {
	PID     int      `json:"pid"`
	Exe     string   `json:"exe,omitempty"`
	Cmdline []string `json:"cmdline,omitempty"`
}

// Approval events.
const (
	// EventApprovalRequested: a request waits for the user's approval;
	// Event.Approval says who asks for what.
	EventApprovalRequested EventKind = "approval.requested"
	// EventApprovalAnswered: an approval was answered, timed out or
	// withdrawn; Event.Approval.Decision says which.
	EventApprovalAnswered EventKind = "approval.answered"
)

// Decision answers an approval.
type Decision string

const (
	// DecisionAllowOnce admits the waiting requests only.
	DecisionAllowOnce Decision = "allow_once"
	// DecisionAllow admits them and remembers the program for the server's
	// remember time.
	DecisionAllow Decision = "allow"
	// DecisionDeny refuses the waiting requests (remembered when asked to).
	DecisionDeny Decision = "deny"
	// The agent's own outcomes, seen in EventApprovalAnswered and the
	// audit log, never accepted from a client.
	DecisionTimeout   Decision = "timeout"
	DecisionCancelled Decision = "cancelled" // every waiting request went away
	DecisionLocked    Decision = "locked"    // the agent was locked
	// DecisionFailed: the trusted prompt the policy names (polkit) could
	// not ask; the request is refused (fail closed).
	DecisionFailed Decision = "failed"
)

// Approval is a question to the user: may this program have a token for
// this server? Requests from the same program for the same server that wait
// at once share one Approval.
type Approval struct {
	ID      int      `json:"id"`
	Server  string   `json:"server"`
	Name    string   `json:"name,omitempty"`
	Account string   `json:"account"`
	Scopes  []string `json:"scopes,omitempty"`
	// Caller is the program that asks: path, pid, command line and parent
	// chain where the platform tells them.
	Caller    Caller    `json:"caller"`
	Requested time.Time `json:"requested"`
	// Deadline is when the waiting requests are refused unanswered.
	Deadline time.Time `json:"deadline"`
	// RememberSeconds is how long an "allow" answer holds.
	RememberSeconds int64 `json:"remember_seconds"`
	// Waiting is how many requests wait on this approval.
	Waiting int `json:"waiting"`
	// Decision is set once answered (EventApprovalAnswered).
	Decision Decision `json:"decision,omitempty"`
	// Via names the trusted prompt that alone may allow this request
	// ("polkit", "touchid"); empty for the tray or a terminal.
	Via string `json:"via,omitempty"`
}

// AnswerResult is what approval.answer returns.
type AnswerResult struct {
	// ConfirmInTerminal: the agent wrote the request and a code to the
	// answering terminal; answer again with that code (Answer.Code).
	ConfirmInTerminal bool `json:"confirm_in_terminal,omitempty"`
}

// Answer answers one approval.
type Answer struct {
	ID       int      `json:"id"`
	Decision Decision `json:"decision"`
	Remember bool     `json:"remember,omitempty"`
	// Code is the one-time code the agent wrote to the answering terminal.
	Code string `json:"code,omitempty"`
}

// Sentinel errors. Callers branch on them with errors.Is; the ipc layer maps
// each to a stable wire code and ipc.Client maps it back. Their messages never
// contain secrets.
var (
	// ErrNotFound: no such server or session.
	ErrNotFound = errors.New("not found")
	// ErrNeedsLogin: no usable grant; a login is needed. See *NeedsLoginError.
	ErrNeedsLogin = errors.New("login needed")
	// ErrLocked: the agent is locked.
	ErrLocked = errors.New("agent is locked")
	// ErrDenied: the caller was refused.
	ErrDenied = errors.New("denied")
	// ErrStoreUnavailable: the credential store could not be reached in time.
	ErrStoreUnavailable = errors.New("credential store unavailable")
	// ErrInvalidRequest: the request itself is wrong (bad URL, bad flag).
	ErrInvalidRequest = errors.New("invalid request")
)

// ErrDPoPRequired: the session is key-bound (DPoP) and the token request did
// not name the HTTP method and URL the token is for, so no proof could be
// signed and the token alone would be useless.
var ErrDPoPRequired = errors.New("this session's tokens are bound to a key the agent holds (DPoP): pass the request's HTTP method and URL to get a token with a proof")

// NeedsLoginError says which login would fix a token request.
type NeedsLoginError struct {
	Server  string
	Account string
	// Scopes a (step-up) login must request: the union of what the session
	// holds and what was asked for.
	Scopes []string
	// Reason is a short human explanation ("no session", "refresh token
	// rejected by the authorization server", "scope mcp:write not granted").
	Reason string
}

func (e *NeedsLoginError) Error() string {
	var b strings.Builder
	b.WriteString("login needed for ")
	b.WriteString(e.Server)
	if e.Account != "" {
		b.WriteString(" (account " + e.Account + ")")
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNeedsLogin) true.
func (e *NeedsLoginError) Is(target error) bool { return target == ErrNeedsLogin }

// ErrTokenRejected: the resource server keeps rejecting freshly issued
// tokens; another login would not help. See *TokenRejectedError.
var ErrTokenRejected = errors.New("the server rejected a freshly issued token")

// TokenRejectedError is ErrTokenRejected for one server.
type TokenRejectedError struct {
	Server string
}

func (e *TokenRejectedError) Error() string {
	return e.Server + ": the server rejected a freshly issued token; its audience may not match " +
		"(see resource_as_audience, https://github.com/mcpkey/mcpkey#audience)"
}

// Is makes errors.Is(err, ErrTokenRejected) true.
func (e *TokenRejectedError) Is(target error) bool { return target == ErrTokenRejected }

// MaxSecretSize is the largest static secret the agent stores (64 KiB).
const MaxSecretSize = 64 << 10

// Printable replaces control characters (terminal escapes among them) in
// s, so text a caller controls (its command line) can be shown on a
// terminal.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}
