package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Grants without a browser (issue 15 §2) against real components:
// oidc-provider's client_credentials grant with resource indicators, the
// go-sdk resource server (e2e/mcpserver), and the agent.

// machineAgent starts a fixture (env: AS_*) and an agent whose config names
// the MCP server "machine" with the client_credentials grant of the AS's
// mcpkey-e2e-machine client, its secret in a 0600 file. No browser exists:
// BROWSER fails.
func machineAgent(t *testing.T, env ...string) (*fixture, *agentProc) {
	t.Helper()
	f := startFixture(t, env...)
	home := t.TempDir()
	secret := filepath.Join(home, "machine.secret")
	if err := os.WriteFile(secret, []byte("e2e-static-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[servers.machine]\nurl = %q\ngrant = \"client_credentials\"\nclient_id = \"mcpkey-e2e-machine\"\nclient_secret_file = %q\n",
		f.MCP.URL, secret)
	if err := os.MkdirAll(filepath.Join(home, ".config", "mcpkey"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "mcpkey", "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgentIn(t, "/bin/false", home, []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory")
	return f, a
}

// TestClientCredentialsEndToEnd: the first token request for a configured
// client_credentials server gets a token from oidc-provider with no login
// and no browser, bound to the resource; the go-sdk server accepts it
// through mcpkey probe; ls and status show the grant; the secret is in no
// output.
func TestClientCredentialsEndToEnd(t *testing.T) {
	f, a := machineAgent(t)
	ctx := deadline(t, 60*time.Second)

	tok, err := a.token(ctx, "machine")
	if err != nil {
		t.Fatalf("token.get for a client_credentials server: %v", err)
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["aud"] != f.MCP.Resource || claims["client_id"] != "mcpkey-e2e-machine" {
		t.Errorf("token claims: aud %v (want %s), client_id %v", claims["aud"], f.MCP.Resource, claims["client_id"])
	}
	if s := f.AS.Stats(t); s.ClientCredentialsGrants != 1 || s.CodeGrants != 0 {
		t.Errorf("AS counted %d client_credentials and %d code grants, want 1 and 0", s.ClientCredentialsGrants, s.CodeGrants)
	}

	// mcpkey token prints the same token: no second grant.
	if out := strings.TrimSpace(a.mustRun(t, 20*time.Second, "token", "machine").Stdout); out != tok.AccessToken {
		t.Error("mcpkey token printed another token than token.get gave")
	}
	// The go-sdk resource server takes it (mcpkey probe, no login allowed).
	r := a.mustRun(t, 30*time.Second, "probe", "machine", "--no-login", "--call", "whoami")
	if !strings.Contains(r.Stdout, "mcp:tools") {
		t.Errorf("probe's whoami does not show the token's scope:\n%s", r.Stdout)
	}

	ls := a.mustRun(t, 10*time.Second, "ls")
	if !strings.Contains(ls.Stdout, "client credentials") {
		t.Errorf("ls does not show the grant:\n%s", ls.Stdout)
	}
	var sessions []struct {
		Grant      string `json:"grant"`
		HasRefresh bool   `json:"has_refresh_token"`
	}
	if err := json.Unmarshal([]byte(a.mustRun(t, 10*time.Second, "ls", "--json").Stdout), &sessions); err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].Grant != "client_credentials" || sessions[0].HasRefresh {
		t.Errorf("ls --json: %+v, want one client_credentials session without a refresh token", sessions)
	}
	st := a.mustRun(t, 10*time.Second, "status")
	if !strings.Contains(st.Stdout, "1 client credentials") {
		t.Errorf("status does not count the grant:\n%s", st.Stdout)
	}
	for _, out := range []string{r.Stdout, r.Stderr, ls.Stdout, st.Stdout, a.p.stderr.String()} {
		if strings.Contains(out, "e2e-static-client-secret") || strings.Contains(out, tok.AccessToken) {
			t.Fatal("the client secret or the access token appears in output or the agent's log")
		}
	}
}

// TestClientCredentialsRegrantAtExpiry: a client_credentials session has
// no refresh token; when its token expires, 50 concurrent callers cause
// exactly one new grant at the AS and all get the same new token.
func TestClientCredentialsRegrantAtExpiry(t *testing.T) {
	f, a := machineAgent(t, "AS_ACCESS_TTL=6")
	ctx := deadline(t, 90*time.Second)
	first, err := a.token(ctx, "machine")
	if err != nil {
		t.Fatal(err)
	}
	before := f.AS.Stats(t)
	select { // a point in time, not readiness
	case <-time.After(time.Until(first.ExpiresAt)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	const n = 50
	toks := concurrentTokens(t, ctx, a, f.MCP.URL, n)
	for i, tok := range toks {
		if tok == first.AccessToken || tok != toks[0] {
			t.Fatalf("caller %d got a different or stale token", i)
		}
	}
	if d := f.AS.Stats(t).ClientCredentialsGrants - before.ClientCredentialsGrants; d != 1 {
		t.Errorf("%d client_credentials grants at the AS for %d concurrent callers, want exactly 1", d, n)
	}
}

// TestEnterpriseEndToEnd: enterprise-managed authorization against
// oidc-provider playing both parts (e2e/as registers the token exchange and
// the JWT bearer grant of the extension's profile). The first login signs
// in at the identity provider through Chromium, exchanges the ID token for
// an identity assertion and trades it for an access token the go-sdk
// server accepts. A second login (another server of the same IdP would do
// the same) opens no browser: the kept sign-in's ID token (30 s, inside the
// minute before expiry) is renewed with its refresh token.
func TestEnterpriseEndToEnd(t *testing.T) {
	chromium(t)
	f := startFixture(t, "AS_ID_TOKEN_TTL=30")
	home := t.TempDir()
	secret := filepath.Join(home, "wiki.secret")
	if err := os.WriteFile(secret, []byte("e2e-static-client-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[servers.wiki]\nurl = %q\ngrant = \"enterprise\"\nidp = \"corp\"\nclient_id = \"mcpkey-e2e-confidential\"\nclient_secret_file = %q\n\n"+
		"[idps.corp]\nissuer = %q\nclient_id = \"mcpkey-e2e\"\n", f.MCP.URL, secret, f.AS.Issuer)
	os.MkdirAll(filepath.Join(home, ".config", "mcpkey"), 0o700)
	if err := os.WriteFile(filepath.Join(home, ".config", "mcpkey", "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgentIn(t, bin(t, "chromebrowser"), home, []string{"MCPKEY_BACKEND=memory"}, "--backend", "memory")
	ctx := deadline(t, 90*time.Second)

	first := a.mustRun(t, 90*time.Second, "login", "wiki")
	if !strings.Contains(first.Stderr, "signed in to the identity provider corp") {
		t.Errorf("first login did not sign in at the IdP:\n%s", first.Stderr)
	}
	tok, err := a.token(ctx, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	if claims := jwtClaims(t, tok.AccessToken); claims["aud"] != f.MCP.Resource || claims["client_id"] != "mcpkey-e2e-confidential" {
		t.Errorf("access token claims: aud %v, client_id %v", claims["aud"], claims["client_id"])
	}
	a.mustRun(t, 30*time.Second, "probe", "wiki", "--no-login", "--call", "whoami")
	if !strings.Contains(a.mustRun(t, 10*time.Second, "ls").Stdout, "enterprise") {
		t.Error("ls does not show the enterprise grant")
	}

	second := a.mustRun(t, 30*time.Second, "login", "wiki")
	if strings.Contains(second.Stderr, "opening your browser") {
		t.Errorf("second login opened a browser:\n%s", second.Stderr)
	}
	var s struct {
		CodeGrants     int `json:"code_grants"`
		RefreshGrants  int `json:"refresh_grants"`
		TokenExchanges int `json:"token_exchanges"`
		JWTBearer      int `json:"jwt_bearer_grants"`
	}
	getJSON(t, f.AS.Issuer+"/_test/stats", &s)
	if s.CodeGrants != 1 || s.RefreshGrants != 1 || s.TokenExchanges != 2 || s.JWTBearer != 2 {
		t.Errorf("AS stats %+v: want 1 IdP sign-in, 1 ID token renewal, 2 exchanges, 2 JWT bearer grants", s)
	}
	if log := a.p.stderr.String(); strings.Contains(log, "eyJ") || strings.Contains(log, "e2e-static-client-secret") {
		t.Error("the agent's log holds a JWT or the client secret")
	}

	// logout --forget-idp drops the IdP sign-in: the next login opens the
	// browser again.
	out := a.mustRun(t, 30*time.Second, "logout", "wiki", "--forget-idp")
	if !strings.Contains(out.Stderr, "forgot the sign-in at the identity provider corp") {
		t.Errorf("logout --forget-idp:\n%s", out.Stderr)
	}
	if third := a.mustRun(t, 90*time.Second, "login", "wiki"); !strings.Contains(third.Stderr, "opening your browser") {
		t.Errorf("login after --forget-idp did not sign in at the IdP again:\n%s", third.Stderr)
	}
}
