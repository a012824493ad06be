package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// loginProgress logs in and returns the progress lines.
func (f *fixture) loginProgress(req agent.LoginRequest, timeout time.Duration) ([]string, error) {
	f.t.Helper()
	if req.Server == "" {
		req.Server = f.as.MCPURL
	}
	ctx, cancel := context.WithTimeout(f.t.Context(), timeout)
	defer cancel()
	var lines []string
	_, err := f.a.Login(ctx, req, func(e agent.Event) { lines = append(lines, e.Message) })
	return lines, err
}

func hasLine(lines []string, sub string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
}

// refreshClients counts the refresh grants per client id they
// authenticated as. (The agent's refresh loop may refresh another session
// meanwhile, so tests count by client, not the last request.)
func (f *fixture) refreshClients() map[string]int {
	out := map[string]int{}
	for _, tr := range f.as.TokenRequests() {
		if tr.Form.Get("grant_type") != "refresh_token" {
			continue
		}
		id := tr.Form.Get("client_id")
		if tr.HasBasic {
			id = tr.BasicID
		}
		if strings.HasPrefix(id, "dcr-") {
			id = "dcr"
		}
		out[id]++
	}
	return out
}

// TestPreregisteredClientRefreshes: a session issued to a pre-registered
// client refreshes, revokes and logs in again with that client, also when a
// dynamic registration for the same issuer is stored.
func TestPreregisteredClientRefreshes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute,
		Clients: []oauthtest.Client{{ID: "static", Secret: "static-secret", AuthMethod: "client_secret_basic"}}})
	f.login(agent.LoginRequest{Account: "dcr"}) // stores a dynamic registration for the issuer
	lines, err := f.loginProgress(agent.LoginRequest{ClientID: "static", ClientSecret: "static-secret"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if hasLine(lines, "registering with") || !hasLine(lines, "using the pre-registered client static") {
		t.Errorf("progress:\n%s", strings.Join(lines, "\n"))
	}
	if rec, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, ""); rec.ClientID != "static" || rec.ClientSource != oauth.SourcePreregistered || rec.ClientSecret != "static-secret" {
		t.Errorf("stored session client = %q %q (secret kept: %v)", rec.ClientID, rec.ClientSource, rec.ClientSecret == "static-secret")
	}
	if meta, _ := store.ListSessionMeta(t.Context(), f.store); len(meta) != 2 || !slices.ContainsFunc(meta, func(m store.SessionMeta) bool { return m.HasClientSecret }) {
		t.Errorf("session meta = %+v", meta)
	}

	f.clk.Advance(6 * time.Minute) // both expired
	tok, err := f.token(agent.TokenRequest{})
	if err != nil || !f.as.ValidAccessToken(tok.AccessToken) {
		t.Fatalf("refresh of the pre-registered session: err %v", err)
	}
	if _, err := f.token(agent.TokenRequest{Account: "dcr"}); err != nil {
		t.Fatalf("refresh of the dynamic session: err %v", err)
	}
	if rc := f.refreshClients(); len(rc) != 2 || rc["static"] < 1 || rc["dcr"] < 1 {
		t.Errorf("refresh grants by client = %v, want each session refreshed by its own client", rc)
	}

	// A new login for the session, without --client-id, uses it again.
	lines, err = f.loginProgress(agent.LoginRequest{}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ar := f.as.AuthorizeRequests()
	if got := ar[len(ar)-1].Get("client_id"); got != "static" || hasLine(lines, "registering with") {
		t.Errorf("re-login used client %q; progress:\n%s", got, strings.Join(lines, "\n"))
	}

	// Logout revokes with it: the AS ends the grant only for its own client.
	grants := f.as.ActiveGrants()
	res, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL})
	if err != nil || !res.Revoked {
		t.Fatalf("logout: %+v, %v", res, err)
	}
	if got := f.as.ActiveGrants(); got != grants-1 {
		t.Errorf("active grants %d → %d: the revocation did not end the session's grant", grants, got)
	}
}

// TestDCRSendsScopes: dynamic registration asks for the login's scopes (a
// server that limits clients to their registered scopes, like Hydra, then
// accepts the login); a later login that needs more registers again, and
// a session issued to the first registration keeps refreshing with it.
func TestDCRSendsScopes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute,
		ASScopesSupported: []string{"mcp:tools", "mcp:admin", "offline_access"},
		DCRDefaultScopes:  []string{"offline_access"}})
	if _, err := f.loginProgress(agent.LoginRequest{Account: "a"}, 10*time.Second); err != nil {
		t.Fatalf("login: %v", err)
	}
	regs := f.as.Registrations()
	if len(regs) != 1 || regs[0]["scope"] != "mcp:tools offline_access" {
		t.Fatalf("registrations = %v, want one with scope \"mcp:tools offline_access\"", regs)
	}
	lines, err := f.loginProgress(agent.LoginRequest{Account: "b", Scopes: []string{"mcp:admin"}}, 10*time.Second)
	if err != nil {
		t.Fatalf("login with more scopes: %v", err)
	}
	if !hasLine(lines, "registering with "+f.as.Issuer+" again (the stored registration does not cover scope mcp:admin)") {
		t.Errorf("progress:\n%s", strings.Join(lines, "\n"))
	}
	regs = f.as.Registrations()
	if len(regs) != 2 || regs[1]["scope"] != "mcp:tools offline_access mcp:admin" {
		t.Errorf("second registration scope = %v", regs[len(regs)-1]["scope"])
	}
	// A third login within the registered scopes reuses it.
	if lines, err := f.loginProgress(agent.LoginRequest{Account: "c"}, 10*time.Second); err != nil || hasLine(lines, "registering") {
		t.Errorf("login c: %v; progress:\n%s", err, strings.Join(lines, "\n"))
	}
	f.clk.Advance(6 * time.Minute)
	if _, err := f.token(agent.TokenRequest{Account: "a"}); err != nil {
		t.Errorf("refresh of the session issued to the first registration: %v", err)
	}
}

// TestForgottenRegistrationIsReplaced: an AS that forgot the registration
// (Hydra after a restart: /authorize redirects to its error page with
// error=invalid_client) makes the login register again at once instead of
// waiting for a browser that never comes back.
func TestForgottenRegistrationIsReplaced(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour, ClientErrorPage: true})
	f.login(agent.LoginRequest{})
	f.as.ForgetClients()
	lines, err := f.loginProgress(agent.LoginRequest{}, 5*time.Second)
	if err != nil {
		t.Fatalf("login after the AS forgot the client: %v", err)
	}
	if !hasLine(lines, "rejected the stored client registration; registering again") {
		t.Errorf("progress:\n%s", strings.Join(lines, "\n"))
	}
	if n := len(f.as.Registrations()); n != 2 {
		t.Errorf("registrations = %d, want 2", n)
	}
	if _, err := f.token(agent.TokenRequest{}); err != nil {
		t.Error(err)
	}
}

// TestRefreshWithForgottenClient: a refresh answered 401 invalid_client
// ends the session's grant, drops the registration and says so; the next
// login registers once.
func TestRefreshWithForgottenClient(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	f.as.ForgetClients()
	f.clk.Advance(2 * time.Hour)
	_, err := f.token(agent.TokenRequest{})
	var nl *agent.NeedsLoginError
	if !errors.As(err, &nl) || !strings.Contains(nl.Reason, "no longer accepts client") || !strings.Contains(nl.Reason, "registration was dropped") {
		t.Fatalf("err = %v, want needs login saying the client is gone and was dropped", err)
	}
	if _, err := store.LoadClient(t.Context(), f.store, f.as.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored registration after invalid_client: %v, want none", err)
	}
	lines, err := f.loginProgress(agent.LoginRequest{}, 10*time.Second)
	if err != nil || !hasLine(lines, "registering with "+f.as.Issuer) || len(f.as.Registrations()) != 2 {
		t.Errorf("login: %v, registrations %d; progress:\n%s", err, len(f.as.Registrations()), strings.Join(lines, "\n"))
	}
}

// TestProgressSaysRegisteringOnlyWhenRegistering: a login that reuses the
// stored registration does not claim to register.
func TestProgressSaysRegisteringOnlyWhenRegistering(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	lines, err := f.loginProgress(agent.LoginRequest{}, 10*time.Second)
	if err != nil || !hasLine(lines, "registering with") {
		t.Fatalf("first login: %v; progress:\n%s", err, strings.Join(lines, "\n"))
	}
	lines, err = f.loginProgress(agent.LoginRequest{Account: "second"}, 10*time.Second)
	if err != nil || hasLine(lines, "registering") || len(f.as.Registrations()) != 1 {
		t.Errorf("second login: %v, registrations %d; progress:\n%s", err, len(f.as.Registrations()), strings.Join(lines, "\n"))
	}
}

// TestLogoutForgetClient: logout --forget-client drops the issuer's
// registration; the next login registers again.
func TestLogoutForgetClient(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	f.login(agent.LoginRequest{})
	res, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL, ForgetClient: true})
	if err != nil || res.ForgotClient != f.as.Issuer {
		t.Fatalf("logout: %+v, %v", res, err)
	}
	if _, err := store.LoadClient(t.Context(), f.store, f.as.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration after forget: %v", err)
	}
	f.login(agent.LoginRequest{})
	if n := len(f.as.Registrations()); n != 2 {
		t.Errorf("registrations = %d, want 2", n)
	}
}

// TestRecordWithoutClientRefreshes: a session stored before sessions
// recorded their client refreshes with the issuer's registration when the
// client id matches, and is then stored with its client.
func TestRecordWithoutClientRefreshes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute})
	f.login(agent.LoginRequest{})
	f.a.Close()
	rec, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
	if err != nil {
		t.Fatal(err)
	}
	rec.ClientSource, rec.ClientAuthMethod, rec.ClientSecret = "", "", ""
	if err := store.PutSession(t.Context(), f.store, rec); err != nil {
		t.Fatal(err)
	}
	a2, err := agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	f.clk.Advance(6 * time.Minute)
	if _, err := a2.Token(t.Context(), agent.TokenRequest{Server: f.as.MCPURL}); err != nil {
		t.Fatalf("refresh of an old record: %v", err)
	}
	if rec, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, ""); rec.ClientSource != oauth.SourceDCR || rec.ClientID == "" {
		t.Errorf("record after refresh: client %q source %q", rec.ClientID, rec.ClientSource)
	}
}

// TestDCRUpdatesRegistrationInPlace: where the server offers RFC 7592, a
// login that needs scopes the registration lacks updates it (same client
// id, the rotated registration access token kept) instead of registering
// again, and the older session keeps refreshing.
func TestDCRUpdatesRegistrationInPlace(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute, RegistrationManagement: true,
		ASScopesSupported: []string{"mcp:tools", "mcp:admin", "offline_access"},
		DCRDefaultScopes:  []string{"offline_access"}})
	f.login(agent.LoginRequest{Account: "a"})
	before, err := store.LoadClient(t.Context(), f.store, f.as.Issuer)
	if err != nil || before.RegistrationAccessToken == "" || before.RegistrationClientURI == "" {
		t.Fatalf("stored registration: %v (management fields present: %v)", err, before.RegistrationAccessToken != "")
	}
	lines, err := f.loginProgress(agent.LoginRequest{Account: "b", Scopes: []string{"mcp:admin"}}, 10*time.Second)
	if err != nil {
		t.Fatalf("login with more scopes: %v", err)
	}
	if !hasLine(lines, "updating the registration with "+f.as.Issuer+" (it does not cover scope mcp:admin)") || hasLine(lines, "registering") {
		t.Errorf("progress:\n%s", strings.Join(lines, "\n"))
	}
	ups := f.as.RegistrationUpdates()
	if len(f.as.Registrations()) != 1 || len(ups) != 1 || ups[0]["scope"] != "mcp:tools offline_access mcp:admin" {
		t.Fatalf("registrations %d, updates %v", len(f.as.Registrations()), ups)
	}
	after, err := store.LoadClient(t.Context(), f.store, f.as.Issuer)
	if err != nil || after.ClientID != before.ClientID || after.Scope != "mcp:tools offline_access mcp:admin" ||
		after.RegistrationAccessToken == before.RegistrationAccessToken {
		t.Errorf("stored registration after the update: err %v, same id %v, scope %q, token rotated %v", err,
			after.ClientID == before.ClientID, after.Scope, after.RegistrationAccessToken != before.RegistrationAccessToken)
	}
	f.clk.Advance(6 * time.Minute)
	for _, acct := range []string{"a", "b"} {
		if _, err := f.token(agent.TokenRequest{Account: acct}); err != nil {
			t.Errorf("refresh of %s: %v", acct, err)
		}
	}
	// A failing update falls back to a new registration.
	f.as.ForgetClients()
	lines, err = f.loginProgress(agent.LoginRequest{Account: "c", Scopes: []string{"mcp:admin", "mcp:extra"}}, 10*time.Second)
	if err != nil || !hasLine(lines, "registering with "+f.as.Issuer+" again (updating the registration failed") {
		t.Errorf("login after a failed update: %v; progress:\n%s", err, strings.Join(lines, "\n"))
	}
}

// TestForgetClientWithoutSession: logout --forget-client also works for a
// server whose login never finished (no session): discovery finds the
// issuer whose registration is dropped.
func TestForgetClientWithoutSession(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	f.login(agent.LoginRequest{})
	if _, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadClient(t.Context(), f.store, f.as.Issuer); err != nil {
		t.Fatalf("a plain logout dropped the registration: %v", err)
	}
	res, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL, ForgetClient: true})
	if err != nil || res.ForgotClient != f.as.Issuer {
		t.Fatalf("logout --forget-client without a session: %+v, %v", res, err)
	}
	if _, err := store.LoadClient(t.Context(), f.store, f.as.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("registration after forget: %v", err)
	}
	if _, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL}); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("plain logout without a session: %v, want not found", err)
	}
}
