package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// TestLoginNobodySignsIn (issue 12 §6): a sign-in nobody finishes ends, at
// Config.LoginTimeout (here shortened), with a sentence saying so and what
// to run, not with "context deadline exceeded".
func TestLoginNobodySignsIn(t *testing.T) {
	opened := make(chan struct{}, 1)
	f := newFixture(t, oauthtest.Options{}, func(c *agent.Config) {
		c.LoginTimeout = 300 * time.Millisecond
		c.OpenURL = func(context.Context, string) error { opened <- struct{}{}; return nil } // nobody signs in
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := f.a.Login(ctx, agent.LoginRequest{Server: f.as.MCPURL, Account: "work"}, nil)
	select {
	case <-opened:
	default:
		t.Fatalf("the login ended before opening the browser: %v", err)
	}
	want := "nobody finished signing in to " + f.as.MCPURL + " within 300ms; run `mcpkey login " + f.as.MCPURL + " --account work` again"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("err = %q still says deadline exceeded", err)
	}
	var te *agent.LoginTimeoutError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %T does not unwrap to LoginTimeoutError and DeadlineExceeded", err)
	}
	// The default reads as people write it.
	if got := (&agent.LoginTimeoutError{Server: "https://x.example/mcp", After: 10 * time.Minute}).Error(); !strings.Contains(got, "within 10m;") {
		t.Errorf("default timeout reads %q, want \"within 10m\"", got)
	}
}

// TestLoginPassesCallerEnvToBrowser: the environment a trusted transport
// attached to the request reaches the browser opener, for the flow that
// caller started.
func TestLoginPassesCallerEnvToBrowser(t *testing.T) {
	stub := &browser.Stub{}
	var f *fixture
	f = newFixture(t, oauthtest.Options{}, func(c *agent.Config) {
		c.OpenURL = func(ctx context.Context, u string) error {
			if err := stub.Open(ctx, u); err != nil {
				return err
			}
			return f.as.Browser()(ctx, u)
		}
	})
	env := browser.Env{Browser: "/opt/caller/browser", Display: ":7", WaylandDisplay: "wayland-3"}
	f.login(agent.LoginRequest{Env: env})
	if got := stub.Envs(); len(got) != 1 || got[0] != env {
		t.Errorf("browser saw caller environments %+v, want [%+v]", got, env)
	}
}

// TestBrowserEnvScrubsStoreSecrets: the variables package store uses for
// the passphrase and the D-Bus re-exec never reach a browser.
func TestBrowserEnvScrubsStoreSecrets(t *testing.T) {
	env := browser.ChildEnv([]string{store.PassphraseEnv + "=x", store.PassphraseFDEnv + "=3", store.ReexecMarker + "=1", "HOME=/h"}, browser.Env{})
	if len(env) != 1 || env[0] != "HOME=/h" {
		t.Errorf("ChildEnv kept %q", env)
	}
}
