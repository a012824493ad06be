package tray

import (
	"context"
	"errors"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// agentAPI is the part of the agent's protocol the tray uses: the tray is an
// ordinary client and never touches tokens or the keyring itself.
type agentAPI interface {
	Status(ctx context.Context) (agent.Status, error)
	Sessions(ctx context.Context) ([]agent.SessionInfo, error)
	Watch(ctx context.Context) (<-chan agent.Event, error)
	Login(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error)
	Logout(ctx context.Context, req agent.LogoutRequest) (agent.LogoutResult, error)

	// Lock and Unlock lock and unlock the agent (agent.lock, agent.unlock).
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
	// Approvals lists the pending approvals (approvals.list); Answer
	// answers one (approval.answer).
	Approvals(ctx context.Context) ([]Approval, error)
	Answer(ctx context.Context, id string, d Decision) error
	// Capable reports whether the agent serves the lock and approval
	// methods (from agent.hello's capabilities).
	Capable(ctx context.Context) (lock, approve bool)
}

// errNotServed is what the lock and approval calls return while the agent
// (or ipc.Client) does not offer them.
var errNotServed = errors.New("not supported by this agent")

// client adapts *ipc.Client to agentAPI.
type client struct{ *ipc.Client }

var _ agentAPI = client{}

func (c client) Lock(ctx context.Context) error   { return errNotServed }
func (c client) Unlock(ctx context.Context) error { return errNotServed }

func (c client) Approvals(ctx context.Context) ([]Approval, error) { return nil, errNotServed }

func (c client) Answer(ctx context.Context, id string, d Decision) error { return errNotServed }

func (c client) Capable(ctx context.Context) (lock, approve bool) {
	return false, false
}
