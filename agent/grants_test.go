package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/api"
)

// ccRequests counts the client_credentials requests the AS received.
func ccRequests(as *oauthtest.Server) int {
	n := 0
	for _, r := range as.TokenRequests() {
		if r.Form.Get("grant_type") == "client_credentials" {
			n++
		}
	}
	return n
}

// ccFixture logs in to the test AS with the client_credentials grant of
// the confidential client "bot"; no browser may open.
func ccFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute}, func(c *agent.Config) {
		c.OpenURL = func(context.Context, string) error {
			t.Error("a browser was opened for a client_credentials login")
			return nil
		}
	})
	f.as.AddClient(oauthtest.Client{ID: "bot", Secret: "bot-secret", AuthMethod: "client_secret_basic"})
	info := f.login(agent.LoginRequest{ClientID: "bot", ClientSecret: "bot-secret", Grant: api.GrantLogin{Mode: api.GrantClientCredentials}})
	if info.Grant != api.GrantClientCredentials || info.HasRefresh {
		t.Fatalf("session %+v: want the client_credentials grant, no refresh token", info)
	}
	return f
}

// TestClientCredentialsRegrant: the token of a client_credentials session
// is renewed by running the grant again (no refresh token), once for any
// number of callers; the grant survives a restart of the agent (the
// secret is kept with the session).
func TestClientCredentialsRegrant(t *testing.T) {
	f := ccFixture(t)
	first, err := f.token(agent.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := ccRequests(f.as); n != 1 {
		t.Fatalf("%d client_credentials requests after login and a token.get, want 1", n)
	}
	if r := f.as.TokenRequests()[0]; r.BasicID != "bot" || r.Form.Get("resource") != f.as.MCPURL {
		t.Errorf("token request: Basic %q, resource %q", r.BasicID, r.Form.Get("resource"))
	}
	f.clk.Advance(5*time.Minute + time.Second)
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Go(func() {
			tok, err := f.token(agent.TokenRequest{})
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := ccRequests(f.as); n != 2 {
		t.Errorf("%d client_credentials requests after expiry with 20 callers, want 2 (one more)", n)
	}
	for _, tok := range toks {
		if tok == first.AccessToken || tok != toks[0] {
			t.Fatal("a caller got the expired or a different token")
		}
	}

	// A second agent on the same store renews with the stored secret.
	a2, err := agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	f.clk.Advance(5*time.Minute + time.Second)
	if _, err := a2.Token(t.Context(), agent.TokenRequest{Server: f.as.MCPURL}); err != nil {
		t.Fatalf("a restarted agent: %v", err)
	}
	rec, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
	if rec.Grant.Mode != api.GrantClientCredentials || rec.RefreshToken != "" || rec.ClientSecret != "bot-secret" {
		t.Errorf("stored record: grant %+v, refresh %v, secret kept %v", rec.Grant, rec.RefreshToken != "", rec.ClientSecret == "bot-secret")
	}
}

// TestClientCredentialsRefusedNotRetried: when the authorization server
// refuses the grant (the client's secret was changed there), the session
// needs a login and the agent does not ask again by itself, however often
// callers ask; a transient failure keeps serving the still-valid token.
func TestClientCredentialsRefusedNotRetried(t *testing.T) {
	f := ccFixture(t)
	f.as.SetTokenFailure(503)
	f.clk.Advance(4*time.Minute + 45*time.Second) // in the refresh margin, still valid
	if _, err := f.token(agent.TokenRequest{}); err != nil {
		t.Fatalf("a 503 at renewal, token still valid: %v", err)
	}
	f.as.SetTokenFailure(0)
	f.as.AddClient(oauthtest.Client{ID: "bot", Secret: "rotated", AuthMethod: "client_secret_basic"})
	f.clk.Advance(time.Minute) // expired, backoff over
	before := ccRequests(f.as)
	for range 3 {
		_, err := f.token(agent.TokenRequest{})
		var nl *agent.NeedsLoginError
		if !errors.As(err, &nl) || !strings.Contains(nl.Reason, "no longer accepts client bot") {
			t.Fatalf("refused grant: %v, want needs login naming the client", err)
		}
	}
	if n := ccRequests(f.as) - before; n != 1 {
		t.Errorf("%d client_credentials requests for 3 callers after a refusal, want 1", n)
	}
	ss, _ := f.a.Sessions(t.Context())
	if len(ss) != 1 || ss[0].State != agent.StateNeedsLogin || ss[0].Grant != api.GrantClientCredentials {
		t.Errorf("sessions %+v: want one client_credentials session needing login", ss)
	}
}

// TestGrantKeptUntilSwitched: a later login of a client_credentials
// session runs the same grant (no browser); --grant authorization_code
// goes back to the browser sign-in.
func TestGrantKeptUntilSwitched(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	f.as.AddClient(oauthtest.Client{ID: "bot", Secret: "bot-secret", AuthMethod: "client_secret_basic"})
	f.login(agent.LoginRequest{ClientID: "bot", ClientSecret: "bot-secret", Grant: api.GrantLogin{Mode: api.GrantClientCredentials}})
	if info := f.login(agent.LoginRequest{}); info.Grant != api.GrantClientCredentials || ccRequests(f.as) != 2 {
		t.Fatalf("second login: grant %q, %d client_credentials requests; want the same grant run again", info.Grant, ccRequests(f.as))
	}
	info := f.login(agent.LoginRequest{Grant: api.GrantLogin{Mode: "authorization_code"}})
	if info.Grant != api.GrantAuthorizationCode || !info.HasRefresh || len(f.as.AuthorizeRequests()) != 1 {
		t.Errorf("login --grant authorization_code: %+v, %d authorization requests; want a browser sign-in", info, len(f.as.AuthorizeRequests()))
	}
}

// TestConfiguredGrantStartsOnFirstToken: a server configured with the
// client_credentials grant and its secret in the keyring ("secret:NAME")
// needs no login: the first token requests, however many at once, start
// the session with one grant. A missing stored secret says how to store it.
func TestConfiguredGrantStartsOnFirstToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{}, func(c *agent.Config) {
		c.OpenURL = func(context.Context, string) error { t.Error("a browser was opened"); return nil }
	})
	f.as.AddClient(oauthtest.Client{ID: "bot", Secret: "bot-secret", AuthMethod: "client_secret_basic"})
	f.a.ApplySettings(&agent.Settings{Servers: map[string]agent.ServerSettings{"bot": {
		Name: "bot", URL: f.as.MCPURL, ClientID: "bot",
		GrantSettings: config.GrantSettings{Grant: api.GrantClientCredentials, ClientSecretRef: "secret:bot-secret"},
	}}})
	if _, err := f.token(agent.TokenRequest{Server: "bot"}); err == nil || !strings.Contains(err.Error(), "no stored secret bot-secret (store it with `mcpkey secret set bot-secret`)") {
		t.Fatalf("without the stored secret: %v", err)
	}
	if err := store.PutSecret(t.Context(), f.store, "bot-secret", []byte("bot-secret\n")); err != nil {
		t.Fatal(err)
	}
	// A failed grant is not run again at once for a polling caller.
	if _, err := f.token(agent.TokenRequest{Server: "bot"}); err == nil || !strings.Contains(err.Error(), "no stored secret") {
		t.Fatalf("right after the failure: %v, want the same error", err)
	}
	f.clk.Advance(31 * time.Second)
	var wg sync.WaitGroup
	toks := make([]string, 10)
	for i := range toks {
		wg.Go(func() {
			tok, err := f.token(agent.TokenRequest{Server: "bot"})
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := ccRequests(f.as); n != 1 || toks[0] == "" || toks[0] != toks[9] {
		t.Errorf("%d client_credentials requests for 10 first callers, want 1 and one token for all", n)
	}

	// The AS rotates the secret: the renewal is refused and the session
	// needs a login; once the new secret is stored, a token request after
	// the retry pause signs in again by itself.
	f.as.AddClient(oauthtest.Client{ID: "bot", Secret: "rotated", AuthMethod: "client_secret_basic"})
	f.clk.Advance(time.Hour + time.Second)
	if _, err := f.token(agent.TokenRequest{Server: "bot"}); !errors.Is(err, agent.ErrNeedsLogin) && (err == nil || !strings.Contains(err.Error(), "invalid_client")) {
		t.Fatalf("renewal with a rotated secret: %v, want it refused", err)
	}
	store.PutSecret(t.Context(), f.store, "bot-secret", []byte("rotated"))
	f.clk.Advance(31 * time.Second)
	if _, err := f.token(agent.TokenRequest{Server: "bot"}); err != nil {
		t.Fatalf("after the new secret was stored: %v", err)
	}
	if ss, _ := f.a.Sessions(t.Context()); len(ss) != 1 || ss[0].State != agent.StateReady {
		t.Errorf("sessions %+v, want one ready session", ss)
	}
}
