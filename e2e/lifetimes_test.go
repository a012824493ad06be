package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc"
)

// Token lifetimes and client registrations as real servers handle them
// (issue 12 §1–2): the CLI against a real agent process, with the in-process
// test AS for odd answers and oidc-provider for the pre-registered path.

// cliAgainst starts an agent (BROWSER=autobrowser) and an in-process test AS
// with opts, and logs in; it returns the agent, the AS and the login's stderr.
func cliAgainst(t *testing.T, opts oauthtest.Options) (*agentProc, *oauthtest.Server, string) {
	t.Helper()
	opts.ScopesSupported = []string{"mcp:tools"}
	as := oauthtest.New(t, opts)
	a := startAgent(t, bin(t, "autobrowser"))
	r := a.mustRun(t, 60*time.Second, "login", as.MCPURL)
	return a, as, r.Stderr
}

// TestCLIUnknownLifetime: no expires_in and an opaque token. mcpkey token
// prints the token without a refresh grant (a refresh only for a min_ttl it
// cannot judge, one per call), and ls says "no expiry given".
func TestCLIUnknownLifetime(t *testing.T) {
	a, as, login := cliAgainst(t, oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true})
	if !strings.Contains(login, "no token lifetime") {
		t.Errorf("login output does not say the server gave no lifetime:\n%s", login)
	}
	var first string
	for i := range 3 {
		r := a.mustRun(t, 20*time.Second, "token", as.MCPURL)
		tok := strings.TrimSpace(r.Stdout)
		if first == "" {
			first = tok
		}
		if tok != first || !as.ValidAccessToken(tok) {
			t.Errorf("token call %d printed another or an invalid token", i)
		}
	}
	if n := as.Refreshes(); n != 0 {
		t.Errorf("%d refresh grants for three token calls, want 0", n)
	}
	if r := a.mustRun(t, 20*time.Second, "ls"); !strings.Contains(r.Stdout, "no expiry given") {
		t.Errorf("ls does not say \"no expiry given\":\n%s", r.Stdout)
	}
	for i := range 2 {
		before := as.Refreshes()
		a.mustRun(t, 20*time.Second, "token", as.MCPURL, "--min-ttl", "1m")
		if n := as.Refreshes() - before; n != 1 {
			t.Errorf("token --min-ttl call %d: %d refresh grants, want exactly 1", i, n)
		}
	}
}

// TestCLINoRefreshTokenUnknownLifetime: without a refresh token either, the
// token is printed right after login (it used to exit 3).
func TestCLINoRefreshTokenUnknownLifetime(t *testing.T) {
	a, as, _ := cliAgainst(t, oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true, NoRefreshTokens: true})
	r := a.run(t, 20*time.Second, "token", as.MCPURL)
	if r.Code != 0 || !as.ValidAccessToken(strings.TrimSpace(r.Stdout)) {
		t.Errorf("mcpkey token: exit %d, stderr %s", r.Code, r.Stderr)
	}
}

// TestCLINonOAuthRefreshAnswer: the token endpoint answers refreshes with a
// 404 HTML page. The session is kept (ls lists it, in state error), a valid
// token is served until it expires, then mcpkey token exits 1 (not 3,
// "login needed") and says what the endpoint answered; when the endpoint
// recovers the session refreshes without a login.
func TestCLINonOAuthRefreshAnswer(t *testing.T) {
	a, as, _ := cliAgainst(t, oauthtest.Options{AccessTokenTTL: 4 * time.Second})
	first := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", as.MCPURL).Stdout)
	as.SetRefreshFault(&oauthtest.Fault{Status: 404, ContentType: "text/html; charset=utf-8", Body: "<h1>Not Found</h1>"})
	ctx := deadline(t, 60*time.Second)
	var failed result
	err := poll(ctx, 200*time.Millisecond, func() bool {
		r := a.run(t, 20*time.Second, "token", as.MCPURL)
		if r.Code == 0 {
			if strings.TrimSpace(r.Stdout) != first {
				t.Errorf("a token other than the first one was served while refreshes fail")
			}
			return false
		}
		failed = r
		return true
	})
	if err != nil {
		t.Fatalf("mcpkey token never failed after the token expired: %v", err)
	}
	const want = "token endpoint answered HTTP 404 with text/html, not an OAuth response"
	if failed.Code != 1 || !strings.Contains(failed.Stderr, want) || strings.Contains(failed.Stderr, "rejected") {
		t.Errorf("mcpkey token: exit %d, stderr:\n%s\nwant exit 1 and %q", failed.Code, failed.Stderr, want)
	}
	if r := a.mustRun(t, 20*time.Second, "ls"); !strings.Contains(r.Stdout, as.MCPURL) || !strings.Contains(r.Stdout, "error") {
		t.Errorf("ls after the failed refresh:\n%s", r.Stdout)
	}
	as.SetRefreshFault(nil)
	err = poll(ctx, 250*time.Millisecond, func() bool {
		r := a.run(t, 20*time.Second, "token", as.MCPURL)
		return r.Code == 0 && strings.TrimSpace(r.Stdout) != first
	})
	if err != nil {
		t.Errorf("no fresh token after the endpoint recovered: %v", err)
	}
}

// refreshStats are oidc-provider's per-client refresh counters.
type refreshStats struct {
	Clients map[string]int `json:"refresh_clients"`
	Errors  map[string]int `json:"refresh_errors"`
}

func (as *authServer) RefreshStats(t testing.TB) refreshStats {
	t.Helper()
	var s refreshStats
	getJSON(t, as.Issuer+"/_test/stats", &s)
	return s
}

// TestPreregisteredClientRefresh: oidc-provider with a static confidential
// client. A session logged in with --client-id/--client-secret-file
// refreshes with that client, although a dynamic registration for the same
// issuer is stored (the default account's login made it), and that session
// refreshes with its own client.
func TestPreregisteredClientRefresh(t *testing.T) {
	f, a := loggedIn(t, "AS_ACCESS_TTL=5") // default account: dynamic registration
	secret := filepath.Join(t.TempDir(), "client.secret")
	if err := os.WriteFile(secret, []byte("e2e-static-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := a.mustRun(t, 90*time.Second, "login", f.MCP.URL, "--account", "static",
		"--client-id", "mcpkey-e2e-confidential", "--client-secret-file", secret)
	if strings.Contains(r.Stderr, "registering with") || !strings.Contains(r.Stderr, "pre-registered client mcpkey-e2e-confidential") {
		t.Errorf("login progress:\n%s", r.Stderr)
	}
	if s := f.AS.Stats(t); s.Registrations != 1 {
		t.Errorf("registrations = %d, want 1 (the default account's)", s.Registrations)
	}
	ctx := deadline(t, 60*time.Second)
	var tok string
	err := poll(ctx, 250*time.Millisecond, func() bool {
		r := a.run(t, 20*time.Second, "token", f.MCP.URL, "--account", "static")
		if r.Code != 0 {
			t.Errorf("mcpkey token --account static: exit %d\n%s", r.Code, r.Stderr)
			return true
		}
		tok = strings.TrimSpace(r.Stdout)
		s := f.AS.RefreshStats(t)
		dynamic := 0
		for id, n := range s.Clients {
			if !strings.HasPrefix(id, "mcpkey-e2e") {
				dynamic += n
			}
		}
		if dynamic == 0 { // keep the default account's session in use too
			a.run(t, 20*time.Second, "token", f.MCP.URL)
		}
		return s.Clients["mcpkey-e2e-confidential"] >= 1 && dynamic >= 1
	})
	if t.Failed() {
		return
	}
	s := f.AS.RefreshStats(t)
	if err != nil {
		t.Fatalf("no refresh by both clients: %v (refreshes by client %v, errors %v)", err, s.Clients, s.Errors)
	}
	if len(s.Errors) != 0 {
		t.Errorf("refresh errors at the AS: %v", s.Errors)
	}
	// The refreshed token works at the MCP server.
	r = a.mustRun(t, 20*time.Second, "token", f.MCP.URL, "--account", "static")
	tok = strings.TrimSpace(r.Stdout)
	cs := connectMCP(t, ctx, f.MCP.URL, tok)
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Errorf("list tools with the refreshed token: %v", err)
	}
}

// TestCLIForgottenRegistration: the AS forgets its clients (a restart) and
// answers the stored one as Hydra does, with a redirect to its error page.
// mcpkey login registers again and finishes instead of waiting for a
// browser that never comes back; logout --forget-client drops the
// registration by hand.
func TestCLIForgottenRegistration(t *testing.T) {
	a, as, _ := cliAgainst(t, oauthtest.Options{ClientErrorPage: true})
	as.ForgetClients()
	r := a.mustRun(t, 30*time.Second, "login", as.MCPURL)
	if !strings.Contains(r.Stderr, "rejected the stored client registration; registering again") {
		t.Errorf("login progress:\n%s", r.Stderr)
	}
	r = a.mustRun(t, 20*time.Second, "logout", as.MCPURL, "--forget-client")
	if !strings.Contains(r.Stderr, "forgot the client registration with "+as.Issuer) {
		t.Errorf("logout --forget-client:\n%s", r.Stderr)
	}
	r = a.mustRun(t, 30*time.Second, "login", as.MCPURL)
	if !strings.Contains(r.Stderr, "registering with "+as.Issuer) || len(as.Registrations()) != 3 {
		t.Errorf("login after forgetting (%d registrations):\n%s", len(as.Registrations()), r.Stderr)
	}
}

// TestTransportRefreshesUnknownLifetimeOn401: a token the AS gave no
// lifetime for does expire at the resource server. ipc.Client.Transport
// sees the 401, the agent refreshes once, and the request succeeds; no
// refresh happened before.
func TestTransportRefreshesUnknownLifetimeOn401(t *testing.T) {
	a, as, _ := cliAgainst(t, oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true, AccessTokenTTL: 2 * time.Second})
	first := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", as.MCPURL).Stdout)
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 100*time.Millisecond, func() bool { return !as.ValidAccessToken(first) }); err != nil {
		t.Fatalf("the resource server never stopped accepting the token: %v", err)
	}
	if n := as.Refreshes(); n != 0 {
		t.Fatalf("%d refreshes before the resource server rejected the token, want 0", n)
	}
	c := &ipc.Client{Path: a.Sock}
	defer c.Close()
	hc := &http.Client{Transport: c.Transport(as.MCPURL, nil)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, as.MCPURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || as.Refreshes() != 1 {
		t.Errorf("status %d after %d refreshes; want 200 after exactly one", resp.StatusCode, as.Refreshes())
	}
}
