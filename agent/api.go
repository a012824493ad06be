package agent

import (
	"context"

	"github.com/mcpkey/mcpkey/api"
)

// The agent's API types live in package api, which imports only the
// standard library, so that a client links them without the agent. These
// aliases keep the agent's own names.
type (
	SessionState       = api.SessionState
	SessionInfo        = api.SessionInfo
	TokenRequest       = api.TokenRequest
	Token              = api.Token
	LoginRequest       = api.LoginRequest
	Status             = api.Status
	EventKind          = api.EventKind
	Event              = api.Event
	Caller             = api.Caller
	Process            = api.Process
	LogoutRequest      = api.LogoutRequest
	LogoutResult       = api.LogoutResult
	ServerConfig       = api.ServerConfig
	Decision           = api.Decision
	Approval           = api.Approval
	Answer             = api.Answer
	AnswerResult       = api.AnswerResult
	NeedsLoginError    = api.NeedsLoginError
	TokenRejectedError = api.TokenRejectedError
)

const (
	StateReady       = api.StateReady
	StateRefreshing  = api.StateRefreshing
	StateNeedsLogin  = api.StateNeedsLogin
	StateAuthorizing = api.StateAuthorizing
	StateError       = api.StateError
	StateBroken      = api.StateBroken

	EventSessionChanged    = api.EventSessionChanged
	EventSessionRemoved    = api.EventSessionRemoved
	EventLoginNeeded       = api.EventLoginNeeded
	EventLoginProgress     = api.EventLoginProgress
	EventLoginFinished     = api.EventLoginFinished
	EventLocked            = api.EventLocked
	EventUnlocked          = api.EventUnlocked
	EventConfigReloaded    = api.EventConfigReloaded
	EventApprovalRequested = api.EventApprovalRequested
	EventApprovalAnswered  = api.EventApprovalAnswered

	DecisionAllowOnce = api.DecisionAllowOnce
	DecisionAllow     = api.DecisionAllow
	DecisionDeny      = api.DecisionDeny
	DecisionTimeout   = api.DecisionTimeout
	DecisionCancelled = api.DecisionCancelled
	DecisionLocked    = api.DecisionLocked
	DecisionFailed    = api.DecisionFailed
)

// Token types (see api.Token.TokenType).
const (
	TokenTypeDPoP   = api.TokenTypeDPoP
	TokenTypeBearer = api.TokenTypeBearer
)

// Sentinel errors (see package api for their contracts).
var (
	ErrNotFound         = api.ErrNotFound
	ErrNeedsLogin       = api.ErrNeedsLogin
	ErrLocked           = api.ErrLocked
	ErrDenied           = api.ErrDenied
	ErrStoreUnavailable = api.ErrStoreUnavailable
	ErrInvalidRequest   = api.ErrInvalidRequest
	ErrTokenRejected    = api.ErrTokenRejected
	ErrDPoPRequired     = api.ErrDPoPRequired
)

type callerKey struct{}

// callerValue is what WithCaller attaches: the caller and the memo of what
// policy learnt about it from /proc (see Agent.judge), kept for the life of
// the context.
type callerValue struct {
	c    Caller
	memo *callerMemo
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, callerValue{c, new(callerMemo)})
}

// CallerFrom returns the caller attached by WithCaller.
func CallerFrom(ctx context.Context) (Caller, bool) {
	v, ok := ctx.Value(callerKey{}).(callerValue)
	return v.c, ok
}

// memoFrom returns the memo WithCaller made for ctx's caller, nil if none.
func memoFrom(ctx context.Context) *callerMemo {
	v, _ := ctx.Value(callerKey{}).(callerValue)
	return v.memo
}
