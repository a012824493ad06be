package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// call sends a request to the resource with tok the way ipc.Authorize does
// (without importing ipc, which sits above the agent).
func call(t *testing.T, url string, tok agent.Token) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{}`))
	req.Header.Set("Authorization", tok.TokenType+" "+tok.AccessToken)
	if tok.DPoPProof != "" {
		req.Header.Set("DPoP", tok.DPoPProof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func dpopReq(f *fixture, nonce string) agent.TokenRequest {
	return agent.TokenRequest{DPoPMethod: http.MethodPost, DPoPURL: f.as.MCPURL, DPoPNonce: nonce}
}

// TestDPoPSession: a resource that challenges with DPoP and an AS that
// offers it give a key-bound session: proofs at the code exchange and the
// refresh (with the AS's nonce), token.get answers a fresh proof per call
// (with the resource's nonce once reported), a replayed proof and the bare
// token are refused, and the key survives a restart (it is in the store)
// and goes with a logout.
func TestDPoPSession(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DPoP: true, ASNonce: "as-nonce", ResourceDPoP: true, ResourceNonce: "rs-nonce", AccessTokenTTL: time.Hour})
	info := f.login(agent.LoginRequest{})
	if !info.DPoP {
		t.Fatalf("session not key-bound: %+v (proof errors %v)", info, f.as.ProofErrors())
	}
	if n := f.as.DPoPTokenRequests(); n != 2 {
		t.Errorf("%d token requests with a proof, want 2 (use_dpop_nonce, retry)", n)
	}
	if _, err := f.token(agent.TokenRequest{}); !errors.Is(err, agent.ErrDPoPRequired) {
		t.Fatalf("token.get without method and URL: %v, want dpop_required", err)
	}
	other := dpopReq(f, "")
	other.DPoPURL = "https://elsewhere.example/mcp"
	if _, err := f.token(other); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Errorf("a proof for another origin: %v, want invalid_request", err)
	}
	tok, err := f.token(dpopReq(f, ""))
	if err != nil {
		t.Fatal(err)
	}
	jkt := f.as.BoundKey(tok.AccessToken)
	if tok.TokenType != "DPoP" || tok.DPoPProof == "" || jkt == "" {
		t.Fatalf("token type %q, proof %t, bound %q", tok.TokenType, tok.DPoPProof != "", jkt)
	}
	resp := call(t, f.as.MCPURL, tok)
	if resp.StatusCode != 401 || resp.Header.Get("DPoP-Nonce") != "rs-nonce" {
		t.Fatalf("first call: %d nonce %q, want 401 with the resource's nonce", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
	tok, _ = f.token(dpopReq(f, "rs-nonce"))
	if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 200 {
		t.Fatalf("call with the nonce: %d (%v)", resp.StatusCode, f.as.ProofErrors())
	}
	if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 401 {
		t.Errorf("replayed proof: %d, want 401", resp.StatusCode)
	}
	bare := tok
	bare.DPoPProof = ""
	if resp := call(t, f.as.MCPURL, bare); resp.StatusCode != 401 {
		t.Errorf("token without a proof: %d, want 401", resp.StatusCode)
	}
	bare.TokenType = "Bearer"
	if resp := call(t, f.as.MCPURL, bare); resp.StatusCode != 401 {
		t.Errorf("token as Bearer: %d, want 401", resp.StatusCode)
	}
	// The nonce is remembered per origin: no dpop_nonce needed any more.
	tok2, _ := f.token(dpopReq(f, ""))
	if tok2.DPoPProof == tok.DPoPProof {
		t.Error("the same proof was answered twice")
	}
	if resp := call(t, f.as.MCPURL, tok2); resp.StatusCode != 200 {
		t.Errorf("call with the remembered nonce: %d", resp.StatusCode)
	}

	// Refresh: the AS demands a proof of the same key. The AS and the
	// resource share an origin here, so the nonce remembered for it is the
	// resource's: the AS answers use_dpop_nonce once (2 requests).
	f.clk.Advance(59 * time.Minute)
	tok3, err := f.token(dpopReq(f, ""))
	if err != nil || tok3.AccessToken == tok.AccessToken || f.as.Refreshes() != 2 {
		t.Fatalf("refresh: %v, new token %t, refreshes %d (%v)", err, tok3.AccessToken != tok.AccessToken, f.as.Refreshes(), f.as.ProofErrors())
	}
	if f.as.BoundKey(tok3.AccessToken) != jkt {
		t.Errorf("refreshed token bound to %q, want the session's key %q", f.as.BoundKey(tok3.AccessToken), jkt)
	}

	// A new agent over the same store proves with the same key.
	f.a.Close()
	a2, err := agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := dpopReq(f, "rs-nonce")
	req.Server = f.as.MCPURL
	tok4, err := a2.Token(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp := call(t, f.as.MCPURL, tok4); resp.StatusCode != 200 {
		t.Errorf("after restart: %d (%v)", resp.StatusCode, f.as.ProofErrors())
	}
	ss, _ := a2.Sessions(ctx)
	if len(ss) != 1 || !ss[0].DPoP {
		t.Errorf("sessions after restart = %+v", ss)
	}
	if st, _ := a2.Status(ctx); st.KeyBound != 1 {
		t.Errorf("status counts %d key-bound sessions, want 1", st.KeyBound)
	}
	if _, err := a2.Logout(ctx, agent.LogoutRequest{Server: f.as.MCPURL, KeepRemote: true}); err != nil {
		t.Fatal(err)
	}
	keys, _ := f.store.Keys(ctx, "session/")
	if len(keys) != 0 {
		t.Errorf("items left after logout: %v", keys)
	}
}

// TestDPoPDeviceGrant: a headless login by the device grant polls with
// proofs and yields a key-bound session.
func TestDPoPDeviceGrant(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DeviceInterval: 1, DPoP: true, ASNonce: "n", ResourceDPoP: true})
	info, err := f.a.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL, NoBrowser: true}, nil)
	if err != nil || !info.DPoP {
		t.Fatalf("login: %+v, %v (%v)", info, err, f.as.ProofErrors())
	}
	tok, err := f.token(dpopReq(f, ""))
	if err != nil || f.as.BoundKey(tok.AccessToken) == "" {
		t.Fatalf("token: %v, bound %q", err, f.as.BoundKey(tok.AccessToken))
	}
	if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 200 {
		t.Errorf("call: %d (%v)", resp.StatusCode, f.as.ProofErrors())
	}
}

// TestBearerOnlyResourceGetsBearerTokens: an AS that advertises DPoP does
// not make a session key-bound when the resource's challenge offers only
// Bearer: no proof is sent, the token is a bearer token.
func TestBearerOnlyResourceGetsBearerTokens(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DPoP: true})
	info := f.login(agent.LoginRequest{})
	tok, err := f.token(dpopReq(f, ""))
	if err != nil {
		t.Fatal(err)
	}
	if info.DPoP || tok.TokenType != "Bearer" || tok.DPoPProof != "" || f.as.DPoPTokenRequests() != 0 {
		t.Errorf("dpop %t, type %s, proof %t, proofs at the AS %d", info.DPoP, tok.TokenType, tok.DPoPProof != "", f.as.DPoPTokenRequests())
	}
	if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 200 {
		t.Errorf("bearer call: %d", resp.StatusCode)
	}
}

// TestDPoPConfigForces: dpop = false in the config gives a bearer session
// where the resource asks for DPoP; dpop = true a key-bound one where it
// does not.
func TestDPoPConfigForces(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			var f *fixture
			f = newFixture(t, oauthtest.Options{DPoP: true, ResourceDPoP: !on}, func(c *agent.Config) {})
			s, err := agent.ParseSettings("config.toml", []byte(fmt.Sprintf("[servers.x]\nurl = %q\ndpop = %t\n", f.as.MCPURL, on)))
			if err != nil {
				t.Fatal(err)
			}
			f.a.Close()
			if f.a, err = agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now, OpenURL: f.as.Browser(), Settings: s}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.a.Close() })
			if info := f.login(agent.LoginRequest{Server: "x"}); info.DPoP != on {
				t.Errorf("dpop = %t, want %t", info.DPoP, on)
			}
		})
	}
}

// TestDPoPLoginRequestDecides: the login's own choice (mcpkey login
// --dpop=false) beats what the server asks for.
func TestDPoPLoginRequestDecides(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DPoP: true, ResourceDPoP: true})
	no := false
	if info := f.login(agent.LoginRequest{DPoP: &no}); info.DPoP || f.as.DPoPTokenRequests() != 0 {
		t.Errorf("dpop = %t with %d proofs at the AS, want a bearer login", info.DPoP, f.as.DPoPTokenRequests())
	}
}

// TestDPoPRefusedGetsOneBearerSignIn: a resource that asks for DPoP in its
// metadata but refuses key-bound tokens gets one more sign-in, for a
// bearer token, and the agent remembers that for the server.
func TestDPoPRefusedGetsOneBearerSignIn(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DPoP: true, PRM: func(m map[string]any) {
		m["dpop_signing_alg_values_supported"] = []string{"ES256"}
	}})
	if info := f.login(agent.LoginRequest{}); !info.DPoP {
		t.Fatalf("not key-bound: %+v", info)
	}
	var nl *agent.NeedsLoginError
	for i := 0; i < 3 && nl == nil; i++ {
		tok, err := f.token(dpopReq(f, ""))
		if err != nil {
			t.Fatal(err)
		}
		if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 401 {
			t.Fatalf("the resource took a DPoP token: %d", resp.StatusCode)
		}
		req := dpopReq(f, "")
		req.RejectedToken = tok.AccessToken
		_, err = f.token(req)
		errors.As(err, &nl)
	}
	if nl == nil || !strings.Contains(nl.Reason, "bearer") {
		t.Fatalf("no login asked for a bearer token: %v", nl)
	}
	if info := f.login(agent.LoginRequest{}); info.DPoP {
		t.Fatal("the second sign-in is key-bound again")
	}
	tok, _ := f.token(dpopReq(f, ""))
	if resp := call(t, f.as.MCPURL, tok); resp.StatusCode != 200 {
		t.Errorf("bearer token after the extra sign-in: %d", resp.StatusCode)
	}
	// Remembered with the session: after a restart a new sign-in is a
	// bearer one too.
	f.a.Close()
	a2, err := agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now, OpenURL: f.as.Browser()})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	f.a = a2
	if info := f.login(agent.LoginRequest{}); info.DPoP {
		t.Error("after a restart the sign-in is key-bound again")
	}
}

var _ = store.NewMemory
