package e2e

// mcpkey against Ory Hydra v2.3.0, a production OAuth 2.1 / OIDC server
// nobody on this project wrote (issue 12): built from its Go module by
// e2e/hydra/build.sh (cached per machine), run with `hydra serve all --dev`
// on an in-memory database, dynamic client registration on, stock
// default_scope. Hydra has no login UI: hydraConsent accepts every login
// and consent through Hydra's admin API, and headless Chromium
// (chromebrowser) walks the redirects. The protected MCP server is the
// go-sdk one of e2e/mcpserver in its introspection mode: it asks Hydra's
// admin API about each token and requires its audience to be the server.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	hydraOnce sync.Once
	hydraPath string
	hydraErr  error
)

// hydraBin returns the Hydra binary, building it once per machine (the
// first build takes minutes; .ci/run builds it before the tests).
func hydraBin(t testing.TB) string {
	t.Helper()
	hydraOnce.Do(func() {
		cmd := exec.Command("sh", filepath.Join(repoRoot, "e2e", "hydra", "build.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			hydraErr = fmt.Errorf("%v\n%s", err, stderr.String())
			return
		}
		hydraPath = strings.TrimSpace(string(out))
	})
	if hydraErr != nil {
		skipOrFail(t, "ory hydra could not be built (e2e/hydra/build.sh): %v", hydraErr)
	}
	return hydraPath
}

// hydraConsent is the login and consent app Hydra sends the browser to: it
// accepts every login (subject "e2e-user") and grants every requested
// scope and audience, through Hydra's admin API.
type hydraConsent struct {
	srv      *httptest.Server
	admin    string // Hydra's admin URL, set before Hydra starts
	logins   atomic.Int32
	consents atomic.Int32
}

func startHydraConsent(t testing.TB) *hydraConsent {
	t.Helper()
	c := &hydraConsent{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("login_challenge")
		to, err := c.accept(r.Context(), "login", ch, map[string]any{"subject": "e2e-user", "remember": false})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.logins.Add(1)
		http.Redirect(w, r, to, http.StatusFound)
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("consent_challenge")
		var req struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err := c.adminCall(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(ch), nil, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		to, err := c.accept(r.Context(), "consent", ch, map[string]any{
			"grant_scope": req.Scope, "grant_access_token_audience": req.Audience, "remember": false,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.consents.Add(1)
		http.Redirect(w, r, to, http.StatusFound)
	})
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	return c
}

// accept accepts a login or consent challenge and returns where to send
// the browser next.
func (c *hydraConsent) accept(ctx context.Context, kind, challenge string, body any) (string, error) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	path := "/admin/oauth2/auth/requests/" + kind + "/accept?" + kind + "_challenge=" + url.QueryEscape(challenge)
	if err := c.adminCall(ctx, http.MethodPut, path, body, &out); err != nil {
		return "", err
	}
	if out.RedirectTo == "" {
		return "", fmt.Errorf("hydra accepted the %s without redirect_to", kind)
	}
	return out.RedirectTo, nil
}

func (c *hydraConsent) adminCall(ctx context.Context, method, path string, body, out any) error {
	return hydraAdmin(ctx, c.admin, method, path, body, out)
}

// hydraAdmin calls Hydra's admin API with a JSON body and decodes a JSON
// answer into out (when not nil).
func hydraAdmin(ctx context.Context, admin, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, admin+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra admin %s %s: %s: %s", method, strings.SplitN(path, "?", 2)[0], resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// hydraServer is a running `hydra serve all --dev` with an in-memory
// database: a restart forgets every client and grant.
type hydraServer struct {
	Issuer  string // http://127.0.0.1:PORT/ (Hydra's issuer has the slash)
	Admin   string // http://127.0.0.1:PORT
	config  string
	consent *hydraConsent
	p       *proc
}

// startHydra starts Hydra with access tokens living accessTTL.
func startHydra(t *testing.T, accessTTL time.Duration) *hydraServer {
	t.Helper()
	exe := hydraBin(t)
	consent := startHydraConsent(t)
	public, admin := freePort(t), freePort(t)
	h := &hydraServer{
		Issuer:  "http://127.0.0.1:" + strconv.Itoa(public) + "/",
		Admin:   "http://127.0.0.1:" + strconv.Itoa(admin),
		config:  filepath.Join(t.TempDir(), "hydra.yml"),
		consent: consent,
	}
	consent.admin = h.Admin
	// Stock default_scope (offline_access offline openid); registration on,
	// and advertised (client_registration_url) so discovery finds it.
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
urls:
  self: {issuer: %q}
  login: %q
  consent: %q
oidc:
  dynamic_client_registration: {enabled: true}
webfinger:
  oidc_discovery: {client_registration_url: %q}
ttl:
  access_token: %s
secrets:
  system: ["mcpkey-e2e-only-system-secret-0123456789"]
log:
  leak_sensitive_values: false
`, public, admin, h.Issuer, consent.srv.URL+"/login", consent.srv.URL+"/consent", h.Issuer+"oauth2/register", accessTTL)
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start(t, exe)
	return h
}

func (h *hydraServer) start(t testing.TB, exe string) {
	t.Helper()
	cmd := exec.Command(exe, "serve", "all", "--dev", "--sqa-opt-out", "--config", h.config)
	cmd.Env = baseEnv(t.TempDir())
	h.p = start(t, "hydra", cmd, nil)
	ctx := deadline(t, 60*time.Second)
	err := poll(ctx, 50*time.Millisecond, func() bool {
		select {
		case <-h.p.done:
			return true
		default:
		}
		resp, err := http.Get(h.Admin + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-h.p.done:
		t.Fatalf("hydra exited at start: %v\n%s", h.p.err, h.p.stderr.String())
	default:
	}
	if err != nil {
		t.Fatalf("hydra never became ready: %v\n%s", err, h.p.stderr.String())
	}
	// Hydra makes its signing keys at the first request that needs them
	// (RSA, seconds on a busy machine): make them now, so no test's login
	// waits for them within its own deadlines.
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks.json"} {
		req, _ := http.NewRequestWithContext(deadline(t, 120*time.Second), http.MethodGet, strings.TrimSuffix(h.Issuer, "/")+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("hydra %s: %v\n%s", path, err, h.p.stderr.String())
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("hydra %s: %s", path, resp.Status)
		}
	}
}

// restart stops Hydra and starts it again on the same ports: the memory
// database forgets every client registration and grant.
func (h *hydraServer) restart(t testing.TB) {
	t.Helper()
	h.p.stop()
	h.start(t, hydraBin(t))
}

// clients lists Hydra's OAuth clients.
func (h *hydraServer) clients(t testing.TB) []hydraClient {
	t.Helper()
	var cs []hydraClient
	if err := hydraAdmin(t.Context(), h.Admin, http.MethodGet, "/admin/clients", nil, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

type hydraClient struct {
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Audience []string `json:"audience"`
}

// introspection is Hydra's answer about a token.
type introspection struct {
	Active   bool     `json:"active"`
	Aud      []string `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Sub      string   `json:"sub"`
}

func (h *hydraServer) introspect(t testing.TB, tok string) introspection {
	t.Helper()
	resp, err := http.PostForm(h.Admin+"/admin/oauth2/introspect", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ir introspection
	if err := json.NewDecoder(resp.Body).Decode(&ir); err != nil {
		t.Fatalf("introspect: %v", err)
	}
	return ir
}

// startHydraMCP starts the go-sdk MCP server checking tokens by Hydra's
// introspection (aud must contain it), requiring scopes ("" for none).
func startHydraMCP(t testing.TB, h *hydraServer, scopes string) *mcpServer {
	t.Helper()
	return startMCPServer(t, h.Issuer, "-introspect", h.Admin+"/admin/oauth2/introspect", "-scopes", scopes)
}

// countingBrowser returns a $BROWSER that records each time it is opened
// and then signs in through chromebrowser, and a function counting opens.
func countingBrowser(t testing.TB) (string, func() int) {
	t.Helper()
	chromium(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "opens")
	script := filepath.Join(dir, "browser")
	// A browser stuck on an error page gives up well inside the tests'
	// deadlines.
	body := fmt.Sprintf("#!/bin/sh\necho opened >> %q\nCHROMEBROWSER_TIMEOUT=30s exec %q \"$@\"\n", log, bin(t, "chromebrowser"))
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script, func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "opened")
	}
}

// hydraAgent starts an agent whose browser is counted, with config (TOML,
// may be "") applied.
func hydraAgent(t *testing.T, config string) (*agentProc, func() int) {
	t.Helper()
	browser, opens := countingBrowser(t)
	a := startAgent(t, browser)
	if config != "" {
		a.configure(t, config)
	}
	return a, opens
}

func audienceConfig(srv *mcpServer) string {
	return fmt.Sprintf("[servers.hydra]\nurl = %q\nresource_as_audience = true\n", srv.URL)
}

// hydraLogin starts Hydra (access tokens living accessTTL), the MCP server
// requiring scopes, and an agent configured with resource_as_audience for
// it as "hydra"; signs in and returns the session's first token.
func hydraLogin(t *testing.T, accessTTL time.Duration, scopes string) (*hydraServer, *mcpServer, *agentProc, func() int, token) {
	t.Helper()
	h := startHydra(t, accessTTL)
	srv := startHydraMCP(t, h, scopes)
	a, opens := hydraAgent(t, audienceConfig(srv))
	a.mustRun(t, 90*time.Second, "login", "hydra")
	tok, err := a.token(deadline(t, 20*time.Second), "hydra")
	if err != nil {
		t.Fatal(err)
	}
	return h, srv, a, opens, tok
}

// TestHydraDCRLogin: a login with dynamic client registration at Hydra,
// for a server that requires the scope mcp:tools (not in Hydra's stock
// default_scope: registration must ask for it), with resource_as_audience.
// One browser window; the server accepts the token.
func TestHydraDCRLogin(t *testing.T) {
	h, srv, a, opens, tok := hydraLogin(t, time.Hour, "mcp:tools")
	if n := opens(); n != 1 {
		t.Errorf("browser opened %d times, want 1", n)
	}
	r := a.mustRun(t, 30*time.Second, "probe", "hydra", "--call", "whoami")
	if !strings.Contains(r.Stdout, "whoami") || !strings.Contains(r.Stdout, srv.Resource) {
		t.Errorf("probe output lacks the tool or the audience:\n%s", r.Stdout)
	}
	ir := h.introspect(t, tok.AccessToken)
	if !ir.Active || !slices.Contains(ir.Aud, srv.Resource) || !strings.Contains(" "+ir.Scope+" ", " mcp:tools ") {
		t.Errorf("token at hydra: %+v, want active with aud %s and scope mcp:tools", ir, srv.Resource)
	}
	cs := h.clients(t)
	if len(cs) != 1 || !slices.Contains(cs[0].Audience, srv.Resource) {
		t.Errorf("hydra clients = %+v, want one registration allowing %s", cs, srv.Resource)
	}
	if n := opens(); n != 1 {
		t.Errorf("browser opened %d times after probe, want 1", n)
	}
}

// waitNewToken polls token.get until it answers a token other than old.
func waitNewToken(t *testing.T, a *agentProc, server, old string, within time.Duration) token {
	t.Helper()
	ctx := deadline(t, within)
	var tok token
	var lastErr error
	err := poll(ctx, 250*time.Millisecond, func() bool {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		if tok, err = a.token(c, server); ctx.Err() == nil {
			lastErr = err
		}
		return err == nil && tok.AccessToken != old
	})
	if err != nil {
		t.Fatalf("no new token within %v (last error: %v)\nagent log:\n%s", within, lastErr, a.p.stderr.String())
	}
	return tok
}

// TestHydraRefreshRotation: with 10 s access tokens the agent refreshes at
// Hydra, which rotates the refresh token and revokes the old access token;
// the second refresh works only if the rotated refresh token was kept, and
// every refreshed token keeps the audience.
func TestHydraRefreshRotation(t *testing.T) {
	h, srv, a, opens, tok := hydraLogin(t, 10*time.Second, "")
	for i := range 2 {
		next := waitNewToken(t, a, "hydra", tok.AccessToken, 40*time.Second)
		if ir := h.introspect(t, tok.AccessToken); ir.Active {
			t.Errorf("refresh %d: hydra still accepts the replaced access token", i+1)
		}
		if ir := h.introspect(t, next.AccessToken); !ir.Active || !slices.Contains(ir.Aud, srv.Resource) {
			t.Errorf("refresh %d: new token at hydra: %+v, want active with aud %s", i+1, ir, srv.Resource)
		}
		tok = next
	}
	a.mustRun(t, 30*time.Second, "probe", "hydra")
	if n := opens(); n != 1 {
		t.Errorf("browser opened %d times, want 1 (refreshes need none)", n)
	}
}

// TestHydraPreregisteredRefresh: a client created on Hydra's admin API,
// used with --client-id and --client-secret-file, refreshes with that
// client (issue 12 §2: the session records its client).
func TestHydraPreregisteredRefresh(t *testing.T) {
	h := startHydra(t, 10*time.Second)
	srv := startHydraMCP(t, h, "")
	secret := "e2e-preregistered-client-secret-0123456789"
	err := hydraAdmin(t.Context(), h.Admin, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": "mcpkey-prereg", "client_secret": secret,
		"redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types":   []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"scope": "offline_access offline openid", "audience": []string{srv.Resource},
		"token_endpoint_auth_method": "client_secret_basic",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, opens := hydraAgent(t, audienceConfig(srv))
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustRun(t, 90*time.Second, "login", "hydra", "--client-id", "mcpkey-prereg", "--client-secret-file", secretFile)
	first, err := a.token(deadline(t, 20*time.Second), "hydra")
	if err != nil {
		t.Fatal(err)
	}
	if ir := h.introspect(t, first.AccessToken); ir.ClientID != "mcpkey-prereg" {
		t.Errorf("token issued to %q, want mcpkey-prereg", ir.ClientID)
	}
	next := waitNewToken(t, a, "hydra", first.AccessToken, 40*time.Second)
	if ir := h.introspect(t, next.AccessToken); !ir.Active || ir.ClientID != "mcpkey-prereg" {
		t.Errorf("refreshed token at hydra: %+v, want active for mcpkey-prereg", ir)
	}
	if cs := h.clients(t); len(cs) != 1 {
		t.Errorf("hydra has %d clients, want only the pre-registered one", len(cs))
	}
	if n := opens(); n != 1 {
		t.Errorf("browser opened %d times, want 1", n)
	}
}

// TestHydraRestartReregisters: Hydra restarted on a memory database forgets
// mcpkey's registration. The next login notices (Hydra's authorization
// endpoint redirects to its error page with invalid_client), registers
// again once, says so, and finishes: no hang, one browser window.
func TestHydraRestartReregisters(t *testing.T) {
	h, _, a, opens, _ := hydraLogin(t, time.Hour, "")
	before := h.clients(t)
	h.restart(t)
	if cs := h.clients(t); len(cs) != 0 {
		t.Fatalf("hydra kept %d clients across a restart", len(cs))
	}
	r := a.run(t, 75*time.Second, "login", "hydra")
	if r.Code != 0 {
		t.Fatalf("login after hydra's restart: exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "registering again") {
		t.Errorf("login did not say it registered again:\n%s", r.Stderr)
	}
	checkReregistered(t, h, a, before, opens)
}

// TestHydraRestartRefresh: after Hydra forgot the client, the refresh at
// the next expiry gets 401 invalid_client: `mcpkey token` says at once that
// a login is needed and the registration was dropped (exit 3); the login
// then registers again.
func TestHydraRestartRefresh(t *testing.T) {
	h, _, a, opens, first := hydraLogin(t, 5*time.Second, "")
	before := h.clients(t)
	h.restart(t)
	ctx := deadline(t, 30*time.Second)
	if err := poll(ctx, 200*time.Millisecond, func() bool { return time.Now().After(first.ExpiresAt) }); err != nil {
		t.Fatal(err)
	}
	r := a.run(t, 30*time.Second, "token", "hydra")
	if r.Code != 3 || !strings.Contains(r.Stderr, "no longer accepts client") || !strings.Contains(r.Stderr, "registers again") ||
		!strings.Contains(r.Stderr, "hint: run mcpkey login") {
		t.Errorf("token after hydra forgot the client: exit %d, want 3 saying so, with a login hint\n%s", r.Code, r.Stderr)
	}
	a.mustRun(t, 75*time.Second, "login", "hydra")
	checkReregistered(t, h, a, before, opens)
}

// checkReregistered: Hydra holds one new registration, the browser opened
// once for each login, and the new session gets tokens.
func checkReregistered(t *testing.T, h *hydraServer, a *agentProc, before []hydraClient, opens func() int) {
	t.Helper()
	after := h.clients(t)
	if len(after) != 1 || (len(before) == 1 && after[0].ClientID == before[0].ClientID) {
		t.Errorf("clients after the restart = %+v, want one new registration", after)
	}
	if n := opens(); n != 2 {
		t.Errorf("browser opened %d times, want 2 (one login each)", n)
	}
	a.mustRun(t, 30*time.Second, "token", "hydra")
}

// TestHydraAudience: without resource_as_audience Hydra's tokens carry no
// audience and the server refuses them; `mcpkey probe` then stops after
// one extra sign-in and says why. With the setting, a session works.
func TestHydraAudience(t *testing.T) {
	h := startHydra(t, time.Hour)
	srv := startHydraMCP(t, h, "")
	a, opens := hydraAgent(t, "")

	r := a.run(t, 180*time.Second, "probe", srv.URL)
	if r.Code == 0 {
		t.Fatalf("probe succeeded although hydra's tokens carry no audience:\n%s", r.Stdout)
	}
	const sentence = "the server rejected a freshly issued token; its audience may not match (see "
	if !strings.Contains(r.Stderr, sentence) {
		t.Errorf("probe did not say why:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "hint: if the authorization server takes the audience as \"audience\" (Ory Hydra, Auth0), set resource_as_audience = true") {
		t.Errorf("probe gave no hint:\n%s", r.Stderr)
	}
	if n := opens(); n > 2 {
		t.Errorf("browser opened %d times, want at most 2 (the login and one extra sign-in)", n)
	}
	if n := h.consent.logins.Load(); n > 2 {
		t.Errorf("hydra saw %d logins, want at most 2", n)
	}
	tok, err := a.token(deadline(t, 20*time.Second), srv.URL)
	if err == nil {
		if ir := h.introspect(t, tok.AccessToken); len(ir.Aud) != 0 {
			t.Errorf("without the setting the token has aud %q; the test assumes hydra leaves it empty", ir.Aud)
		}
	}

	// The setting, then a login: the token carries the audience.
	opened := opens()
	a.configure(t, fmt.Sprintf("[issuers.%q]\nresource_as_audience = true\n", h.Issuer))
	a.mustRun(t, 90*time.Second, "login", srv.URL)
	r = a.mustRun(t, 30*time.Second, "probe", srv.URL, "--call", "whoami")
	if !strings.Contains(r.Stdout, srv.Resource) {
		t.Errorf("whoami does not show the audience:\n%s", r.Stdout)
	}
	if n := opens() - opened; n != 1 {
		t.Errorf("browser opened %d times for the login with the setting, want 1", n)
	}
	if cs := h.clients(t); !slices.ContainsFunc(cs, func(c hydraClient) bool { return slices.Contains(c.Audience, srv.Resource) }) {
		t.Errorf("no hydra client allows the audience %s: %+v", srv.Resource, cs)
	}
}

// TestHydraLogoutRevokes: logout revokes the grant at Hydra (RFC 7009):
// the session's access token is no longer active there.
func TestHydraLogoutRevokes(t *testing.T) {
	h, _, a, _, tok := hydraLogin(t, time.Hour, "")
	if !h.introspect(t, tok.AccessToken).Active {
		t.Fatal("the token is not active at hydra before logout")
	}
	r := a.mustRun(t, 30*time.Second, "logout", "hydra", "--json")
	var out struct {
		Revoked bool `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || !out.Revoked {
		t.Errorf("logout --json = %s (err %v), want revoked", r.Stdout, err)
	}
	if h.introspect(t, tok.AccessToken).Active {
		t.Error("hydra still accepts the access token after logout revoked the grant")
	}
	if _, err := a.token(deadline(t, 20*time.Second), "hydra"); err == nil {
		t.Error("token.get still answers after logout")
	}
}
