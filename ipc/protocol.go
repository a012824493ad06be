package ipc

import (
	"errors"
	"fmt"
	"time"

	"github.com/mcpkey/mcpkey/api"
	json "github.com/segmentio/encoding/json"
)

// ProtocolVersion is the major version of the wire protocol this package
// speaks. Additive changes (new methods, new optional fields) keep it; a
// change that breaks an existing client bumps it.
const ProtocolVersion = 1

// DefaultMaxFrame is the largest message a peer may send (1 MiB).
const DefaultMaxFrame = 1 << 20

// Method names (JSON-RPC "method").
const (
	MethodHello           = "agent.hello"
	MethodStatus          = "agent.status"
	MethodSessionsList    = "sessions.list"
	MethodTokenGet        = "token.get"
	MethodSessionLogout   = "session.logout"
	MethodSessionLogin    = "session.login"
	MethodSessionComplete = "session.complete"
	MethodSessionImport   = "session.import"
	MethodEventsSubscribe = "events.subscribe"
	// Static secrets and launcher configuration (SecretBackend).
	MethodSecretSet     = "secret.set"
	MethodSecretGet     = "secret.get"
	MethodSecretList    = "secret.list"
	MethodSecretDelete  = "secret.delete"
	MethodServerResolve = "server.resolve"
	// MethodCancel is a notification (no id) from the client: {id}.
	MethodCancel = "rpc.cancel"

	MethodApprovalsList  = "approvals.list"
	MethodApprovalAnswer = "approval.answer"
	MethodLock           = "agent.lock"
	MethodUnlock         = "agent.unlock"
	MethodSocketAdd      = "socket.add"
	MethodSocketList     = "socket.list"
	MethodSocketRemove   = "socket.remove"
)

// Notification names sent by the server.
const (
	// NotifyLoginProgress carries ProgressParams while a session.login
	// request runs.
	NotifyLoginProgress = "login.progress"
	// NotifyEvent carries EventParams after events.subscribe.
	NotifyEvent = "event"
)

// Standard JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	// CodeCancelled answers a request cancelled by rpc.cancel (the LSP
	// convention); clients that cancelled have stopped waiting for it.
	CodeCancelled = -32800
)

// Application error codes (-32000..-32099). Clients branch on ErrorData.Code,
// the stable string; the numbers are fixed too.
const (
	CodeInternal         = -32000
	CodeNotFound         = -32001
	CodeNeedsLogin       = -32002
	CodeLocked           = -32003
	CodeDenied           = -32004
	CodeStoreUnavailable = -32005
	CodeInvalidReq       = -32006
	CodeTokenRejected    = -32007
	CodeDPoPRequired     = -32008
)

// Stable error code strings (ErrorData.Code).
const (
	ErrCodeNotFound         = "not_found"
	ErrCodeNeedsLogin       = "needs_login"
	ErrCodeLocked           = "locked"
	ErrCodeDenied           = "denied"
	ErrCodeStoreUnavailable = "store_unavailable"
	ErrCodeInvalidRequest   = "invalid_request"
	ErrCodeTokenRejected    = "token_rejected"
	ErrCodeDPoPRequired     = "dpop_required"
	ErrCodeInternal         = "internal"
	ErrCodeCancelled        = "cancelled"
)

// Request is a JSON-RPC 2.0 request or notification (ID absent).
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is a JSON-RPC 2.0 response: exactly one of Result and Error.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Notification is a server-to-client message without an id.
type Notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

// Message is what a peer decodes any incoming line into: request,
// notification or response.
type Message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
}

// Error is a JSON-RPC error object. ipc.Client returns it (or an
// *api.NeedsLoginError) for error replies; errors.Is matches it against
// the agent sentinel named by Data.Code.
type Error struct {
	Code    int        `json:"code"`
	Message string     `json:"message"`
	Data    *ErrorData `json:"data,omitempty"`
}

// ErrorData is the "data" member of application errors.
type ErrorData struct {
	// Code is the stable error string: not_found, needs_login, locked,
	// denied, store_unavailable, invalid_request, token_rejected,
	// dpop_required, internal, cancelled.
	Code string `json:"code"`
	// Server, Account, Scopes and Reason are set for needs_login.
	Server  string   `json:"server,omitempty"`
	Account string   `json:"account,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("agent error %d", e.Code)
	}
	return e.Message
}

// Unwrap returns the agent sentinel for Data.Code, so errors.Is(err,
// api.ErrNotFound) and friends work on client errors.
func (e *Error) Unwrap() error {
	if e.Data == nil {
		if e.Code == CodeInvalidParams || e.Code == CodeInvalidRequest {
			return api.ErrInvalidRequest
		}
		return nil
	}
	return sentinelFor(e.Data.Code)
}

func sentinelFor(code string) error {
	switch code {
	case ErrCodeNotFound:
		return api.ErrNotFound
	case ErrCodeNeedsLogin:
		return api.ErrNeedsLogin
	case ErrCodeLocked:
		return api.ErrLocked
	case ErrCodeDenied:
		return api.ErrDenied
	case ErrCodeStoreUnavailable:
		return api.ErrStoreUnavailable
	case ErrCodeInvalidRequest:
		return api.ErrInvalidRequest
	case ErrCodeTokenRejected:
		return api.ErrTokenRejected
	case ErrCodeDPoPRequired:
		return api.ErrDPoPRequired
	}
	return nil
}

// ErrorFor maps a Backend error to its wire form. Backend errors must be
// secret-free: the message is sent to the client as is.
func ErrorFor(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	var nl *api.NeedsLoginError
	switch {
	case errors.As(err, &nl):
		return &Error{Code: CodeNeedsLogin, Message: err.Error(), Data: &ErrorData{
			Code: ErrCodeNeedsLogin, Server: nl.Server, Account: nl.Account, Scopes: nl.Scopes, Reason: nl.Reason,
		}}
	case errors.Is(err, api.ErrNeedsLogin):
		return appError(CodeNeedsLogin, ErrCodeNeedsLogin, err)
	case errors.Is(err, api.ErrNotFound):
		return appError(CodeNotFound, ErrCodeNotFound, err)
	case errors.Is(err, api.ErrLocked):
		return appError(CodeLocked, ErrCodeLocked, err)
	case errors.Is(err, api.ErrDenied):
		return appError(CodeDenied, ErrCodeDenied, err)
	case errors.Is(err, api.ErrStoreUnavailable):
		return appError(CodeStoreUnavailable, ErrCodeStoreUnavailable, err)
	case errors.Is(err, api.ErrInvalidRequest):
		return appError(CodeInvalidReq, ErrCodeInvalidRequest, err)
	case errors.Is(err, api.ErrTokenRejected):
		return appError(CodeTokenRejected, ErrCodeTokenRejected, err)
	case errors.Is(err, api.ErrDPoPRequired):
		return appError(CodeDPoPRequired, ErrCodeDPoPRequired, err)
	}
	return appError(CodeInternal, ErrCodeInternal, err)
}

func appError(code int, s string, err error) *Error {
	return &Error{Code: code, Message: err.Error(), Data: &ErrorData{Code: s}}
}

// clientError turns a wire error back into a Go error: *api.NeedsLoginError
// for needs_login with details, else the *Error itself.
func clientError(e *Error) error {
	if e.Data != nil && e.Data.Code == ErrCodeNeedsLogin && e.Data.Server != "" {
		return &api.NeedsLoginError{Server: e.Data.Server, Account: e.Data.Account, Scopes: e.Data.Scopes, Reason: e.Data.Reason}
	}
	return e
}

// HelloParams are agent.hello's params. Both fields are optional.
type HelloParams struct {
	// Client names the client ("mcpkey-cli/1.2", "tray").
	Client string `json:"client,omitempty"`
	// ProtocolVersion is the highest major version the client speaks; a
	// version above ProtocolVersion is refused with invalid_request.
	ProtocolVersion int `json:"protocol_version,omitempty"`
}

// HelloResult is agent.hello's result.
type HelloResult struct {
	ProtocolVersion int    `json:"protocol_version"`
	AgentVersion    string `json:"agent_version"`
	// Capabilities lists the method names this agent serves, then the
	// features it supports (Features: "dpop").
	Capabilities []string `json:"capabilities"`
}

// FeatureDPoP in agent.hello's capabilities: token.get takes dpop_method,
// dpop_url and dpop_nonce and answers key-bound sessions with a proof.
const FeatureDPoP = "dpop"

// Features are the non-method capabilities agent.hello announces, after the
// method names.
func Features() []string { return []string{FeatureDPoP} }

// SessionsResult is sessions.list's result.
type SessionsResult struct {
	Sessions []api.SessionInfo `json:"sessions"`
}

// TokenParams are token.get's params. The result is an api.Token.
type TokenParams struct {
	Server        string   `json:"server"`
	Account       string   `json:"account,omitempty"`
	Scopes        []string `json:"scopes,omitempty"`
	MinTTLSeconds int64    `json:"min_ttl_seconds,omitempty"`
	// RejectedToken is the token a resource server answered 401 to.
	RejectedToken string `json:"rejected_token,omitempty"`
	// DPoPMethod and DPoPURL name the request the token is for; a key-bound
	// session answers a proof for it (api.Token.DPoPProof). DPoPNonce is a
	// DPoP-Nonce a resource server just sent (a use_dpop_nonce challenge's,
	// or one on any other response; see NonceRelay).
	DPoPMethod string `json:"dpop_method,omitempty"`
	DPoPURL    string `json:"dpop_url,omitempty"`
	DPoPNonce  string `json:"dpop_nonce,omitempty"`
}

// CompleteParams are session.complete's params; the result is {}.
type CompleteParams struct {
	URL string `json:"url"`
}

// SubscribeResult is events.subscribe's result.
type SubscribeResult struct {
	Subscribed bool `json:"subscribed"`
}

// CancelParams are rpc.cancel's params.
type CancelParams struct {
	ID json.RawMessage `json:"id"`
}

// ProgressParams are login.progress's params.
type ProgressParams struct {
	// ID is the id of the session.login request this progress belongs to.
	ID    json.RawMessage `json:"id"`
	Event api.Event       `json:"event"`
}

// EventParams are event's params.
type EventParams struct {
	Event api.Event `json:"event"`
}

// SecretParams are secret.get's and secret.delete's params. secret.get's
// result is a SecretValue; secret.delete's is {}.
type SecretParams struct {
	Name string `json:"name"`
}

// SecretSetParams are secret.set's params; the result is {}. The value
// travels only over the agent's socket.
type SecretSetParams struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SecretValue is secret.get's result.
type SecretValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SecretListResult is secret.list's result: names only.
type SecretListResult struct {
	Names []string `json:"names"`
}

// ResolveParams are server.resolve's params.
type ResolveParams struct {
	Server string `json:"server"`
}

// ResolveResult is server.resolve's result: the server's launch
// configuration, with secret references, never values.
type ResolveResult struct {
	api.ServerConfig
	// LoginWaitSeconds is how long launchers wait for a login.
	LoginWaitSeconds int64 `json:"login_wait_seconds"`
}

// ApprovalsResult is approvals.list's result.
type ApprovalsResult struct {
	Approvals []api.Approval `json:"approvals"`
}

// AnswerParams are approval.answer's params: id, decision (allow_once,
// allow (remembered) or deny), remember (a deny holds for the server's
// remember time too) and code (the one-time code the agent wrote to the
// answering terminal). The result is an api.AnswerResult: an allow from
// a terminal first answers {"confirm_in_terminal": true}.
type AnswerParams = api.Answer

// LockParams are agent.lock's and agent.unlock's params; the result is {}.
// The passphrase travels only over the socket, never argv.
type LockParams struct {
	Passphrase string `json:"passphrase,omitempty"`
}

// SocketAddParams are socket.add's params; the result is a
// RestrictedSocket.
type SocketAddParams struct {
	Servers []string `json:"servers"`
	Path    string   `json:"path,omitempty"`
	// TTL is a Go duration ("8h"); absent means as long as the agent runs.
	TTL string `json:"ttl,omitempty"`
}

// SocketsResult is socket.list's result.
type SocketsResult struct {
	Sockets []RestrictedSocket `json:"sockets"`
}

// SocketRemoveParams are socket.remove's params; the result is {}.
type SocketRemoveParams struct {
	Path string `json:"path"`
}

// RestrictedSocket is an extra socket, served by the same agent, that
// answers only agent.hello and token.get, and token.get only for Servers.
// It is made for forwarding to another machine (ssh -R): a program there
// gets short-lived access tokens for chosen servers, and nothing else.
type RestrictedSocket struct {
	Path string `json:"path"`
	// Servers are configured names or URLs.
	Servers []string `json:"servers"`
	// ExpiresAt is when the socket is removed (zero: with the agent).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// FromConfig marks sockets declared by [[restricted_socket]] tables;
	// config reloads manage them.
	FromConfig bool `json:"from_config,omitempty"`
}
