package oauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

// inProcess runs requests straight through h, with no network, so tests in
// a testing/synctest bubble see only fake time.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func inProcessClient(s *oauthtest.Server) *http.Client {
	return &http.Client{Transport: inProcess{s.HTTP.Config.Handler}}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// login runs the whole browser flow against s with the auto-approving
// browser and returns the tokens and the flow.
func login(t *testing.T, s *oauthtest.Server, c *oauth.Client, resource string, scopes []string, opts ...oauth.RequestOption) (*oauth.TokenSet, *oauth.Flow) {
	t.Helper()
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	f, err := oauth.NewFlow(s.AuthServer(), c, resource, scopes, cs.RedirectURI(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Browser()(ctx, f.AuthCodeURL()); err != nil {
		t.Fatal(err)
	}
	code, err := cs.Wait(ctx, f.ValidateCallback)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	ts, err := f.Exchange(ctx, nil, code)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return ts, f
}

func authQuery(t *testing.T, f *oauth.Flow) url.Values {
	t.Helper()
	u, err := url.Parse(f.AuthCodeURL())
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func publicClient(s *oauthtest.Server) *oauth.Client {
	return s.AddClient(oauthtest.Client{ID: "public-app"})
}
