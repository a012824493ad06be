package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// admitSecret decides whether the caller in ctx may read, set or delete
// the static secret name (secret.get: mcpkey exec, bridge and proxy load a
// server's API keys this way; secret.set, secret.delete). It is admit's
// counterpart for secrets, in the same order:
//
//   - a restricted socket serves no secrets (it hands out tokens for its
//     servers only);
//   - a locked agent reads none (ErrLocked);
//   - the deny rules: the top-level ones, and those of every configured
//     server whose headers or env reference "secret:NAME", since reading
//     the secret is using that server.
//
// Approvals (confirm) are for tokens only: a secret has no session to
// approve. Requests without a Caller (in-process calls) are trusted.
func (a *Agent) admitSecret(ctx context.Context, name string) error {
	if r, ok := restrictionFrom(ctx); ok {
		a.audit(ctx, AuditRecord{Event: AuditDenied, Reason: "secret " + name + ": not served by this restricted socket"})
		return fmt.Errorf("%w: this socket serves only tokens for %s", ErrDenied, strings.Join(r.servers, ", "))
	}
	if a.g.locked.Load() {
		return fmt.Errorf("%w: run `mcpkey unlock`", ErrLocked)
	}
	a.g.lastActive.Store(a.now().UnixNano())
	c, ok := CallerFrom(ctx)
	if !ok || c.Transport == "in-process" {
		return nil
	}
	s := a.currentSettings()
	if s == nil {
		return nil
	}
	// Deny rules apply to the caller's whole chain (see principal), read
	// from /proc only when there is a rule.
	denied := func(globs []string) string {
		if len(globs) == 0 {
			return ""
		}
		d, _, _ := a.judge(ctx, c, false)
		return deniedBy(globs, d)
	}
	if exe := denied(s.Deny); exe != "" {
		a.audit(ctx, AuditRecord{Event: AuditDenied, Reason: "deny rule (secret " + name + ")"})
		return fmt.Errorf("%w: %s may not use secret %s (a deny rule in the config matches %s)", ErrDenied, c.Describe(), name, exe)
	}
	for _, srv := range secretUsers(s, name) {
		if exe := denied(s.ApprovalPolicy(srv).Deny); exe != "" {
			a.audit(ctx, AuditRecord{Event: AuditDenied, Server: srv, Reason: "deny rule (secret " + name + ")"})
			return fmt.Errorf("%w: %s may not use secret %s, used by %s (a deny rule in the config matches %s)", ErrDenied, c.Describe(), name, srv, exe)
		}
	}
	return nil
}

// secretUsers lists the configured servers (by name, sorted) whose headers
// or env reference the secret name.
func secretUsers(s *Settings, name string) []string {
	var out []string
	refers := func(m map[string]string) bool {
		for _, v := range m {
			if n, ok := SecretRef(v); ok && n == name {
				return true
			}
		}
		return false
	}
	for key, ss := range s.Servers {
		if refers(ss.Headers) || refers(ss.Env) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}
