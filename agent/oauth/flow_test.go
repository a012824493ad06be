package oauth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

func TestLoginWithPKCEAndResource(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{IssParameterSupported: true})
	c := publicClient(s)
	before := time.Now()
	ts, f := login(t, s, c, s.Resource, []string{"mcp:read", "mcp:write"})

	if !s.ValidAccessToken(ts.AccessToken) {
		t.Error("the resource rejects the access token")
	}
	if ts.RefreshToken == "" || ts.TokenType != "Bearer" {
		t.Errorf("refresh token %t, type %q", ts.RefreshToken != "", ts.TokenType)
	}
	if d := ts.ExpiresAt.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expires in %v, want about an hour", d)
	}
	if !slices.Equal(ts.Scopes, []string{"mcp:read", "mcp:write"}) {
		t.Errorf("scopes = %q", ts.Scopes)
	}

	ar := s.AuthorizeRequests()
	if len(ar) != 1 {
		t.Fatalf("%d authorize requests", len(ar))
	}
	q := ar[0]
	if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" || q.Get("state") == "" ||
		q.Get("client_id") != "public-app" || q.Get("redirect_uri") != f.RedirectURI() {
		t.Errorf("authorize query = %v", q)
	}
	tr := s.TokenRequests()
	if len(tr) != 1 {
		t.Fatalf("%d token requests", len(tr))
	}
	form := tr[0].Form
	verifier := form.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if got := base64.RawURLEncoding.EncodeToString(sum[:]); got != q.Get("code_challenge") || len(verifier) < 43 {
		t.Errorf("S256(verifier) = %q, challenge %q", got, q.Get("code_challenge"))
	}
	if form.Get("resource") != s.Resource || form.Get("redirect_uri") != f.RedirectURI() || form.Get("client_id") != "public-app" {
		t.Errorf("token form = %v", form)
	}
	if _, has := form["client_secret"]; has || tr[0].HasBasic {
		t.Error("a public client sent a secret")
	}
}

func TestPKCEVerifierMustMatch(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	a, _ := oauth.NewFlow(s.AuthServer(), c, s.Resource, nil, cs.RedirectURI())
	b, _ := oauth.NewFlow(s.AuthServer(), c, s.Resource, nil, cs.RedirectURI())
	if err := s.Browser()(ctx, a.AuthCodeURL()); err != nil {
		t.Fatal(err)
	}
	code, err := cs.Wait(ctx, a.ValidateCallback)
	if err != nil {
		t.Fatal(err)
	}
	// Flow b has another verifier: the AS must refuse a's code with it.
	_, err = b.Exchange(ctx, nil, code)
	if !oauth.IsInvalidGrant(err) || !strings.Contains(err.Error(), "PKCE") {
		t.Errorf("exchange with a foreign verifier = %v, want invalid_grant (PKCE)", err)
	}
}

func TestResourceSentVerbatimEverywhere(t *testing.T) {
	// A pathless identifier: a URL round trip would append "/".
	const resource = "https://x.example"
	s := oauthtest.New(t, oauthtest.Options{Resource: resource})
	c := publicClient(s)
	ts, f := login(t, s, c, resource, nil)
	if f.Resource() != resource {
		t.Errorf("flow resource %q", f.Resource())
	}
	if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, resource, ts.RefreshToken, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.AuthorizeRequests()[0]["resource"]; !slices.Equal(got, []string{resource}) {
		t.Errorf("authorize resource = %q", got)
	}
	for i, tr := range s.TokenRequests() {
		if got := tr.Form["resource"]; !slices.Equal(got, []string{resource}) {
			t.Errorf("token request %d (%s) resource = %q", i, tr.Form.Get("grant_type"), got)
		}
	}
	if n := len(s.TokenRequests()); n != 2 {
		t.Errorf("%d token requests, want code + refresh", n)
	}
}

func TestScopeOmittedWhenEmpty(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	for _, scopes := range [][]string{nil, {}, {""}} {
		f, err := oauth.NewFlow(s.AuthServer(), c, s.Resource, scopes, "http://127.0.0.1:1234/callback")
		if err != nil {
			t.Fatal(err)
		}
		u := f.AuthCodeURL()
		if _, has := authQuery(t, f)["scope"]; has || strings.Contains(u, "scope=") {
			t.Errorf("scopes %q: url has a scope parameter: %s", scopes, u)
		}
	}
	f, _ := oauth.NewFlow(s.AuthServer(), c, s.Resource, []string{"a", "b:c"}, "http://127.0.0.1:1234/callback")
	if got := authQuery(t, f)["scope"]; !slices.Equal(got, []string{"a b:c"}) {
		t.Errorf("scope = %q", got)
	}
}

func TestIssTable(t *testing.T) {
	const issuer = "https://as.example/tenant"
	const evil = "EVIL-DESCRIPTION-FROM-ANOTHER-AS"
	type tc struct {
		name      string
		supported bool
		iss       []string // nil = absent
		extra     url.Values
		wantErr   error
	}
	cases := []tc{
		{name: "supported+match", supported: true, iss: []string{issuer}},
		{name: "not-advertised+absent", supported: false},
		{name: "not-advertised+match", supported: false, iss: []string{issuer}},
		{name: "supported+missing", supported: true, wantErr: oauth.ErrIssuerMismatch},
		{name: "wrong-issuer", supported: true, iss: []string{"https://evil.example"},
			extra: url.Values{"error": {"access_denied"}, "error_description": {evil}}, wantErr: oauth.ErrIssuerMismatch},
		{name: "unexpected (not advertised, different)", supported: false, iss: []string{"https://evil.example"}, wantErr: oauth.ErrIssuerMismatch},
		{name: "normalized trailing slash", supported: true, iss: []string{issuer + "/"}, wantErr: oauth.ErrIssuerMismatch},
		{name: "normalized case", supported: true, iss: []string{"https://AS.example/tenant"}, wantErr: oauth.ErrIssuerMismatch},
		{name: "normalized default port", supported: false, iss: []string{"https://as.example:443/tenant"}, wantErr: oauth.ErrIssuerMismatch},
		{name: "empty iss", supported: false, iss: []string{""}, wantErr: oauth.ErrIssuerMismatch},
		{name: "two iss", supported: true, iss: []string{issuer, issuer}, wantErr: oauth.ErrIssuerMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as := &oauth.AuthServer{
				Issuer:                issuer,
				AuthorizationEndpoint: "https://as.example/authorize",
				TokenEndpoint:         "https://as.example/token",
				IssParameterSupported: c.supported,
			}
			f, err := oauth.NewFlow(as, &oauth.Client{ClientID: "app", Issuer: issuer}, "https://mcp.example/mcp", nil, "http://127.0.0.1:9/callback")
			if err != nil {
				t.Fatal(err)
			}
			q := url.Values{"state": {authQuery(t, f).Get("state")}, "code": {"the-code"}}
			if c.iss != nil {
				q["iss"] = c.iss
			}
			for k, v := range c.extra {
				q[k] = v
			}
			code, err := f.ValidateCallback(q)
			if c.wantErr == nil {
				if err != nil || code != "the-code" {
					t.Fatalf("= %q, %v; want the code", code, err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || code != "" {
				t.Fatalf("= %q, %v; want %v", code, err, c.wantErr)
			}
			var ae *oauth.AuthorizeError
			if errors.As(err, &ae) || strings.Contains(err.Error(), evil) || strings.Contains(err.Error(), "access_denied") {
				t.Errorf("iss failure acted on or showed the response's error: %v", err)
			}
		})
	}
}

func TestValidateCallbackStateAndErrors(t *testing.T) {
	as := &oauth.AuthServer{Issuer: "https://as.example", AuthorizationEndpoint: "https://as.example/a", TokenEndpoint: "https://as.example/t"}
	f, err := oauth.NewFlow(as, &oauth.Client{ClientID: "app"}, "https://mcp.example", nil, "http://127.0.0.1:9/callback")
	if err != nil {
		t.Fatal(err)
	}
	state := authQuery(t, f).Get("state")
	if len(state) < 32 {
		t.Errorf("state %d chars, want a long random value", len(state))
	}
	for name, q := range map[string]url.Values{
		"missing state": {"code": {"x"}},
		"wrong state":   {"code": {"x"}, "state": {state + "x"}},
		"two states":    {"code": {"x"}, "state": {state, state}},
		"empty state":   {"code": {"x"}, "state": {""}},
	} {
		if _, err := f.ValidateCallback(q); !errors.Is(err, oauth.ErrStateMismatch) {
			t.Errorf("%s: %v, want ErrStateMismatch", name, err)
		}
	}
	// An error from the AS, with a hostile description.
	desc := "user said no\x1b[31m\n" + strings.Repeat("x", 1000)
	_, err = f.ValidateCallback(url.Values{"state": {state}, "error": {"access_denied"}, "error_description": {desc}})
	var ae *oauth.AuthorizeError
	if !errors.As(err, &ae) || ae.Code != "access_denied" {
		t.Fatalf("= %v, want AuthorizeError access_denied", err)
	}
	if strings.ContainsAny(ae.Description, "\x1b\n") || len(ae.Description) > 310 || !strings.HasPrefix(ae.Description, "user said no") {
		t.Errorf("description not sanitized/capped: %q", ae.Description)
	}
	if _, err := f.ValidateCallback(url.Values{"state": {state}}); err == nil {
		t.Error("a response without code was accepted")
	}
}

func TestNewFlowRefusals(t *testing.T) {
	good := oauth.AuthServer{Issuer: "https://as.example", AuthorizationEndpoint: "https://as.example/a", TokenEndpoint: "https://as.example/t"}
	client := &oauth.Client{ClientID: "app", Issuer: "https://as.example"}
	for name, tc := range map[string]struct {
		edit     func(*oauth.AuthServer)
		client   *oauth.Client
		resource string
		redirect string
	}{
		"javascript authorize":     {edit: func(a *oauth.AuthServer) { a.AuthorizationEndpoint = "javascript:alert(1)" }},
		"file authorize":           {edit: func(a *oauth.AuthServer) { a.AuthorizationEndpoint = "file:///etc/passwd" }},
		"http remote authorize":    {edit: func(a *oauth.AuthServer) { a.AuthorizationEndpoint = "http://as.example/a" }},
		"http remote token":        {edit: func(a *oauth.AuthServer) { a.TokenEndpoint = "http://as.example/t" }},
		"client of another issuer": {client: &oauth.Client{ClientID: "app", Issuer: "https://other.example"}},
		"no client id":             {client: &oauth.Client{Issuer: "https://as.example"}},
		"unknown auth method":      {client: &oauth.Client{ClientID: "app", TokenEndpointAuthMethod: "private_key_jwt"}},
		"basic without secret":     {client: &oauth.Client{ClientID: "app", TokenEndpointAuthMethod: "client_secret_basic"}},
		"no resource":              {resource: "-"},
		"remote http redirect":     {redirect: "http://evil.example/callback"},
	} {
		as := good
		if tc.edit != nil {
			tc.edit(&as)
		}
		c := client
		if tc.client != nil {
			c = tc.client
		}
		res := "https://mcp.example"
		if tc.resource == "-" {
			res = ""
		}
		red := "http://127.0.0.1:5/callback"
		if tc.redirect != "" {
			red = tc.redirect
		}
		if _, err := oauth.NewFlow(&as, c, res, nil, red); err == nil {
			t.Errorf("%s: NewFlow succeeded", name)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:8080/a", "http://localhost:8080/a", "http://[::1]/a", "https://as.example/a?x=1"} {
		as := good
		as.AuthorizationEndpoint = ok
		if _, err := oauth.NewFlow(&as, client, "https://mcp.example", nil, "http://127.0.0.1:5/cb"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestExchangeOnlyAtRecordedEndpoint(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	ctx := testCtx(t)
	cs, err := oauth.ListenCallback(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	as := s.AuthServer()
	f, err := oauth.NewFlow(as, c, s.Resource, nil, cs.RedirectURI())
	if err != nil {
		t.Fatal(err)
	}
	as.TokenEndpoint = "http://127.0.0.1:1/evil" // metadata changed after the flow started
	_ = s.Browser()(ctx, f.AuthCodeURL())
	code, err := cs.Wait(ctx, f.ValidateCallback)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exchange(ctx, nil, code); err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if s.Requests("/token") != 1 {
		t.Errorf("token endpoint saw %d requests", s.Requests("/token"))
	}
}

func TestClientAuthMethods(t *testing.T) {
	const secret = "s3cr:t/+ &=%"
	for _, m := range []string{"none", "client_secret_post", "client_secret_basic"} {
		t.Run(m, func(t *testing.T) {
			s := oauthtest.New(t, oauthtest.Options{})
			sec := secret
			if m == "none" {
				sec = ""
			}
			c := s.AddClient(oauthtest.Client{ID: "app:" + m, Secret: sec, AuthMethod: m})
			ts, _ := login(t, s, c, s.Resource, nil) // the test AS enforces the method
			if _, err := oauth.Refresh(testCtx(t), nil, s.AuthServer(), c, s.Resource, ts.RefreshToken, nil); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if err := oauth.Revoke(testCtx(t), nil, s.AuthServer(), c, ts.AccessToken, "access_token"); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			for i, tr := range s.TokenRequests() {
				_, formSecret := tr.Form["client_secret"]
				switch m {
				case "none":
					if tr.HasBasic || formSecret || tr.Form.Get("client_id") != c.ClientID {
						t.Errorf("request %d: basic %t, form secret %t, client_id %q", i, tr.HasBasic, formSecret, tr.Form.Get("client_id"))
					}
				case "client_secret_post":
					if tr.HasBasic || tr.Form.Get("client_secret") != secret {
						t.Errorf("request %d: basic %t, form secret ok %t", i, tr.HasBasic, tr.Form.Get("client_secret") == secret)
					}
				case "client_secret_basic":
					if !tr.HasBasic || formSecret || tr.BasicID != c.ClientID || tr.BasicSecret != secret {
						t.Errorf("request %d: basic %t (id %q), form secret %t", i, tr.HasBasic, tr.BasicID, formSecret)
					}
				}
			}
		})
	}
}

func TestFlowLogValueRedacts(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	f, err := oauth.NewFlow(s.AuthServer(), publicClient(s), s.Resource, []string{"x"}, "http://127.0.0.1:5/cb")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "flow", f)
	state := authQuery(t, f).Get("state")
	out := buf.String()
	if strings.Contains(out, state) || !strings.Contains(out, "REDACTED") || !strings.Contains(out, s.Issuer) {
		t.Errorf("log = %s", out)
	}
	// The verifier never appears in the authorization URL either.
	tsURL := f.AuthCodeURL()
	if strings.Contains(tsURL, "code_verifier") {
		t.Error("verifier in the authorization URL")
	}
}
