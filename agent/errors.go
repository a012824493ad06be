package agent

import (
	"errors"
	"strings"
)

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
