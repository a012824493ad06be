package oauth_test

import (
	"testing"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
)

// TestWithAudienceOnEveryRequest: WithAudience sends the audience on the
// authorization, code and refresh requests, next to resource; without it
// no audience parameter is sent at all.
func TestWithAudienceOnEveryRequest(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	c := publicClient(s)
	ts, f := login(t, s, c, s.Resource, nil, oauth.WithAudience(s.Resource))
	if f.Audience() != s.Resource {
		t.Errorf("Audience() = %q", f.Audience())
	}
	ctx := testCtx(t)
	if _, err := oauth.Refresh(ctx, nil, s.AuthServer(), c, s.Resource, ts.RefreshToken, nil, oauth.WithAudience(s.Resource)); err != nil {
		t.Fatal(err)
	}
	ar := s.AuthorizeRequests()
	if len(ar) != 1 || ar[0]["audience"] == nil || ar[0].Get("audience") != s.Resource || ar[0].Get("resource") != s.Resource {
		t.Errorf("authorize queries = %v, want audience and resource %s", ar, s.Resource)
	}
	tr := s.TokenRequests()
	if len(tr) != 2 {
		t.Fatalf("%d token requests, want 2", len(tr))
	}
	for i, r := range tr {
		if got := r.Form["audience"]; len(got) != 1 || got[0] != s.Resource || r.Form.Get("resource") != s.Resource {
			t.Errorf("token request %d (%s): audience %q resource %q", i, r.Form.Get("grant_type"), got, r.Form.Get("resource"))
		}
	}

	// Without the option: no audience parameter anywhere.
	_, plain := login(t, s, c, s.Resource, nil)
	if plain.Audience() != "" {
		t.Errorf("Audience() = %q without WithAudience", plain.Audience())
	}
	ar = s.AuthorizeRequests()
	if _, has := ar[len(ar)-1]["audience"]; has {
		t.Error("audience sent on the authorization request without WithAudience")
	}
	tr = s.TokenRequests()
	if _, has := tr[len(tr)-1].Form["audience"]; has {
		t.Error("audience sent on the token request without WithAudience")
	}
}

// TestRegisterSendsAudience: dynamic registration sends the audience
// (Hydra whitelists a client's audiences), a stored registration lacking it
// is not reused, and the new one asks for the old audiences too.
func TestRegisterSendsAudience(t *testing.T) {
	s := oauthtest.New(t, oauthtest.Options{})
	ctx := testCtx(t)
	as := s.AuthServer()
	c1, err := oauth.Register(ctx, nil, as, oauth.RegisterRequest{RedirectURI: "http://127.0.0.1:1234/callback", Audience: []string{"https://a.example/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.Audience) != 1 || c1.Audience[0] != "https://a.example/mcp" {
		t.Errorf("registered audience = %q", c1.Audience)
	}
	regs := s.Registrations()
	if got := regs[len(regs)-1]["audience"]; got == nil {
		t.Errorf("registration request without audience: %v", regs[len(regs)-1])
	}
	// Same audience: reused, no request.
	again, err := oauth.Register(ctx, nil, as, oauth.RegisterRequest{Existing: c1, RedirectURI: "http://127.0.0.1:1/callback", Audience: []string{"https://a.example/mcp"}})
	if err != nil || again.ClientID != c1.ClientID || len(s.Registrations()) != len(regs) {
		t.Errorf("registration with the same audience not reused (err %v)", err)
	}
	// Another audience: registered again with both.
	c2, err := oauth.Register(ctx, nil, as, oauth.RegisterRequest{Existing: c1, RedirectURI: "http://127.0.0.1:1/callback", Audience: []string{"https://b.example/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if c2.ClientID == c1.ClientID || len(c2.Audience) != 2 {
		t.Errorf("new registration %s audience %q, want a new client for both audiences", c2.ClientID, c2.Audience)
	}
}
