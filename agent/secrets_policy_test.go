package agent_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
)

// TestSecretAdmission: secret reads honour the restricted socket, the lock
// and the deny rules (top-level, and those of the servers that reference
// the secret), like token.get.
func TestSecretAdmission(t *testing.T) {
	a := newPolicyAgent(t, agent.Config{Store: store.NewMemory(), Settings: &agent.Settings{
		Deny: []string{"/opt/evil/*"},
		Servers: map[string]agent.ServerSettings{
			"api":   {Name: "api", URL: srvA, Headers: map[string]string{"X-Api-Key": "secret:api-key"}, Deny: []string{exeB}},
			"other": {Name: "other", URL: srvB, Env: map[string]string{"OTHER": "secret:other-key"}},
		},
	}})
	ctx := t.Context()
	for _, n := range []string{"api-key", "other-key", "loose"} {
		if err := a.SetSecret(ctx, n, []byte("value-of-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(exe, name string) error {
		v, err := a.Secret(callerCtx(ctx, exe, 42), name)
		if err == nil && string(v) != "value-of-"+name {
			t.Errorf("%s read %s = %q", exe, name, v)
		}
		return err
	}

	if err := read(exeA, "api-key"); err != nil {
		t.Errorf("allowed caller: %v", err)
	}
	// A top-level deny covers every secret.
	for _, n := range []string{"api-key", "other-key", "loose"} {
		if err := read("/opt/evil/tool", n); !errors.Is(err, agent.ErrDenied) {
			t.Errorf("top-level deny, %s: %v, want ErrDenied", n, err)
		}
	}
	// A server's deny covers the secrets it references, not the others.
	err := read(exeB, "api-key")
	if !errors.Is(err, agent.ErrDenied) || !strings.Contains(err.Error(), "api") {
		t.Errorf("server deny: %v, want ErrDenied naming the server", err)
	}
	if strings.Contains(err.Error(), "value-of") {
		t.Error("the refusal carries the secret")
	}
	if err := read(exeB, "other-key"); err != nil {
		t.Errorf("secret of a server without the deny: %v", err)
	}
	// In-process calls (no Caller) are trusted.
	if _, err := a.Secret(ctx, "api-key"); err != nil {
		t.Errorf("in-process: %v", err)
	}
	// A restricted socket serves no secrets.
	rctx := agent.WithRestriction(callerCtx(ctx, exeA, 42), "/tmp/r.sock", []string{"api"})
	if _, err := a.Secret(rctx, "api-key"); !errors.Is(err, agent.ErrDenied) {
		t.Errorf("restricted socket: %v, want ErrDenied", err)
	}

	// Locked: nothing is read, whoever asks; unlocked: reads again.
	if err := a.Lock(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := read(exeA, "api-key"); !errors.Is(err, agent.ErrLocked) {
		t.Errorf("locked: %v, want ErrLocked", err)
	}
	if _, err := a.Secret(ctx, "loose"); !errors.Is(err, agent.ErrLocked) {
		t.Errorf("locked, in-process: %v, want ErrLocked", err)
	}
	if err := a.Unlock(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := read(exeA, "api-key"); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}
