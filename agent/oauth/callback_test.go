package oauth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
)

// stateValidator accepts state "good" and returns the code; state "fatal"
// ends the flow with an AuthorizeError.
func stateValidator(q url.Values) (string, error) {
	switch q.Get("state") {
	case "good":
		return q.Get("code"), nil
	case "fatal":
		return "", &oauth.AuthorizeError{Code: "access_denied", Description: "<b>nope</b>"}
	}
	return "", oauth.ErrStateMismatch
}

type waitResult struct {
	code string
	err  error
}

func startWait(ctx context.Context, cs *oauth.CallbackServer) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		code, err := cs.Wait(ctx, stateValidator)
		ch <- waitResult{code, err}
	}()
	return ch
}

func get(t *testing.T, rawURL, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCallbackAcceptsOneValidResponse(t *testing.T) {
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ru, _ := url.Parse(cs.RedirectURI())
	if ru.Scheme != "http" || ru.Hostname() != "127.0.0.1" || ru.Path != "/callback" || ru.Port() == "0" {
		t.Fatalf("RedirectURI = %s", cs.RedirectURI())
	}
	done := startWait(ctx, cs)
	base := cs.RedirectURI()

	if st, body := get(t, base+"?code=x&state=forged", ""); st != 400 || !strings.Contains(body, "does not belong") {
		t.Errorf("wrong state: %d %s", st, body)
	}
	if st, _ := get(t, strings.TrimSuffix(base, "/callback")+"/other?code=x&state=good", ""); st != 404 {
		t.Errorf("wrong path: %d", st)
	}
	if st, _ := get(t, base+"?code=x&state=good", "localhost:"+ru.Port()); st != 400 {
		t.Errorf("wrong Host: %d", st)
	}
	if st, _ := get(t, base+"?code=x&state=good", "evil.example"); st != 400 {
		t.Errorf("rebinding Host: %d", st)
	}
	select {
	case r := <-done:
		t.Fatalf("an ignored request ended the wait: %+v", r)
	default:
	}
	st, body := get(t, base+"?code=the-code&state=good", "")
	if st != 200 || !strings.Contains(body, "Signed in to mcpkey") {
		t.Errorf("valid callback: %d %s", st, body)
	}
	if r := <-done; r.err != nil || r.code != "the-code" {
		t.Errorf("Wait = %+v", r)
	}
	if st, _ := get(t, base+"?code=again&state=good", ""); st != http.StatusGone {
		t.Errorf("a second valid callback: %d, want 410", st)
	}
	if _, err := cs.Wait(ctx, stateValidator); !errors.Is(err, oauth.ErrCallbackClosed) {
		t.Errorf("Wait after the end = %v", err)
	}
}

func TestCallbackErrorPage(t *testing.T) {
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "/cb/as1")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if !strings.HasSuffix(cs.RedirectURI(), "/cb/as1") {
		t.Errorf("RedirectURI = %s", cs.RedirectURI())
	}
	done := startWait(ctx, cs)
	st, body := get(t, cs.RedirectURI()+"?state=fatal", "")
	if st != 400 || !strings.Contains(body, "access_denied") || strings.Contains(body, "<b>nope") {
		t.Errorf("error page: %d %s", st, body)
	}
	var ae *oauth.AuthorizeError
	if r := <-done; !errors.As(r.err, &ae) {
		t.Errorf("Wait = %+v", r)
	}
}

func TestCallbackDeliver(t *testing.T) {
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	done := startWait(ctx, cs)
	for _, bad := range []string{"not a url\x7f", "http://localhost:1/callback?code=x&state=good", "https://" + strings.TrimPrefix(cs.RedirectURI(), "http://") + "?state=good"} {
		if err := cs.Deliver(ctx, bad); err == nil {
			t.Errorf("Deliver(%q) accepted", bad)
		}
	}
	if err := cs.Deliver(ctx, cs.RedirectURI()+"?code=x&state=other"); !errors.Is(err, oauth.ErrStateMismatch) {
		t.Errorf("Deliver with a foreign state = %v", err)
	}
	if err := cs.Deliver(ctx, cs.RedirectURI()+"?code=pasted&state=good"); err != nil {
		t.Fatalf("Deliver = %v", err)
	}
	if r := <-done; r.err != nil || r.code != "pasted" {
		t.Errorf("Wait = %+v", r)
	}
	if err := cs.Deliver(ctx, cs.RedirectURI()+"?code=pasted&state=good"); !errors.Is(err, oauth.ErrCallbackClosed) {
		t.Errorf("Deliver after the end = %v", err)
	}
}

func TestCallbackCloseAndCancel(t *testing.T) {
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	done := startWait(ctx, cs)
	cs.Close()
	if r := <-done; !errors.Is(r.err, oauth.ErrCallbackClosed) {
		t.Errorf("Wait after Close = %+v", r)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(cs.RedirectURI(), "/callback"), "http://")); err == nil {
		t.Error("listener still accepts after Close")
	}

	cs2, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs2.Close()
	cctx, cancel := context.WithCancel(ctx)
	done = startWait(cctx, cs2)
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Errorf("Wait after cancel = %+v", r)
	}
}

func TestCallbackFixedPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = oauth.ListenCallback(testCtx(t), port, "")
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("taken port: %v", err)
	}
}

// TestCallbackErrorPageAlwaysArrives: a callback that ends the login with
// an error (error=, an iss mismatch) gets its page although the login
// closes the listener the moment Wait returns, as the agent does; a state
// mismatch gets its page too. A real HTTP client reads each body, many
// times over, to catch the race between the close and the write.
func TestCallbackErrorPageAlwaysArrives(t *testing.T) {
	as := &oauth.AuthServer{Issuer: "https://as.example", AuthorizationEndpoint: "https://as.example/authorize",
		TokenEndpoint: "https://as.example/token", IssParameterSupported: true}
	cases := []struct {
		name   string
		query  func(state string) string
		status int
		text   string
	}{
		{"error", func(s string) string {
			return "error=access_denied&error_description=no+thanks&iss=https%3A%2F%2Fas.example&state=" + s
		}, 400, "access_denied"},
		{"iss mismatch", func(s string) string { return "code=c&iss=https%3A%2F%2Fevil.example&state=" + s }, 400, "mix-up"},
		{"state mismatch", func(string) string { return "code=c&iss=https%3A%2F%2Fas.example&state=forged" }, 400, "does not belong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 100 {
				ctx := testCtx(t)
				cs, err := oauth.ListenCallback(ctx, 0, "")
				if err != nil {
					t.Fatal(err)
				}
				f, err := oauth.NewFlow(as, &oauth.Client{ClientID: "c1"}, "https://mcp.example/mcp", nil, cs.RedirectURI())
				if err != nil {
					t.Fatal(err)
				}
				au, _ := url.Parse(f.AuthCodeURL())
				wctx, cancel := context.WithCancel(ctx)
				ended := make(chan struct{})
				go func() {
					defer close(ended)
					_, _ = cs.Wait(wctx, f.ValidateCallback)
					cs.Close() // as the login does when authorize returns
				}()
				st, body := get(t, cs.RedirectURI()+"?"+tc.query(au.Query().Get("state")), "")
				cancel()
				<-ended
				if st != tc.status || !strings.Contains(body, tc.text) {
					t.Fatalf("attempt %d: status %d, body %q; want %d with %q", i, st, body, tc.status, tc.text)
				}
			}
		})
	}
}

// TestCallbackLaunchOnce: the launch address redirects to the
// authorization URL once, without a body that repeats it; a second request
// gets 410, and a launch address that was never issued 404.
func TestCallbackLaunchOnce(t *testing.T) {
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	authURL := "https://as.example/authorize?state=s3cret&client_id=c"
	launch, err := cs.Launch(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(launch, "s3cret") || !strings.HasPrefix(launch, strings.TrimSuffix(cs.RedirectURI(), "/callback")+"/login/") {
		t.Fatalf("launch address %s", launch)
	}
	if _, err := cs.Launch(authURL); err == nil {
		t.Error("a second Launch on one listener succeeded")
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(launch)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != authURL || strings.Contains(string(body), "s3cret") {
		t.Errorf("first use: %d Location=%q body=%q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if st, body := get(t, launch, ""); st != http.StatusGone || strings.Contains(body, "s3cret") {
		t.Errorf("second use: %d %q, want 410 without the URL", st, body)
	}
	if st, _ := get(t, launch+"x", ""); st != http.StatusNotFound {
		t.Errorf("another launch path: %d, want 404", st)
	}
}

// TestCallbackCloseDoesNotWaitForIdleConnections: a connection that never
// sends a request (a browser's speculative preconnect) does not hold up
// Close, and the port is free afterwards.
func TestCallbackCloseDoesNotWaitForIdleConnections(t *testing.T) {
	cs, err := oauth.ListenCallback(testCtx(t), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(cs.RedirectURI())
	c, err := net.Dial("tcp4", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { cs.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close waited for an idle connection")
	}
	ln, err := net.Listen("tcp4", u.Host)
	if err != nil {
		t.Fatalf("port not free after Close: %v", err)
	}
	ln.Close()
}
