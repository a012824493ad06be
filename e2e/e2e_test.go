package e2e

// mcpkey against the real authorization server and MCP server (issue 3 §8):
// login through Chromium, token.get, proactive refresh, single-flight
// refresh under 100 concurrent callers, invalid_grant → needs_login, AS down
// → still-valid token served, logout revokes; and the README's Node and
// Python examples (issue 2 §2).

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loggedIn starts a fixture (env for the AS, e.g. AS_ACCESS_TTL=8), an agent
// whose $BROWSER is chromebrowser, and logs in.
func loggedIn(t *testing.T, env ...string) (*fixture, *agentProc) {
	t.Helper()
	chromium(t)
	f := startFixture(t, env...)
	a := startAgent(t, bin(t, "chromebrowser"))
	a.mustRun(t, 90*time.Second, "login", f.MCP.URL)
	return f, a
}

func TestLoginWithChromium(t *testing.T) {
	f, a := loggedIn(t)
	ctx := deadline(t, 60*time.Second)

	// mcpkey token prints only the access token: a JWT for this resource.
	r := a.mustRun(t, 20*time.Second, "token", f.MCP.URL)
	at := strings.TrimSpace(r.Stdout)
	if strings.ContainsAny(at, " \n") {
		t.Fatalf("mcpkey token printed more than the token: %q", r.Stdout)
	}
	if claims := jwtClaims(t, at); claims["aud"] != f.MCP.Resource || claims["sub"] != "alice" || claims["cnf"] != nil {
		t.Errorf("token claims: aud %v, sub %v, cnf %v", claims["aud"], claims["sub"], claims["cnf"])
	}
	// oidc-provider offers DPoP, but this server's challenge offers only
	// Bearer: the session holds a bearer token (no cnf above), one sign-in.
	var meta struct {
		DPoPAlgs []string `json:"dpop_signing_alg_values_supported"`
	}
	getJSON(t, f.AS.Issuer+"/.well-known/openid-configuration", &meta)
	if len(meta.DPoPAlgs) == 0 {
		t.Error("the AS does not advertise DPoP: this test no longer shows bearer sessions despite it")
	}
	if strings.Contains(r.Stderr, at) {
		t.Error("mcpkey token wrote the token to stderr")
	}

	// The MCP server accepts it.
	cs := connectMCP(t, ctx, f.MCP.URL, at)
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("list tools with the agent's token: %v", err)
	}

	// probe connects, lists tools and names the server.
	r = a.mustRun(t, 30*time.Second, "probe", f.MCP.URL)
	for _, want := range []string{"mcpkey-e2e-server", "1.0.0", "whoami", "echo"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("probe output lacks %q:\n%s", want, r.Stdout)
		}
	}

	ss := a.list(t)
	if len(ss) != 1 || ss[0].Server != f.MCP.Resource || ss[0].Issuer != f.AS.Issuer || ss[0].State != "ready" {
		t.Errorf("sessions = %+v", ss)
	}
	if s := f.AS.Stats(t); s.CodeGrants != 1 || s.Registrations != 1 {
		t.Errorf("AS saw %d code grants and %d registrations, want 1 and 1", s.CodeGrants, s.Registrations)
	}
	// Nothing secret in the agent's log.
	if strings.Contains(a.p.stderr.String(), at) {
		t.Error("the agent logged the access token")
	}
}

func TestTokenGetOverSocket(t *testing.T) {
	f, a := loggedIn(t)
	ctx := deadline(t, 30*time.Second)
	tok, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatalf("token.get: %v", err)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") || tok.Server != f.MCP.Resource {
		t.Errorf("token.get = type %q server %q, token present %v", tok.TokenType, tok.Server, tok.AccessToken != "")
	}
	exp := jwtClaims(t, tok.AccessToken)["exp"].(float64)
	if d := tok.ExpiresAt.Sub(time.Unix(int64(exp), 0)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("expires_at %v, JWT exp %v", tok.ExpiresAt, time.Unix(int64(exp), 0))
	}
	if !slices.Contains(tok.Scopes, "mcp:tools") {
		t.Errorf("scopes = %v", tok.Scopes)
	}
	// A hot token.get is served from the cache: same token, no AS traffic.
	before := f.AS.Stats(t)
	tok2, err := a.token(ctx, f.MCP.URL)
	if err != nil || tok2.AccessToken != tok.AccessToken {
		t.Errorf("second token.get: %v, same token %v", err, tok2.AccessToken == tok.AccessToken)
	}
	if after := f.AS.Stats(t); after != before {
		t.Errorf("a cached token.get reached the AS: %+v → %+v", before, after)
	}

	// An unknown server is not_found or needs_login, never a token.
	_, err = a.token(ctx, "http://127.0.0.1:1/nothing")
	var re *rpcError
	if !errors.As(err, &re) || (re.Data.Code != "not_found" && re.Data.Code != "needs_login") {
		t.Errorf("token.get for an unknown server: %v", err)
	}
}

// TestProactiveRefresh: with 10 s tokens the agent hands out a new token
// before the old one expires, and every token it hands out is still valid.
func TestProactiveRefresh(t *testing.T) {
	f, a := loggedIn(t, "AS_ACCESS_TTL=10")
	ctx := deadline(t, 60*time.Second)
	first, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatal(err)
	}
	var next token
	err = poll(ctx, 200*time.Millisecond, func() bool {
		tok, err := a.token(ctx, f.MCP.URL)
		if err != nil {
			t.Errorf("token.get: %v", err)
			return true
		}
		if !tok.ExpiresAt.After(time.Now()) {
			t.Errorf("agent served an expired token (expired %v)", tok.ExpiresAt)
			return true
		}
		next = tok
		return tok.AccessToken != first.AccessToken
	})
	if err != nil {
		t.Fatalf("no new token before %v: %v", first.ExpiresAt, err)
	}
	if t.Failed() {
		return
	}
	if now := time.Now(); !now.Before(first.ExpiresAt) {
		t.Errorf("refreshed only at %v, after the old token expired at %v", now, first.ExpiresAt)
	}
	if !next.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("new expiry %v not after old %v", next.ExpiresAt, first.ExpiresAt)
	}
	if s := f.AS.Stats(t); s.RefreshGrants < 1 {
		t.Errorf("AS saw no refresh grant: %+v", s)
	}
}

// TestConcurrentTokenGetAtExpiry: 100 callers at expiry cause exactly one
// refresh at the AS, all get the same new token, and the rotated grant
// still works afterwards.
func TestConcurrentTokenGetAtExpiry(t *testing.T) {
	f, a := loggedIn(t, "AS_ACCESS_TTL=6")
	ctx := deadline(t, 90*time.Second)
	first, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatal(err)
	}
	before := f.AS.Stats(t)
	// Wait until the token has expired (a point in time, not readiness).
	select {
	case <-time.After(time.Until(first.ExpiresAt)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}

	const n = 100
	toks := concurrentTokens(t, ctx, a, f.MCP.URL, n)
	for i, tok := range toks {
		if tok == first.AccessToken || tok != toks[0] {
			t.Fatalf("caller %d got a different or stale token", i)
		}
	}
	after := f.AS.Stats(t)
	if d := after.RefreshGrants - before.RefreshGrants; d != 1 {
		t.Errorf("%d refreshes at the AS for %d concurrent callers, want exactly 1", d, n)
	}

	// The grant is alive: after the next expiry, one more refresh works.
	second, _ := a.token(ctx, f.MCP.URL)
	select {
	case <-time.After(time.Until(second.ExpiresAt)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	third, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatalf("token.get after the next expiry: %v", err)
	}
	if third.AccessToken == second.AccessToken || !third.ExpiresAt.After(time.Now()) {
		t.Error("no fresh token after the next expiry")
	}
	if s := f.AS.Stats(t); s.GrantsRevoked != 0 {
		t.Errorf("the AS revoked %d grants (refresh token replayed?)", s.GrantsRevoked)
	}
}

// concurrentTokens runs n token.get calls for server at once (released
// together) and returns their access tokens; any error fails the test.
func concurrentTokens(t *testing.T, ctx context.Context, a *agentProc, server string, n int) []string {
	t.Helper()
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := a.token(ctx, server)
			toks[i], errs[i] = tok.AccessToken, err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	return toks
}

// TestInvalidGrantNeedsLogin: the grant is revoked at the AS; once the
// access token expires, token.get answers needs_login and the session shows
// it, without being deleted.
func TestInvalidGrantNeedsLogin(t *testing.T) {
	f, a := loggedIn(t, "AS_ACCESS_TTL=5")
	ctx := deadline(t, 60*time.Second)
	first, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.AS.RevokeGrants(t); n < 1 {
		t.Fatalf("revoked %d grants", n)
	}
	select {
	case <-time.After(time.Until(first.ExpiresAt)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	var re *rpcError
	err = poll(ctx, 200*time.Millisecond, func() bool {
		_, err := a.token(ctx, f.MCP.URL)
		return errors.As(err, &re)
	})
	if err != nil || re.Data.Code != "needs_login" {
		t.Fatalf("token.get after invalid_grant: %v, want needs_login", re)
	}
	if r := a.run(t, 20*time.Second, "token", f.MCP.URL); r.Code == 0 || r.Stdout != "" {
		t.Errorf("mcpkey token after invalid_grant: exit %d, stdout %q", r.Code, r.Stdout)
	}
	ss := a.list(t)
	if len(ss) != 1 || ss[0].State != "needs_login" {
		t.Errorf("sessions = %+v, want one in needs_login", ss)
	}
}

// TestAuthServerDown: the AS dies; a still-valid token is served and
// nothing is deleted, even when a refresh is forced and fails.
func TestAuthServerDown(t *testing.T) {
	f, a := loggedIn(t)
	ctx := deadline(t, 60*time.Second)
	first, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatal(err)
	}
	f.AS.p.kill()
	tok, err := a.token(ctx, f.MCP.URL)
	if err != nil || tok.AccessToken != first.AccessToken {
		t.Fatalf("token.get with the AS down: %v (same token %v)", err, tok.AccessToken == first.AccessToken)
	}
	// Force a refresh: asking for more lifetime than the token has left.
	var forced token
	err = a.call(ctx, "token.get", map[string]any{"server": f.MCP.URL, "min_ttl_seconds": 3600}, &forced)
	var re *rpcError
	if errors.As(err, &re) && re.Data.Code == "needs_login" {
		t.Errorf("a network error turned into needs_login")
	}
	ss := a.list(t)
	if len(ss) != 1 || ss[0].State == "needs_login" {
		t.Errorf("sessions after the AS died = %+v, want the session kept", ss)
	}
	tok, err = a.token(ctx, f.MCP.URL)
	if err != nil || tok.AccessToken != first.AccessToken {
		t.Errorf("token.get after a failed refresh: %v", err)
	}
}

// TestLogoutRevokes: logout revokes the refresh token at the AS and forgets
// the session.
func TestLogoutRevokes(t *testing.T) {
	f, a := loggedIn(t)
	ctx := deadline(t, 60*time.Second)
	if s := f.AS.Stats(t); s.LiveRefreshTokens != 1 {
		t.Fatalf("live refresh tokens after login: %d", s.LiveRefreshTokens)
	}
	a.mustRun(t, 30*time.Second, "logout", f.MCP.URL)
	s := f.AS.Stats(t)
	if s.RevocationRequests < 1 || s.LiveRefreshTokens != 0 {
		t.Errorf("after logout: %d revocation requests, %d live refresh tokens", s.RevocationRequests, s.LiveRefreshTokens)
	}
	if ss := a.list(t); len(ss) != 0 {
		t.Errorf("sessions after logout = %+v", ss)
	}
	_, err := a.token(ctx, f.MCP.URL)
	var re *rpcError
	if !errors.As(err, &re) || (re.Data.Code != "not_found" && re.Data.Code != "needs_login") {
		t.Errorf("token.get after logout: %v", err)
	}
}

// TestLogoutKeepRemote: --keep-remote forgets locally and leaves the AS alone.
func TestLogoutKeepRemote(t *testing.T) {
	f, a := loggedIn(t)
	a.mustRun(t, 30*time.Second, "logout", f.MCP.URL, "--keep-remote")
	if s := f.AS.Stats(t); s.RevocationRequests != 0 || s.LiveRefreshTokens != 1 {
		t.Errorf("after logout --keep-remote: %+v", s)
	}
	if ss := a.list(t); len(ss) != 0 {
		t.Errorf("sessions after logout = %+v", ss)
	}
}

// TestNodeExample runs e2e/node/examples/token.mjs, the README's Node
// snippet, with only node:net.
func TestNodeExample(t *testing.T) {
	node := nodeBin(t)
	f, a := loggedIn(t)
	testExample(t, f, a, node, filepath.Join(repoRoot, "e2e", "node", "examples", "token.mjs"))
}

// TestPythonExample runs e2e/examples/token.py, the README's Python snippet.
func TestPythonExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	f, a := loggedIn(t)
	testExample(t, f, a, py, filepath.Join(repoRoot, "e2e", "examples", "token.py"))
}

func testExample(t *testing.T, f *fixture, a *agentProc, interp, script string) {
	ctx := deadline(t, 30*time.Second)
	want, err := a.token(ctx, f.MCP.URL)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, interp, script, f.MCP.URL)
	cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+a.Sock)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s", filepath.Base(script), err, ee.Stderr)
		}
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != want.AccessToken {
		t.Errorf("%s printed something other than the token (%d bytes)", filepath.Base(script), len(got))
	}

	// Without an agent it fails with a message, not a token.
	cmd = exec.CommandContext(context.Background(), interp, script, f.MCP.URL)
	cmd.Env = append(os.Environ(), "MCPKEY_SOCK="+filepath.Join(t.TempDir(), "none.sock"))
	if out, err := cmd.Output(); err == nil || len(out) != 0 {
		t.Errorf("%s without an agent: err %v, stdout %q", filepath.Base(script), err, out)
	}
}
