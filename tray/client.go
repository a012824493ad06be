package tray

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/ipc"
)

// agentAPI is the part of the agent's protocol the tray uses: the tray is an
// ordinary client and never touches tokens or the keyring itself.
type agentAPI interface {
	Status(ctx context.Context) (api.Status, error)
	Sessions(ctx context.Context) ([]api.SessionInfo, error)
	Watch(ctx context.Context) (<-chan api.Event, error)
	Login(ctx context.Context, req api.LoginRequest, progress func(api.Event)) (api.SessionInfo, error)
	Logout(ctx context.Context, req api.LogoutRequest) (api.LogoutResult, error)

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

// client adapts *ipc.Client to agentAPI.
type client struct{ *ipc.Client }

var _ agentAPI = client{}

// Lock locks without a passphrase: the tray has no way to type one; `mcpkey
// lock` sets one.
func (c client) Lock(ctx context.Context) error { return c.Client.Lock(ctx, "") }

// Unlock unlocks a lock set without a passphrase (one set with `mcpkey lock
// --passphrase` answers api.ErrDenied).
func (c client) Unlock(ctx context.Context) error { return c.Client.Unlock(ctx, "") }

func (c client) Approvals(ctx context.Context) ([]Approval, error) {
	as, err := c.Client.Approvals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Approval, 0, len(as))
	for _, a := range as {
		prog := cmp.Or(a.Caller.Exe, a.Caller.Client)
		out = append(out, Approval{ID: strconv.Itoa(a.ID), Program: prog, PID: a.Caller.PID, Server: a.Server, Name: a.Name,
			Account: a.Account, Scopes: a.Scopes, Remember: time.Duration(a.RememberSeconds) * time.Second, Via: a.Via})
	}
	return out, nil
}

func (c client) Answer(ctx context.Context, id string, d Decision) error {
	n, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("approval %q: %w", id, api.ErrInvalidRequest)
	}
	switch d {
	case AllowOnce:
		return c.AnswerApproval(ctx, n, api.DecisionAllowOnce, false)
	case AllowRemember:
		return c.AnswerApproval(ctx, n, api.DecisionAllow, true)
	}
	return c.AnswerApproval(ctx, n, api.DecisionDeny, false)
}

// Capable asks agent.hello which methods the agent serves.
func (c client) Capable(ctx context.Context) (lock, approve bool) {
	r, err := c.Hello(ctx)
	if err != nil {
		return false, false
	}
	return slices.Contains(r.Capabilities, ipc.MethodLock), slices.Contains(r.Capabilities, ipc.MethodApprovalsList)
}
