package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

// TestRejectedFreshTokensStopAfterOneLogin plays a resource server that
// rejects every token (an audience mismatch) the way every 401 handler
// does (report the token; on needs_login, log in): the agent refreshes
// once, asks for one extra sign-in, and then answers ErrTokenRejected with
// the sentence that names the audience, never another login.
func TestRejectedFreshTokensStopAfterOneLogin(t *testing.T) {
	var opens atomic.Int32
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour}, func(c *agent.Config) {
		open := c.OpenURL
		c.OpenURL = func(ctx context.Context, u string) error { opens.Add(1); return open(ctx, u) }
	})
	f.login(agent.LoginRequest{})
	tok, err := f.token(agent.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var final error
	for range 10 { // the handler's loop; the agent must end it
		f.clk.Advance(time.Second)
		next, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken})
		var nl *agent.NeedsLoginError
		switch {
		case errors.As(err, &nl):
			f.login(agent.LoginRequest{})
			next, err = f.token(agent.TokenRequest{})
			if err != nil {
				t.Fatal(err)
			}
		case err != nil:
			final = err
		}
		if final != nil {
			break
		}
		tok = next
	}
	if got := opens.Load(); got != 2 {
		t.Errorf("browser opened %d times, want 2 (the login and one extra sign-in)", got)
	}
	if got := f.as.Refreshes(); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
	if !errors.Is(final, agent.ErrTokenRejected) {
		t.Fatalf("final error = %v, want ErrTokenRejected", final)
	}
	if !strings.Contains(final.Error(), "the server rejected a freshly issued token; its audience may not match (see ") {
		t.Errorf("error %q does not name the audience", final)
	}

	// Reported again, even much later: the same answer, no login.
	f.clk.Advance(2 * time.Hour)
	if _, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken}); !errors.Is(err, agent.ErrTokenRejected) {
		t.Errorf("after giving up, a rejected token gives %v, want ErrTokenRejected", err)
	}
	// The user signs in again: its token, rejected too, gets the error at
	// once, not another browser window.
	f.login(agent.LoginRequest{})
	tok, _ = f.token(agent.TokenRequest{})
	if _, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken}); !errors.Is(err, agent.ErrTokenRejected) {
		t.Errorf("after the user's login, a rejected fresh token gives %v, want ErrTokenRejected", err)
	}
	if got := opens.Load(); got != 3 {
		t.Errorf("browser opened %d times, want 3", got)
	}
}

// TestRejectedTokenSameAnswerForEveryCaller: two callers reporting the same
// rejected token get the same answer; the second does not climb the ladder.
func TestRejectedTokenSameAnswerForEveryCaller(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	tok, _ := f.token(agent.TokenRequest{})
	t1, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := f.token(agent.TokenRequest{RejectedToken: t1.AccessToken})
		if !errors.Is(err, agent.ErrNeedsLogin) {
			t.Errorf("report %d of the refreshed token: %v, want needs_login", i+1, err)
		}
	}
}

// TestRejectedOldTokenRefreshes: a token rejected after it lived a while (the
// server took it, then stopped) is refreshed each time, with no login.
func TestRejectedOldTokenRefreshes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	tok, _ := f.token(agent.TokenRequest{})
	for i := range 3 {
		f.clk.Advance(5 * time.Minute)
		next, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken})
		if err != nil || next.AccessToken == tok.AccessToken {
			t.Fatalf("rejection %d: err %v", i+1, err)
		}
		tok = next
	}
	if got := f.as.Refreshes(); got != 3 {
		t.Errorf("refreshes = %d, want 3", got)
	}
}

// TestResourceAsAudience: with resource_as_audience for the server, or for
// its issuer, the login (authorization and code requests), the refresh and
// the registration carry the resource as audience; without it, none does.
func TestResourceAsAudience(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(f *fixture) *agent.Settings
		want bool
	}{
		{"off", func(f *fixture) *agent.Settings { return &agent.Settings{} }, false},
		{"server", func(f *fixture) *agent.Settings {
			return &agent.Settings{Servers: map[string]agent.ServerSettings{
				"demo": {Name: "demo", URL: f.as.MCPURL, ResourceAsAudience: true}}}
		}, true},
		{"issuer", func(f *fixture) *agent.Settings {
			return &agent.Settings{Issuers: map[string]agent.IssuerSettings{f.as.Issuer: {ResourceAsAudience: true}}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute})
			f.a.ApplySettings(tc.set(f))
			f.login(agent.LoginRequest{})
			f.clk.Advance(5*time.Minute + time.Second)
			if _, err := f.token(agent.TokenRequest{}); err != nil {
				t.Fatal(err)
			}
			check := func(what string, got []string) {
				t.Helper()
				if tc.want && (len(got) != 1 || got[0] != f.as.Resource) {
					t.Errorf("%s: audience %q, want %q", what, got, f.as.Resource)
				}
				if !tc.want && got != nil {
					t.Errorf("%s: audience %q sent without the setting", what, got)
				}
			}
			ar := f.as.AuthorizeRequests()
			check("authorization request", ar[len(ar)-1]["audience"])
			tr := f.as.TokenRequests()
			if len(tr) != 2 {
				t.Fatalf("%d token requests, want the code and one refresh", len(tr))
			}
			check("code request", tr[0].Form["audience"])
			check("refresh request", tr[1].Form["audience"])
			regs := f.as.Registrations()
			aud, _ := regs[len(regs)-1]["audience"].([]any)
			var got []string
			for _, a := range aud {
				s, _ := a.(string)
				got = append(got, s)
			}
			check("registration", got)
		})
	}
}
