package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/api"
)

// decideSecret is Decide's deny rules for a static secret (secret.get:
// mcpkey exec, bridge and proxy load a server's API keys this way;
// secret.set, secret.delete): the top-level rules, and those of every
// configured server whose headers or env reference "secret:NAME", since
// reading the secret is using that server. Approvals (confirm) are for
// tokens only: a secret has no session to approve.
func (po *Policy) decideSecret(ctx context.Context, c Caller, req Request) Decision {
	s := po.opts.Settings()
	if s == nil {
		return Decision{Verdict: Allow}
	}
	name := req.Secret
	// Deny rules apply to the caller's whole chain (see principal), read
	// from /proc only when there is a rule.
	denied := func(globs []string) string {
		if len(globs) == 0 {
			return ""
		}
		d, _, _ := po.judge(ctx, c, false)
		return deniedBy(globs, d)
	}
	if exe := denied(s.Deny); exe != "" {
		return deny(KindDenyRule, fmt.Errorf("%w: %s may not use secret %s (a deny rule in the config matches %s)", api.ErrDenied, c.Describe(), name, exe),
			&AuditRecord{Event: AuditDenied, Reason: "deny rule (secret " + name + ")"})
	}
	for _, srv := range secretUsers(s, name) {
		if exe := denied(s.ApprovalPolicy(srv).Deny); exe != "" {
			return deny(KindDenyRule, fmt.Errorf("%w: %s may not use secret %s, used by %s (a deny rule in the config matches %s)", api.ErrDenied, c.Describe(), name, srv, exe),
				&AuditRecord{Event: AuditDenied, Server: srv, Reason: "deny rule (secret " + name + ")"})
		}
	}
	return Decision{Verdict: Allow}
}

// secretUsers lists the configured servers (by name, sorted) whose headers
// or env reference the secret name.
func secretUsers(s *config.Settings, name string) []string {
	var out []string
	refers := func(m map[string]string) bool {
		for _, v := range m {
			if n, ok := config.SecretRef(v); ok && n == name {
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
