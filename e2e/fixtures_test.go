package e2e

// Tests of the fixtures alone (no mcpkey): they prove the authorization
// server, the MCP server and the two $BROWSER programs behave as the mcpkey
// tests assume, so a failure there points at mcpkey, not at the harness.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestFixtureMCPServerChallenge: no token → 401 naming the PRM, whose
// resource is the server URL and whose AS is ours; the AS requires S256.
func TestFixtureMCPServerChallenge(t *testing.T) {
	f := startFixture(t)
	req, _ := http.NewRequest(http.MethodPost, f.MCP.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", resp.StatusCode)
	}
	want := fmt.Sprintf("resource_metadata=%q", f.MCP.ResourceMetadata)
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") || !strings.Contains(got, want) {
		t.Errorf("WWW-Authenticate = %q, want Bearer with %s", got, want)
	}

	// A forged token is refused too.
	req, _ = http.NewRequest(http.MethodPost, f.MCP.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged token: status %d, want 401", resp.StatusCode)
	}

	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, f.MCP.ResourceMetadata, &prm)
	if prm.Resource != f.MCP.URL {
		t.Errorf("PRM resource = %q, want %q", prm.Resource, f.MCP.URL)
	}
	if !slices.Equal(prm.AuthorizationServers, []string{f.AS.Issuer}) {
		t.Errorf("PRM authorization_servers = %q, want [%q]", prm.AuthorizationServers, f.AS.Issuer)
	}

	var meta asMeta
	getJSON(t, f.AS.Issuer+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != f.AS.Issuer || !slices.Contains(meta.CodeChallengeMethods, "S256") ||
		meta.RegistrationEndpoint == "" || meta.RevocationEndpoint == "" {
		t.Errorf("AS metadata = %+v", meta)
	}
	var stats struct {
		Refused int `json:"refused"`
	}
	getJSON(t, strings.TrimSuffix(f.MCP.URL, "/mcp")+"/_test/stats", &stats)
	if stats.Refused != 2 {
		t.Errorf("mcp server counted %d refusals, want 2", stats.Refused)
	}
}

type asMeta struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RegistrationEndpoint  string   `json:"registration_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// TestFixtureOAuthFlow runs a whole login by hand (DCR, PKCE, Chromium
// filling the forms, exchange with resource), calls the MCP server with the
// JWT, then checks refresh, rotation, the counters and grant revocation.
func TestFixtureOAuthFlow(t *testing.T) {
	chromium(t)
	f := startFixture(t)
	ctx := deadline(t, 90*time.Second)
	var meta asMeta
	getJSON(t, f.AS.Issuer+"/.well-known/oauth-authorization-server", &meta)

	// The one-shot loopback callback, as mcpkey's agent runs it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	got := make(chan url.Values, 1)
	cb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		fmt.Fprintln(w, "signed in; you can close this tab")
	})}
	go cb.Serve(ln)
	t.Cleanup(func() { cb.Close() })

	reg, _ := json.Marshal(map[string]any{
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "client_name": "mcpkey e2e fixture test",
	})
	resp, err := http.Post(meta.RegistrationEndpoint, "application/json", strings.NewReader(string(reg)))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&client)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || client.ClientID == "" {
		t.Fatalf("registration: %s, client_id %q", resp.Status, client.ClientID)
	}

	cfg := &oauth2.Config{
		ClientID:    client.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirect,
		Scopes:      []string{"mcp:tools"},
	}
	verifier := oauth2.GenerateVerifier()
	state := rand.Text()
	resource := oauth2.SetAuthURLParam("resource", f.MCP.Resource)
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), resource)

	browser := exec.CommandContext(ctx, bin(t, "chromebrowser"), authURL)
	browser.Env = append(baseEnv(t.TempDir()), "CHROMEBROWSER_CHROMIUM="+chromium(t))
	if out, err := browser.CombinedOutput(); err != nil {
		t.Fatalf("chromebrowser: %v\n%s", err, out)
	}
	var q url.Values
	select {
	case q = <-got:
	case <-ctx.Done():
		t.Fatal("no callback")
	}
	if q.Get("state") != state || q.Get("iss") != f.AS.Issuer || q.Get("code") == "" {
		t.Fatalf("callback: state ok %v, iss %q, code present %v, error %q",
			q.Get("state") == state, q.Get("iss"), q.Get("code") != "", q.Get("error"))
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token issued")
	}
	claims := jwtClaims(t, tok.AccessToken)
	if claims["aud"] != f.MCP.Resource || claims["sub"] != "alice" || claims["scope"] != "mcp:tools" {
		t.Errorf("access token claims: aud %v, sub %v, scope %v", claims["aud"], claims["sub"], claims["scope"])
	}

	// The MCP server accepts the JWT and tells who called.
	cs := connectMCP(t, ctx, f.MCP.URL, tok.AccessToken)
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"echo", "whoami"}) {
		t.Errorf("tools = %v", names)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var who struct {
		Aud []string `json:"aud"`
		Sub string   `json:"sub"`
	}
	json.Unmarshal(b, &who)
	if !slices.Equal(who.Aud, []string{f.MCP.Resource}) || who.Sub != "alice" {
		t.Errorf("whoami = %s", b)
	}
	if strings.Contains(string(b), tok.AccessToken) {
		t.Error("whoami leaked the token")
	}

	// Refresh with resource: a new access token and a rotated refresh token.
	before := f.AS.Stats(t)
	rt2, status := refresh(t, meta.TokenEndpoint, client.ClientID, tok.RefreshToken, f.MCP.Resource)
	if status != http.StatusOK || rt2 == "" || rt2 == tok.RefreshToken {
		t.Fatalf("refresh: status %d, rotated %v", status, rt2 != "" && rt2 != tok.RefreshToken)
	}
	after := f.AS.Stats(t)
	if after.RefreshGrants-before.RefreshGrants != 1 || after.LiveRefreshTokens != 1 {
		t.Errorf("after one refresh: %+v (before %+v)", after, before)
	}

	// Revoking the grants kills the live refresh token: invalid_grant.
	if n := f.AS.RevokeGrants(t); n < 1 {
		t.Errorf("revoke-grants revoked %d grants", n)
	}
	if _, status := refresh(t, meta.TokenEndpoint, client.ClientID, rt2, f.MCP.Resource); status != http.StatusBadRequest {
		t.Errorf("refresh after revoke-grants: status %d, want 400 invalid_grant", status)
	}
	if s := f.AS.Stats(t); s.LiveRefreshTokens != 0 {
		t.Errorf("live refresh tokens after revoke-grants: %d", s.LiveRefreshTokens)
	}

	// The revocation endpoint answers 200 and is counted.
	form := url.Values{"token": {rt2}, "token_type_hint": {"refresh_token"}, "client_id": {client.ClientID}}
	resp, err = http.PostForm(meta.RevocationEndpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := f.AS.Stats(t); resp.StatusCode != http.StatusOK || s.RevocationRequests != 1 {
		t.Errorf("revocation: %s, counted %d", resp.Status, s.RevocationRequests)
	}
}

// refresh posts a refresh_token grant with resource; it returns the new
// refresh token and the HTTP status.
func refresh(t *testing.T, endpoint, clientID, rt, resource string) (string, int) {
	t.Helper()
	resp, err := http.PostForm(endpoint, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}, "resource": {resource},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode == http.StatusBadRequest && out.Error != "invalid_grant" {
		t.Errorf("refresh error = %q, want invalid_grant", out.Error)
	}
	return out.RefreshToken, resp.StatusCode
}

// bearer adds a fixed Authorization header.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// connectMCP opens a go-sdk client session to url with a fixed bearer token.
func connectMCP(t *testing.T, ctx context.Context, endpoint, tok string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpkey-e2e-test", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: bearer{tok, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestFixtureAutobrowser: autobrowser follows exactly one redirect, to the
// callback, and fails when the authorization endpoint does not redirect.
func TestFixtureAutobrowser(t *testing.T) {
	got := make(chan url.Values, 1)
	callback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		w.WriteHeader(http.StatusBadRequest) // whatever the agent answers, the browser is done
	}))
	defer callback.Close()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/authorize" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Redirect(w, r, callback.URL+"/callback?code=c0de&state="+r.URL.Query().Get("state"), http.StatusFound)
	}))
	defer as.Close()

	ctx := deadline(t, 30*time.Second)
	out, err := exec.CommandContext(ctx, bin(t, "autobrowser"), as.URL+"/authorize?state=s1&code_challenge=x").CombinedOutput()
	if err != nil {
		t.Fatalf("autobrowser: %v\n%s", err, out)
	}
	select {
	case q := <-got:
		if q.Get("code") != "c0de" || q.Get("state") != "s1" {
			t.Errorf("callback query = %v", q)
		}
	default:
		t.Fatal("callback never reached")
	}
	if strings.Contains(string(out), "c0de") || strings.Contains(string(out), "s1") {
		t.Errorf("autobrowser logged a query string:\n%s", out)
	}

	err = exec.CommandContext(ctx, bin(t, "autobrowser"), as.URL+"/no-redirect").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("autobrowser on a non-redirect: %v, want exit 1", err)
	}
}
