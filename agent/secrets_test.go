package agent_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
)

func TestSecrets(t *testing.T) {
	a, err := agent.New(t.Context(), agent.Config{Store: store.NewMemory(), Settings: &agent.Settings{
		Servers: map[string]agent.ServerSettings{"api": {Name: "api", URL: "https://api.example.com/mcp", Account: "bob",
			Headers: map[string]string{"X-Api-Key": "secret:api-key"}, Env: map[string]string{"TOKEN": "token"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := t.Context()
	if err := a.SetSecret(ctx, "api-key", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetSecret(ctx, "api-key", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Secret(ctx, "api-key"); err != nil || string(v) != "v2" {
		t.Errorf("Secret = %q, %v", v, err)
	}
	if names, err := a.Secrets(ctx); err != nil || !slices.Equal(names, []string{"api-key"}) {
		t.Errorf("Secrets = %v, %v", names, err)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a b"} {
		if err := a.SetSecret(ctx, bad, []byte("v")); !errors.Is(err, agent.ErrInvalidRequest) {
			t.Errorf("SetSecret(%q) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if err := a.SetSecret(ctx, "empty", nil); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Errorf("empty value: %v", err)
	}
	if err := a.SetSecret(ctx, "huge", make([]byte, agent.MaxSecretSize+1)); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Errorf("huge value: %v", err)
	}
	if err := a.DeleteSecret(ctx, "api-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Secret(ctx, "api-key"); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := a.DeleteSecret(ctx, "api-key"); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}

	sc, err := a.ResolveServer(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "api" || sc.URL != "https://api.example.com/mcp" || sc.Resource != "https://api.example.com/mcp" || sc.Account != "bob" ||
		sc.Headers["X-Api-Key"] != "secret:api-key" || sc.Env["TOKEN"] != "token" || sc.LoginWait != agent.DefaultLoginWait {
		t.Errorf("ResolveServer(api) = %+v", sc)
	}
	sc, err = a.ResolveServer(ctx, "https://Other.example.com:443/mcp")
	if err != nil || sc.Name != "" || sc.URL != "https://Other.example.com:443/mcp" || sc.Resource != "https://other.example.com/mcp" || sc.Headers != nil {
		t.Errorf("ResolveServer(url) = %+v, %v", sc, err)
	}
	if _, err := a.ResolveServer(ctx, "nope"); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("ResolveServer(nope) = %v", err)
	}
}
