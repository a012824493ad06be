package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// otherTool is a session another program obtained at f's AS: here a login
// by a first agent, read back from its store as mcp-remote's files would
// hold it.
func otherTool(t *testing.T, f *fixture) agent.ImportRequest {
	t.Helper()
	f.login(agent.LoginRequest{})
	r, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
	if err != nil {
		t.Fatal(err)
	}
	// The first agent lets go of it (no revocation), so that only the
	// importer refreshes.
	if _, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL, KeepRemote: true}); err != nil {
		t.Fatal(err)
	}
	return agent.ImportRequest{Server: f.as.MCPURL, From: "mcp-remote",
		AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType, ExpiresAt: r.ExpiresAt, Scopes: r.Scopes,
		Client: agent.ImportedClient{ClientID: r.ClientID, ClientSecret: r.ClientSecret, TokenEndpointAuthMethod: r.ClientAuthMethod, Issuer: r.Issuer}}
}

// importer is a second agent at f's AS, with a store of its own.
func importer(t *testing.T, f *fixture) (*agent.Agent, store.Store) {
	t.Helper()
	st := store.NewMemory()
	b, err := agent.New(t.Context(), agent.Config{Store: st, Now: f.clk.Now,
		OpenURL: func(context.Context, string) error {
			t.Error("the importing agent opened a browser")
			return errors.New("no")
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, st
}

// TestImportRefreshesOnceAndKeepsServing: an imported session is stored
// with the tokens of one refresh (never the imported refresh token, which
// that refresh spent), records the client it was issued to without making
// it the issuer's registration for new logins, and goes on refreshing with
// that client.
func TestImportRefreshesOnceAndKeepsServing(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 10 * time.Minute})
	req := otherTool(t, f)
	b, st := importer(t, f)
	before := f.as.Refreshes()
	info, err := b.Import(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.as.Refreshes()-before != 1 {
		t.Errorf("%d refreshes, want 1", f.as.Refreshes()-before)
	}
	if info.Server != f.as.MCPURL || info.Issuer != f.as.Issuer || info.ClientID != req.Client.ClientID || info.State != agent.StateReady || !info.HasRefresh {
		t.Errorf("session info %+v", info)
	}
	r, err := store.LoadSession(t.Context(), st, f.as.MCPURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.RefreshToken == req.RefreshToken || r.AccessToken == req.AccessToken || r.ClientID != req.Client.ClientID ||
		r.TokenEndpoint == "" || r.Resource == "" {
		t.Errorf("stored record: client %q, endpoint %q, resource %q, same refresh token %v", r.ClientID, r.TokenEndpoint, r.Resource, r.RefreshToken == req.RefreshToken)
	}
	if _, err := store.LoadClient(t.Context(), st, f.as.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the imported client became the issuer's registration: %v", err)
	}
	// A week later: expired, refreshed with the recorded client.
	f.clk.Advance(7 * 24 * time.Hour)
	tok, err := b.Token(t.Context(), agent.TokenRequest{Server: f.as.MCPURL})
	if err != nil || !f.as.ValidAccessToken(tok.AccessToken) {
		t.Fatalf("token after a week: %v", err)
	}
	if f.as.Refreshes()-before != 2 {
		t.Errorf("%d refreshes after a week, want 2", f.as.Refreshes()-before)
	}
	// Importing again does not replace it.
	if _, err := b.Import(t.Context(), req); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Errorf("second import: %v, want invalid request (already a session)", err)
	}
}

// TestImportRefusals: a refresh token that does not work, or a client
// registered with another authorization server, keeps nothing.
func TestImportRefusals(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	req := otherTool(t, f)
	b, st := importer(t, f)
	before := f.as.Refreshes()
	wrong := req
	wrong.Client.Issuer = "https://elsewhere.example"
	if _, err := b.Import(t.Context(), wrong); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Errorf("import of a client of another issuer: %v", err)
	}
	if f.as.Refreshes() != before {
		t.Error("a client of another issuer was used for a refresh")
	}
	f.as.ForceInvalidGrant(true)
	if _, err := b.Import(t.Context(), req); err == nil {
		t.Error("import with a refresh token the AS refuses succeeded")
	}
	f.as.ForceInvalidGrant(false)
	if ids, _ := store.LoadSessions(t.Context(), st); len(ids) != 0 {
		t.Errorf("sessions kept: %+v", ids)
	}
	if ss, _ := b.Sessions(t.Context()); len(ss) != 0 {
		t.Errorf("sessions in memory: %+v", ss)
	}
}
