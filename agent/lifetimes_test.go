package agent_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// tokenCall is one Token call and the refresh grants the AS saw during it.
func (f *fixture) tokenCall(req agent.TokenRequest) (agent.Token, int, error) {
	f.t.Helper()
	before := f.as.Refreshes()
	tok, err := f.token(req)
	return tok, f.as.Refreshes() - before, err
}

// TestUnknownLifetimeServesToken: a server that sends no expires_in (and an
// opaque token, so no JWT exp either) gives a token of unknown lifetime.
// It is served without any refresh grant, with or without a refresh token;
// it is refreshed once when a resource server rejects it or a caller's
// min_ttl cannot be judged; ls shows it as having no expiry.
func TestUnknownLifetimeServesToken(t *testing.T) {
	for _, name := range []string{"with refresh token", "without refresh token"} {
		t.Run(name, func(t *testing.T) {
			opts := oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true, NoRefreshTokens: name == "without refresh token"}
			f := newFixture(t, opts)
			var progress []string
			if _, err := f.a.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL}, func(e agent.Event) { progress = append(progress, e.Message) }); err != nil {
				t.Fatal(err)
			}
			if last := progress[len(progress)-1]; !strings.Contains(last, "no token lifetime") {
				t.Errorf("last progress line = %q, want it to say the server gave no lifetime", last)
			}
			first, n, err := f.tokenCall(agent.TokenRequest{})
			if err != nil || n != 0 || !first.ExpiresAt.IsZero() {
				t.Fatalf("token: err %v, refreshes %d, expires %v; want the token, no refresh, zero expiry", err, n, first.ExpiresAt)
			}
			for range 3 {
				f.clk.Advance(24 * time.Hour)
				tok, n, err := f.tokenCall(agent.TokenRequest{})
				if err != nil || n != 0 || tok.AccessToken != first.AccessToken {
					t.Fatalf("a day later: err %v, refreshes %d, same token %v", err, n, tok.AccessToken == first.AccessToken)
				}
			}
			ss, _ := f.a.Sessions(t.Context())
			if len(ss) != 1 || ss[0].State != agent.StateReady || !ss[0].ExpiresAt.IsZero() {
				t.Errorf("sessions = %+v, want one ready session without expiry", ss)
			}
			if opts.NoRefreshTokens {
				// A rejected token without a refresh token needs a login.
				if _, _, err := f.tokenCall(agent.TokenRequest{RejectedToken: first.AccessToken}); !errors.Is(err, agent.ErrNeedsLogin) {
					t.Errorf("rejected, no refresh token: %v, want needs login", err)
				}
				return
			}
			// The resource server rejects it: exactly one refresh.
			tok, n, err := f.tokenCall(agent.TokenRequest{RejectedToken: first.AccessToken})
			if err != nil || n != 1 || tok.AccessToken == first.AccessToken {
				t.Errorf("rejected: err %v, refreshes %d, new token %v; want one refresh and a new token", err, n, tok.AccessToken != first.AccessToken)
			}
			// A min_ttl cannot be judged: one refresh per call, never more.
			for range 2 {
				if _, n, err := f.tokenCall(agent.TokenRequest{MinTTL: time.Minute}); err != nil || n != 1 {
					t.Errorf("min_ttl: err %v, refreshes %d; want 1", err, n)
				}
			}
			if _, n, _ := f.tokenCall(agent.TokenRequest{}); n != 0 {
				t.Errorf("plain call after that: %d refreshes, want 0", n)
			}
		})
	}
}

// TestOddExpiresIn: 0 and negative mean "not said" (served, no refresh);
// 10^12 is clamped to ten years.
func TestOddExpiresIn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secs    int
		unknown bool
	}{{"zero", 0, true}, {"negative", -5, true}, {"absurd", 1_000_000_000_000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			secs := tc.secs
			f := newFixture(t, oauthtest.Options{ExpiresIn: &secs, OpaqueTokens: true})
			f.login(agent.LoginRequest{})
			tok, n, err := f.tokenCall(agent.TokenRequest{})
			if err != nil || n != 0 {
				t.Fatalf("token: err %v, refreshes %d; want the token and no refresh", err, n)
			}
			switch {
			case tc.unknown && !tok.ExpiresAt.IsZero():
				t.Errorf("expires_in %d: expiry %v, want unknown", tc.secs, tok.ExpiresAt)
			case !tc.unknown && !tok.ExpiresAt.Equal(f.clk.Now().Add(10*365*24*time.Hour).Truncate(time.Second)) &&
				tok.ExpiresAt.Sub(f.clk.Now()) < 3649*24*time.Hour:
				t.Errorf("expires_in 1e12: expiry in %v, want ten years", tok.ExpiresAt.Sub(f.clk.Now()))
			}
		})
	}
}

// TestAtMostOneRefreshPerTokenCall: an AS whose every token has already
// expired (a JWT whose exp is in the past, no expires_in) costs one refresh
// grant per Token call, not three, and the error says why.
func TestAtMostOneRefreshPerTokenCall(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: -time.Hour, OmitExpiresIn: true})
	f.login(agent.LoginRequest{})
	for i := range 3 {
		_, n, err := f.tokenCall(agent.TokenRequest{})
		if n > 1 {
			t.Errorf("call %d: %d refresh grants, want at most 1", i, n)
		}
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("call %d: err %v, want one saying the token expired", i, err)
		}
		f.clk.Advance(10 * time.Minute) // past any backoff
	}
}

// TestNonOAuthRefreshAnswerKeepsSession: a refresh answered with something
// that is not an OAuth error keeps the session, serves the still-valid
// token, says what happened, and retries later; nothing is deleted.
func TestNonOAuthRefreshAnswerKeepsSession(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault oauthtest.Fault
		says  string
	}{
		{"200 html", oauthtest.Fault{Status: 200, ContentType: "text/html", Body: "<html>login</html>"}, "token endpoint answered HTTP 200 with text/html, not an OAuth response"},
		{"200 empty object", oauthtest.Fault{Status: 200, ContentType: "application/json", Body: "{}"}, "token endpoint answered HTTP 200 with application/json, not a token response (no access_token)"},
		{"403", oauthtest.Fault{Status: 403, ContentType: "text/html", Body: "<h1>Forbidden</h1>"}, "token endpoint answered HTTP 403 with text/html, not an OAuth response"},
		{"404", oauthtest.Fault{Status: 404, ContentType: "text/html", Body: "<h1>Not Found</h1>"}, "token endpoint answered HTTP 404 with text/html, not an OAuth response"},
		{"407", oauthtest.Fault{Status: 407, ContentType: "text/html", Body: "proxy"}, "token endpoint answered HTTP 407 with text/html, not an OAuth response"},
		{"408", oauthtest.Fault{Status: 408, ContentType: "text/plain", Body: "timeout"}, "token endpoint answered HTTP 408 with text/plain, not an OAuth response"},
		{"connection reset", oauthtest.Fault{Reset: true}, "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
			f.login(agent.LoginRequest{})
			first, _ := f.token(agent.TokenRequest{})
			f.as.SetRefreshFault(&tc.fault)
			f.clk.Advance(time.Hour - 30*time.Second) // in the refresh margin, still valid
			tok, n, err := f.tokenCall(agent.TokenRequest{})
			if err != nil || tok.AccessToken != first.AccessToken || n != 1 {
				t.Fatalf("still valid: err %v, same token %v, refreshes %d; want the old token after one try", err, tok.AccessToken == first.AccessToken, n)
			}
			f.clk.Advance(time.Minute) // expired now
			_, n, err = f.tokenCall(agent.TokenRequest{})
			if err == nil || errors.Is(err, agent.ErrNeedsLogin) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "rejected") {
				t.Fatalf("expired: err %v; want an error saying %q, not needs login", err, tc.says)
			}
			if n > 1 {
				t.Errorf("expired: %d refresh grants in one call", n)
			}
			ss, _ := f.a.Sessions(t.Context())
			if len(ss) != 1 || ss[0].State != agent.StateError || !ss[0].HasRefresh || !strings.Contains(ss[0].Error, tc.says) {
				t.Errorf("sessions = %+v; want one in state error with its refresh token", ss)
			}
			if rec, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, ""); err != nil || rec.RefreshToken == "" {
				t.Errorf("stored session: err %v, has refresh token %v", err, rec.RefreshToken != "")
			}
			// The server recovers: after the backoff the grant still works.
			f.as.SetRefreshFault(nil)
			f.clk.Advance(10 * time.Minute)
			if tok, err := f.token(agent.TokenRequest{}); err != nil || tok.AccessToken == first.AccessToken {
				t.Errorf("after recovery: err %v, new token %v", err, tok.AccessToken != first.AccessToken)
			}
		})
	}
}

// TestRejectedTokenNotServedAgain: when the refresh that a rejection
// started fails, the caller gets the failure, not the token it just saw
// rejected (which is still "valid" by its unknown lifetime).
func TestRejectedTokenNotServedAgain(t *testing.T) {
	f := newFixture(t, oauthtest.Options{OmitExpiresIn: true, OpaqueTokens: true})
	f.login(agent.LoginRequest{})
	tok, _ := f.token(agent.TokenRequest{})
	f.as.SetRefreshFault(&oauthtest.Fault{Status: 502, ContentType: "text/html", Body: "bad gateway"})
	got, n, err := f.tokenCall(agent.TokenRequest{RejectedToken: tok.AccessToken})
	if err == nil || got.AccessToken != "" || n != 1 || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("err %v, token served %v, refreshes %d; want the 502 failure after one try", err, got.AccessToken != "", n)
	}
	if errors.Is(err, agent.ErrNeedsLogin) {
		t.Errorf("a 502 ended the session: %v", err)
	}
}
