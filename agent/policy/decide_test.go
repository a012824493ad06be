package policy_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/policy"
	"github.com/mcpkey/mcpkey/api"
)

const (
	srvA = "https://a.example.com/mcp"
	srvB = "https://b.example.com/mcp"
)

func newPolicy(t *testing.T, s *config.Settings, onLock func() int) *policy.Policy {
	t.Helper()
	po, err := policy.New(policy.Options{
		Settings:           func() *config.Settings { return s },
		DBusSessionAddress: "off", DBusSystemAddress: "off",
		OnLock: onLock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(po.Close)
	return po
}

// program is a local caller without a pid: the policy judges its
// executable path without reading /proc.
func program(ctx context.Context, exe string) context.Context {
	return policy.WithCaller(ctx, api.Caller{Transport: "unix", UID: os.Getuid(), Exe: exe})
}

// TestDecide walks Decide's order: the restricted socket, the deny rules
// (servers and secrets), then approval under confirm; each refusal carries
// its kind, the sentinel and (but for the lock) an audit record.
func TestDecide(t *testing.T) {
	s := &config.Settings{
		Confirm: true,
		Allow:   []string{"/opt/ok/*"},
		Deny:    []string{"/opt/bad/*"},
		Servers: map[string]config.ServerSettings{
			"b": {URL: srvB, Deny: []string{"/opt/nob/*"}, Headers: map[string]string{"Authorization": "secret:bkey"}},
		},
	}
	po := newPolicy(t, s, nil)
	bg := t.Context()
	restricted := policy.WithRestriction(program(bg, "/opt/any/tool"), "/run/r.sock", []string{srvA})

	for _, c := range []struct {
		name    string
		ctx     context.Context
		req     policy.Request
		verdict policy.Verdict
		kind    policy.Kind
		audited bool
	}{
		{"restricted socket, its server", restricted, policy.Request{Op: policy.OpToken, Server: srvA}, policy.Ask, "", false},
		{"restricted socket, another server", restricted, policy.Request{Op: policy.OpToken, Server: srvB}, policy.Deny, policy.KindRestricted, true},
		{"restricted socket, a login", restricted, policy.Request{Op: policy.OpLogin, Server: srvB}, policy.Deny, policy.KindRestricted, true},
		{"restricted socket, a secret", restricted, policy.Request{Op: policy.OpSecretGet, Secret: "k"}, policy.Deny, policy.KindRestricted, true},
		{"restricted socket, management", restricted, policy.Request{Op: policy.OpManage}, policy.Deny, policy.KindRestricted, false},
		{"restricted socket, socket.add", restricted, policy.Request{Op: policy.OpSocketAdd}, policy.Deny, policy.KindRestricted, false},
		{"deny rule, token", program(bg, "/opt/bad/x"), policy.Request{Op: policy.OpToken, Server: srvA}, policy.Deny, policy.KindDenyRule, true},
		{"deny rule, logout", program(bg, "/opt/bad/x"), policy.Request{Op: policy.OpLogout, Server: srvA}, policy.Deny, policy.KindDenyRule, true},
		{"server's deny rule", program(bg, "/opt/nob/x"), policy.Request{Op: policy.OpToken, Server: srvB, Name: "b"}, policy.Deny, policy.KindDenyRule, true},
		{"server's deny rule, not another server", program(bg, "/opt/nob/x"), policy.Request{Op: policy.OpLogin, Server: srvA}, policy.Allow, "", false},
		{"deny rule, secret", program(bg, "/opt/bad/x"), policy.Request{Op: policy.OpSecretSet, Secret: "k"}, policy.Deny, policy.KindDenyRule, true},
		{"secret a denied server uses", program(bg, "/opt/nob/x"), policy.Request{Op: policy.OpSecretGet, Secret: "bkey"}, policy.Deny, policy.KindDenyRule, true},
		{"secret no denied server uses", program(bg, "/opt/nob/x"), policy.Request{Op: policy.OpSecretGet, Secret: "other"}, policy.Allow, "", false},
		{"in-process caller", bg, policy.Request{Op: policy.OpToken, Server: srvA}, policy.Allow, "", false},
		{"confirm, allow rule", program(bg, "/opt/ok/x"), policy.Request{Op: policy.OpToken, Server: srvA}, policy.Allow, "", false},
		{"confirm, unknown program", program(bg, "/opt/any/tool"), policy.Request{Op: policy.OpToken, Server: srvA}, policy.Ask, "", false},
		{"confirm is for tokens only", program(bg, "/opt/any/tool"), policy.Request{Op: policy.OpLogin, Server: srvA}, policy.Allow, "", false},
		{"management", program(bg, "/opt/bad/x"), policy.Request{Op: policy.OpManage}, policy.Allow, "", false},
	} {
		d := po.Decide(c.ctx, c.req)
		if d.Verdict != c.verdict || d.Kind != c.kind || (d.Audit != nil) != c.audited {
			t.Errorf("%s: verdict %d kind %q audited %v, want %d %q %v (err %v)", c.name, d.Verdict, d.Kind, d.Audit != nil, c.verdict, c.kind, c.audited, d.Err)
			continue
		}
		if d.Verdict == policy.Deny && !errors.Is(d.Err, api.ErrDenied) {
			t.Errorf("%s: err %v, want ErrDenied", c.name, d.Err)
		}
		if d.Audit != nil && d.Audit.Event != policy.AuditDenied {
			t.Errorf("%s: audit event %q", c.name, d.Audit.Event)
		}
		if c.verdict == policy.Ask {
			continue // Await would wait for the user: agent.TestApprovalFlow covers it
		}
		if err := po.Await(c.ctx, d); err != d.Err {
			t.Errorf("%s: Await = %v, want %v", c.name, err, d.Err)
		}
	}
}

// TestDecideWhileLocked: a locked policy refuses tokens, logins, logouts,
// secrets and new restricted sockets (not audited), answers management,
// and a failed reload keeps it locked.
func TestDecideWhileLocked(t *testing.T) {
	locks := 0
	po := newPolicy(t, &config.Settings{}, func() int { locks++; return 3 })
	ctx := program(t.Context(), "/opt/any/tool")
	if err := po.Lock(ctx, "pw"); err != nil {
		t.Fatal(err)
	}
	if locks != 1 || !po.Locked() {
		t.Fatalf("after Lock: OnLock called %d times, locked %v", locks, po.Locked())
	}
	for _, op := range []policy.Op{policy.OpToken, policy.OpLogin, policy.OpLogout, policy.OpImport, policy.OpSecretGet, policy.OpSocketAdd} {
		d := po.Decide(ctx, policy.Request{Op: op, Server: srvA})
		if d.Verdict != policy.Deny || d.Kind != policy.KindLocked || !errors.Is(d.Err, api.ErrLocked) || d.Audit != nil {
			t.Errorf("%s while locked: %+v", op, d)
		}
		if !errors.Is(po.Admit(t.Context(), policy.Request{Op: op, Server: srvA}), api.ErrLocked) {
			t.Errorf("%s while locked: an in-process caller is admitted", op)
		}
	}
	if d := po.Decide(ctx, policy.Request{Op: policy.OpManage}); d.Verdict != policy.Allow {
		t.Errorf("management while locked: %+v", d)
	}
	gone := errors.New("store gone")
	if err := po.Unlock(ctx, "pw", func(context.Context) (int, error) { return 0, gone }); !errors.Is(err, gone) || !po.Locked() {
		t.Fatalf("unlock with a failing reload: %v, locked %v", err, po.Locked())
	}
	if err := po.Unlock(ctx, "pw", func(context.Context) (int, error) { return 3, nil }); err != nil || po.Locked() {
		t.Fatalf("unlock: %v, locked %v", err, po.Locked())
	}
	if d := po.Decide(ctx, policy.Request{Op: policy.OpToken, Server: srvA}); d.Verdict != policy.Allow {
		t.Fatalf("token after unlock: %+v", d)
	}
}
