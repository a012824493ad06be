package server

import (
	"context"

	"github.com/mcpkey/mcpkey/agent"
)

// Backend is the part of *agent.Agent the server calls. Every method gets the
// request's context, which carries the agent.Caller (see agent.WithCaller) and
// is cancelled when the client disconnects or cancels the request.
type Backend interface {
	Status(ctx context.Context) (agent.Status, error)
	Sessions(ctx context.Context) ([]agent.SessionInfo, error)
	Token(ctx context.Context, req agent.TokenRequest) (agent.Token, error)
	Logout(ctx context.Context, req agent.LogoutRequest) (agent.LogoutResult, error)
	// Login runs or joins the login for (server, account); progress is called
	// with EventLoginProgress events for this caller until Login returns.
	Login(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error)
	// CompleteLogin hands a pasted redirect URL (headless login) to the flow
	// whose state it carries.
	CompleteLogin(ctx context.Context, redirectURL string) error
	// Subscribe returns a channel of events that is closed when ctx ends or
	// when the subscriber falls too far behind (slow subscribers are dropped,
	// never allowed to block the agent).
	Subscribe(ctx context.Context) <-chan agent.Event
}

// ImportBackend is the optional part of a Backend that adopts sessions
// other tools kept in plain files (session.import). A Backend without it
// answers that method with method-not-found.
type ImportBackend interface {
	Import(ctx context.Context, req agent.ImportRequest) (agent.SessionInfo, error)
}

// SecretBackend is the optional part of a Backend that serves static
// secrets and launcher configuration (secret.*, server.resolve). A Backend
// without it answers those methods with "method not found".
type SecretBackend interface {
	SetSecret(ctx context.Context, name string, value []byte) error
	Secret(ctx context.Context, name string) ([]byte, error)
	Secrets(ctx context.Context) ([]string, error)
	DeleteSecret(ctx context.Context, name string) error
	ResolveServer(ctx context.Context, server string) (agent.ServerConfig, error)
}

// PolicyBackend is the optional part of a Backend that serves approvals and
// the lock (approvals.list, approval.answer, agent.lock, agent.unlock). A
// Backend without it answers those methods with method-not-found.
type PolicyBackend interface {
	Approvals(ctx context.Context) ([]agent.Approval, error)
	Answer(ctx context.Context, ans agent.Answer) (agent.AnswerResult, error)
	Lock(ctx context.Context, passphrase string) error
	Unlock(ctx context.Context, passphrase string) error
	// Admit asks the agent's policy about a request the server serves
	// itself (socket.add): nil, or why not (locked, denied).
	Admit(ctx context.Context, method string) error
}
