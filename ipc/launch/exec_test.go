package launch_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc/launch"
)

func envValue(env []string, k string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestExecEnv(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	tok, err := s.client.Token(t.Context(), agent.TokenRequest{Server: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := launch.ExecEnv(t.Context(), launch.ExecConfig{Client: s.client, Server: "envy", Environ: []string{
		"PATH=/usr/bin",
		"REF_TOKEN=mcpkey://demo",
		"REF_SECRET=mcpkey://secret/keyed-key",
		"PLAIN=mcpkey-not-a-ref",
		"DEMO_TOKEN=overridden by the config",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"PATH":       "/usr/bin",
		"REF_TOKEN":  tok.AccessToken,
		"REF_SECRET": s.apiKey,
		"PLAIN":      "mcpkey-not-a-ref",
		"DEMO_TOKEN": tok.AccessToken,
		"DEMO_KEY":   s.apiKey,
	} {
		if got, ok := envValue(env, k); !ok || got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "DEMO_TOKEN=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("DEMO_TOKEN appears %d times", n)
	}
}

func TestExecEnvMissing(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	_, err := launch.ExecEnv(t.Context(), launch.ExecConfig{Client: s.client, Server: "needy",
		Environ: []string{"X=mcpkey://secret/nope"}})
	var ms *launch.MissingSecretsError
	if !errors.As(err, &ms) || !slices.Equal(ms.Names, []string{"absent", "also-absent", "nope"}) {
		t.Fatalf("err = %v, want all three missing secrets named", err)
	}
	if !errors.Is(err, agent.ErrNotFound) || !strings.Contains(err.Error(), "mcpkey secret set") {
		t.Errorf("err = %v", err)
	}
	// A token reference without a session: needs login, nothing resolved.
	_, err = launch.ExecEnv(t.Context(), launch.ExecConfig{Client: s.client, Environ: []string{"T=mcpkey://demo"}})
	var nl *agent.NeedsLoginError
	if !errors.As(err, &nl) {
		t.Errorf("token without a session: %v", err)
	}
}

func TestSnippet(t *testing.T) {
	const exe = "/opt/mcp key/bin/mcpkey"
	for _, tc := range []struct {
		host, proxy, via string
		want             []string
	}{
		{"claude-desktop", "", "bridge", []string{`"mcpServers"`, `"github"`, `"command": "/opt/mcp key/bin/mcpkey"`, `"bridge"`}},
		{"claude-desktop", "http://127.0.0.1:7391", "bridge", []string{`"command": "/opt/mcp key/bin/mcpkey"`}},
		{"claude-code", "", "bridge", []string{"claude mcp add github -- '/opt/mcp key/bin/mcpkey' bridge github"}},
		{"claude-code", "http://127.0.0.1:7391", "proxy", []string{"claude mcp add-json github", `"url":"http://127.0.0.1:7391/github/mcp"`, "${MCPKEY_PROXY_SECRET}"}},
		{"cursor", "", "bridge", []string{`"mcpServers"`, `"command": "/opt/mcp key/bin/mcpkey"`}},
		{"cursor", "http://127.0.0.1:7391/", "proxy", []string{`"url": "http://127.0.0.1:7391/github/mcp"`, "${env:MCPKEY_PROXY_SECRET}"}},
		{"vscode", "", "bridge", []string{`"servers"`, `"type": "stdio"`, `"command": "/opt/mcp key/bin/mcpkey"`}},
		{"vscode", "http://127.0.0.1:7391", "proxy", []string{`"type": "http"`, "${input:mcpkey-proxy-secret}", `"password": true`}},
	} {
		t.Run(tc.host+"/"+tc.via, func(t *testing.T) {
			s, err := launch.Snippet(tc.host, "github", launch.SnippetOptions{Exe: exe, ProxyURL: tc.proxy})
			if err != nil {
				t.Fatal(err)
			}
			if s.Host != tc.host || s.Via != tc.via || s.Where == "" {
				t.Errorf("snippet = %+v", s)
			}
			for _, w := range tc.want {
				if !strings.Contains(s.Text, w) {
					t.Errorf("text lacks %s:\n%s", w, s.Text)
				}
			}
		})
	}
	if _, err := launch.Snippet("emacs", "github", launch.SnippetOptions{Exe: exe}); err == nil {
		t.Error("unknown host accepted")
	}
}
