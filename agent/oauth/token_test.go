package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

func TestRefreshRotationAndReuseDetection(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	as := s.AuthServer()
	ctx := testCtx(t)
	_, rt0 := s.Grant(c.ClientID, []string{"read"})

	ts1, err := oauth.Refresh(ctx, nil, as, c, s.Resource, rt0, []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	if ts1.RefreshToken == "" || ts1.RefreshToken == rt0 {
		t.Fatal("refresh token was not rotated")
	}
	if !s.ValidAccessToken(ts1.AccessToken) {
		t.Error("new access token rejected")
	}
	if got := s.TokenRequests()[0].Form; got.Get("grant_type") != "refresh_token" || got.Get("refresh_token") != rt0 || got.Get("scope") != "read" {
		t.Errorf("refresh form = %v", got)
	}
	// Replaying the spent token kills the grant, including the new token.
	_, err = oauth.Refresh(ctx, nil, as, c, s.Resource, rt0, nil)
	if !oauth.IsInvalidGrant(err) {
		t.Fatalf("replay = %v, want invalid_grant", err)
	}
	if _, err := oauth.Refresh(ctx, nil, as, c, s.Resource, ts1.RefreshToken, nil); !oauth.IsInvalidGrant(err) {
		t.Errorf("after reuse detection, the rotated token still works: %v", err)
	}
	if s.ActiveGrants() != 0 || s.Refreshes() != 3 {
		t.Errorf("active grants %d, refreshes %d", s.ActiveGrants(), s.Refreshes())
	}
}

func TestRefreshWithoutRotationKeepsOld(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{NoRotation: true})
	c := publicClient(s)
	_, rt := s.Grant(c.ClientID, nil)
	for range 2 {
		ts, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ts.RefreshToken != "" {
			t.Errorf("RefreshToken = %q, want \"\" (keep the old one)", ts.RefreshToken)
		}
	}
}

func TestExpiryAndScopes(t *testing.T) {
	zero, minusFive, absurd := 0, -5, 1_000_000_000_000
	cases := []struct {
		name      string
		opts      oauthtest.Options
		requested []string
		want      func(now time.Time) time.Time
		scopes    []string
	}{
		{name: "expires_in present", opts: oauthtest.Options{AccessTokenTTL: 90 * time.Second},
			want: func(now time.Time) time.Time { return now.Add(90 * time.Second) }},
		// 0, negative: the server did not say; the JWT exp decides, else
		// the lifetime is unknown (never "already expired").
		{name: "expires_in 0, JWT: its exp", opts: oauthtest.Options{ExpiresIn: &zero, AccessTokenTTL: 2 * time.Hour},
			want: func(now time.Time) time.Time { return now.Add(2 * time.Hour) }},
		{name: "expires_in 0, opaque: unknown", opts: oauthtest.Options{ExpiresIn: &zero, OpaqueTokens: true},
			want: func(time.Time) time.Time { return time.Time{} }},
		{name: "expires_in -5, opaque: unknown", opts: oauthtest.Options{ExpiresIn: &minusFive, OpaqueTokens: true},
			want: func(time.Time) time.Time { return time.Time{} }},
		{name: "expires_in 1e12: clamped to ten years", opts: oauthtest.Options{ExpiresIn: &absurd, OpaqueTokens: true},
			want: func(now time.Time) time.Time { return now.Add(10 * 365 * 24 * time.Hour) }},
		{name: "missing expires_in uses the JWT exp", opts: oauthtest.Options{OmitExpiresIn: true, AccessTokenTTL: 2 * time.Hour},
			want: func(now time.Time) time.Time { return now.Add(2 * time.Hour) }},
		{name: "missing expires_in, opaque token: unknown", opts: oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true},
			want: func(time.Time) time.Time { return time.Time{} }},
		{name: "scope absent means requested", opts: oauthtest.Options{OmitScope: true}, requested: []string{"a", "b"},
			want: func(now time.Time) time.Time { return now.Add(time.Hour) }, scopes: []string{"a", "b"}},
		{name: "granted scope wins", requested: []string{"a"},
			want: func(now time.Time) time.Time { return now.Add(time.Hour) }, scopes: []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := oauthtest.New(t, tc.opts)
			c := publicClient(s)
			as := s.AuthServer()
			synctest.Test(t, func(t *testing.T) {
				_, rt := s.Grant(c.ClientID, tc.requested)
				now := time.Now() // the bubble's clock: fixed until something sleeps
				ts, err := oauth.Refresh(t.Context(), inProcessClient(s), as, c, s.Resource, rt, tc.requested)
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.want(now); !ts.ExpiresAt.Equal(want) {
					t.Errorf("ExpiresAt = %v, want %v", ts.ExpiresAt, want)
				}
				if !slices.Equal(ts.Scopes, tc.scopes) {
					t.Errorf("Scopes = %q, want %q", ts.Scopes, tc.scopes)
				}
			})
		})
	}
}

// errorAS answers every token request with status and body, echoing the
// refresh token in the description when echo is set.
func errorAS(t *testing.T, status int, ctype, body string) *oauth.AuthServer {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		fmt.Fprint(w, strings.ReplaceAll(body, "ECHO", r.PostForm.Get("refresh_token")+r.PostForm.Get("token")))
	}))
	t.Cleanup(srv.Close)
	return &oauth.AuthServer{Issuer: srv.URL, AuthorizationEndpoint: srv.URL + "/a", TokenEndpoint: srv.URL + "/token", RevocationEndpoint: srv.URL + "/revoke"}
}

func TestTokenErrorClassification(t *testing.T) {
	jsonErr := func(code, desc string) string {
		b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
		return string(b)
	}
	cases := []struct {
		name                     string
		status                   int
		ctype, body              string
		grant, client, transient bool
		code                     string
	}{
		{"invalid_grant", 400, "application/json", jsonErr("invalid_grant", "expired"), true, false, false, "invalid_grant"},
		{"invalid_client", 401, "application/json", jsonErr("invalid_client", ""), false, true, false, "invalid_client"},
		{"unauthorized_client", 400, "application/json", jsonErr("unauthorized_client", ""), false, true, false, "unauthorized_client"},
		{"redirect mismatch", 400, "application/json", jsonErr("invalid_grant", "redirect_uri mismatch"), true, true, false, "invalid_grant"},
		{"invalid_scope", 400, "application/json", jsonErr("invalid_scope", ""), false, false, false, "invalid_scope"},
		{"500", 500, "application/json", jsonErr("server_error", ""), false, false, true, "server_error"},
		{"503 html", 503, "text/html", "<h1>down</h1>", false, false, true, ""},
		{"429", 429, "text/plain", "slow down", false, false, true, ""},
		{"200 with error", 200, "application/json", jsonErr("invalid_grant", ""), true, false, false, "invalid_grant"},
		{"form-encoded error", 400, "application/x-www-form-urlencoded", "error=invalid_grant", true, false, false, "invalid_grant"},
		// Answers that are not OAuth at all: nothing was rejected.
		{"200 html", 200, "text/html; charset=utf-8", "<html>sign in</html>", false, false, false, ""},
		{"200 empty object", 200, "application/json", "{}", false, false, false, ""},
		{"403 html", 403, "text/html", "<h1>forbidden</h1>", false, false, false, ""},
		{"404 html", 404, "text/html", "<h1>not found</h1>", false, false, false, ""},
		{"407 proxy", 407, "text/html", "proxy authentication required", false, false, false, ""},
		{"408 timeout", 408, "text/plain", "request timeout", false, false, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as := errorAS(t, tc.status, tc.ctype, tc.body)
			c := &oauth.Client{ClientID: "app"}
			_, err := oauth.Refresh(testCtx(t), nil, as, c, "https://mcp.example", "rt-secret-value", nil)
			var te *oauth.TokenError
			var re *oauth.ResponseError
			switch {
			case tc.code == "":
				// Not an OAuth answer: the error names the status and
				// content type, and is no TokenError.
				mt, _, _ := strings.Cut(tc.ctype, ";")
				want := fmt.Sprintf("token endpoint answered HTTP %d with %s", tc.status, mt)
				if !errors.As(err, &re) || re.Status != tc.status || errors.As(err, &te) || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want a ResponseError saying %q", err, want)
				}
			case !errors.As(err, &te) || te.Status != tc.status || te.Code != tc.code:
				t.Fatalf("err = %#v, want TokenError %d %q", err, tc.status, tc.code)
			}
			if oauth.EndsGrant(err) != (tc.grant || tc.client) {
				t.Errorf("EndsGrant = %t, want %t", oauth.EndsGrant(err), tc.grant || tc.client)
			}
			if oauth.IsInvalidGrant(err) != tc.grant || oauth.IsInvalidClient(err) != tc.client || oauth.IsTransient(err) != tc.transient {
				t.Errorf("grant %t client %t transient %t; want %t %t %t", oauth.IsInvalidGrant(err), oauth.IsInvalidClient(err),
					oauth.IsTransient(err), tc.grant, tc.client, tc.transient)
			}
		})
	}
}

func TestTransientNetworkErrors(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	_, rt := s.Grant(c.ClientID, nil)
	s.SetDown(true)
	_, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, nil)
	if err == nil || !oauth.IsTransient(err) || oauth.IsInvalidGrant(err) {
		t.Errorf("AS down: %v (transient %t)", err, oauth.IsTransient(err))
	}
	s.SetDown(false)
	s.SetTokenFailure(502)
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, nil); !oauth.IsTransient(err) {
		t.Errorf("502: %v", err)
	}
	s.SetTokenFailure(0)
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, nil); err != nil {
		t.Errorf("after the outage the grant must still work: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	as := &oauth.AuthServer{Issuer: closed.URL, TokenEndpoint: closed.URL + "/token"}
	if _, err := oauth.Refresh(testCtx(t), nil, as, &oauth.Client{ClientID: "x"}, "https://r", "rt", nil); !oauth.IsTransient(err) {
		t.Errorf("connection refused: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := oauth.Refresh(ctx, nil, s.AuthServer(), c, s.Resource, rt, nil); oauth.IsTransient(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v (transient %t)", err, oauth.IsTransient(err))
	}
	if oauth.IsTransient(nil) || oauth.IsInvalidGrant(nil) || oauth.IsInvalidClient(nil) {
		t.Error("nil classified")
	}
}

func TestForcedInvalidGrant(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	_, rt := s.Grant(c.ClientID, nil)
	s.ForceInvalidGrant(true)
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, rt, nil); !oauth.IsInvalidGrant(err) || oauth.IsTransient(err) {
		t.Errorf("= %v", err)
	}
}

func TestRetrieveErrorMapping(t *testing.T) {
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant"}
	err := fmt.Errorf("wrapped: %w", re)
	if !oauth.IsInvalidGrant(err) || oauth.IsTransient(err) || oauth.IsInvalidClient(err) {
		t.Error("RetrieveError invalid_grant misclassified")
	}
	re5 := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}
	if !oauth.IsTransient(re5) {
		t.Error("RetrieveError 503 not transient")
	}
	if !oauth.IsInvalidClient(&oauth.AuthorizeError{Code: "unauthorized_client"}) {
		t.Error("AuthorizeError unauthorized_client not invalid client")
	}
}

func TestErrorsCarryNoTokenMaterial(t *testing.T) {
	const rt = "rt-SUPER-SECRET-refresh-token"
	body := `{"error":"invalid_grant","error_description":"token ECHO is bad"}`
	as := errorAS(t, 400, "application/json", body)
	c := &oauth.Client{ClientID: "app", ClientSecret: "client-SECRET", TokenEndpointAuthMethod: "client_secret_post"}
	_, err := oauth.Refresh(testCtx(t), nil, as, c, "https://mcp.example", rt, nil)
	if err == nil || strings.Contains(err.Error(), rt) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("refresh error = %v", err)
	}
	err = oauth.Revoke(testCtx(t), nil, as, c, rt, "refresh_token")
	if err == nil || strings.Contains(err.Error(), rt) {
		t.Errorf("revoke error = %v", err)
	}
}
