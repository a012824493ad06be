package agent

import "github.com/mcpkey/mcpkey/api"

// The agent's API types live in package api, which imports only the
// standard library, so that a client links them without the agent. These
// aliases keep the agent's own names.
type (
	SessionInfo        = api.SessionInfo
	TokenRequest       = api.TokenRequest
	Token              = api.Token
	LoginRequest       = api.LoginRequest
	ImportRequest      = api.ImportRequest
	ImportedClient     = api.ImportedClient
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
	StateReady      = api.StateReady
	StateRefreshing = api.StateRefreshing
	StateNeedsLogin = api.StateNeedsLogin
	StateError      = api.StateError
	StateBroken     = api.StateBroken

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
