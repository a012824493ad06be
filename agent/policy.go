package agent

import "context"

// admit decides whether the caller in ctx may do op ("token.get",
// "session.login", "session.logout") for the server t.url with these
// scopes. It is the single access-control point of the agent: lock state,
// the approval policy (confirm/allow/deny), and the audit trail hang here.
func (a *Agent) admit(ctx context.Context, op string, t target, account string, scopes []string) error {
	return nil
}
