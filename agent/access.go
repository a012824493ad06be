package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/policy"
	"github.com/mcpkey/mcpkey/internal/userdirs"
)

// Access control lives in package policy; the Agent is its facade for the
// servers. These names keep the agent's API as it was.
type (
	AuditRecord      = policy.AuditRecord
	AuditOptions     = policy.AuditOptions
	AuditReadOptions = policy.AuditReadOptions
)

// Audit event names (AuditRecord.Event).
const (
	AuditTokenIssued       = policy.AuditTokenIssued
	AuditRefresh           = policy.AuditRefresh
	AuditLogin             = policy.AuditLogin
	AuditImport            = policy.AuditImport
	AuditLogout            = policy.AuditLogout
	AuditApprovalRequested = policy.AuditApprovalRequested
	AuditApprovalAnswered  = policy.AuditApprovalAnswered
	AuditDenied            = policy.AuditDenied
	AuditLock              = policy.AuditLock
	AuditUnlock            = policy.AuditUnlock
)

// Who answers an approval (Settings.Approval, per server too); see package
// config.
const (
	ApprovalPolkit  = config.ApprovalPolkit
	ApprovalTouchID = config.ApprovalTouchID
)

// The request context's caller and restricted socket (package policy).
var (
	WithCaller      = policy.WithCaller
	CallerFrom      = policy.CallerFrom
	WithRestriction = policy.WithRestriction
	DescribeCaller  = policy.DescribeCaller
	ReadAudit       = policy.ReadAudit
)

// DefaultAuditPath is audit.jsonl in the state directory (see
// userdirs.StateDir).
func DefaultAuditPath() (string, error) {
	d, err := userdirs.StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "audit.jsonl"), nil
}

// admit passes a request for the server t through the policy (see
// policy.Policy.Decide): op is "token.get", "session.login" or
// "session.logout".
func (a *Agent) admit(ctx context.Context, op policy.Op, t target, account string, scopes []string) error {
	return a.pol.Admit(ctx, policy.Request{Op: op, Server: t.url, Name: t.settings.Name, Account: account, Scopes: scopes})
}

// Admit asks the policy whether the caller in ctx may make a request that
// names no server or secret: method is a protocol method (socket.add; the
// agent's own methods ask the policy themselves). It answers ErrLocked or
// ErrDenied when not.
func (a *Agent) Admit(ctx context.Context, method string) error {
	return a.pol.Admit(ctx, policy.Request{Op: policy.Op(method)})
}

// Locked reports whether the agent is locked.
func (a *Agent) Locked() bool { return a.pol.Locked() }

// Lock locks the agent, as `ssh-add -x` does: the in-memory sessions are
// dropped (unlock reads them back from the keyring), remembered approvals
// are forgotten, waiting approvals are refused, logins in flight are
// cancelled, and until Unlock every token, login, logout and secret
// request answers ErrLocked. With a passphrase, Unlock requires it.
// Locking a locked agent answers ErrLocked.
func (a *Agent) Lock(ctx context.Context, passphrase string) error {
	return a.pol.Lock(ctx, passphrase)
}

// Unlock unlocks the agent and reads the sessions back from the keyring,
// in the background as at start. A wrong passphrase answers ErrDenied
// after a delay that doubles with each failure (see policy.Policy.Unlock).
func (a *Agent) Unlock(ctx context.Context, passphrase string) error {
	err := a.pol.Unlock(ctx, passphrase, func(ctx context.Context) (int, error) {
		n, err := a.beginLoad(ctx)
		if err != nil {
			return 0, fmt.Errorf("unlock: list sessions: %w", storeErr(err))
		}
		return n, nil
	})
	if err == nil {
		a.wake.nudge() // the refresh scheduler looks at the sessions read back
	}
	return err
}

// dropAll is what a lock takes away: the in-memory sessions (wiped), the
// sessions not read yet, and the logins in flight. It reports how many
// sessions it dropped.
func (a *Agent) dropAll() int {
	a.mu.Lock()
	dropped := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		dropped = append(dropped, s)
	}
	a.sessions = make(map[sessionKey]*session)
	a.pending, a.broken = nil, nil // the loader drops what it reads
	logins := make([]*loginFlight, 0, len(a.logins))
	for _, f := range a.logins {
		logins = append(logins, f)
	}
	a.mu.Unlock()
	for _, f := range logins {
		f.cancel()
	}
	forget(dropped...)
	a.http.releaseMemory()
	return len(dropped)
}

// Approvals lists the approvals waiting for an answer, oldest first.
func (a *Agent) Approvals(ctx context.Context) ([]Approval, error) { return a.pol.Approvals(ctx) }

// Answer answers an approval; see policy.Policy.Answer for who may.
func (a *Agent) Answer(ctx context.Context, ans Answer) (AnswerResult, error) {
	return a.pol.Answer(ctx, ans)
}

// AnswerApproval is Answer for callers that cannot confirm in a terminal
// (the tray, in-process callers); see policy.Policy.AnswerApproval.
func (a *Agent) AnswerApproval(ctx context.Context, id int, d Decision, remember bool) error {
	return a.pol.AnswerApproval(ctx, id, d, remember)
}

// CurrentSettings returns the settings in force (after the last reload).
func (a *Agent) CurrentSettings() *Settings {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.settings
}
