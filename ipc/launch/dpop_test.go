package launch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/internal/dpopcheck"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/launch"
)

// dpopStack is a go-sdk MCP server that takes DPoP-bound tokens only (it
// checks the proof, ath and cnf.jkt, refuses replays and asks for its
// nonce), its authorization server (the test AS with DPoP), and an agent
// behind a real socket.
type dpopStack struct {
	as                *oauthtest.Server
	url               string
	client            *ipc.Client
	nonceChallenges   atomic.Int64
	refused, accepted atomic.Int64
	// rotate: every accepted request gets a new nonce (DPoP-Nonce on the
	// response, RFC 9449 §9); the one before stays valid.
	rotate    atomic.Bool
	rotations atomic.Int64
}

func newDPoPStack(t *testing.T) *dpopStack {
	t.Helper()
	s := &dpopStack{}
	mcpSrv := mcp.NewServer(&mcp.Implementation{Name: "dpop-test", Version: "1.0.0"}, nil)
	mcp.AddTool(mcpSrv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Text string `json:"text,omitempty"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo " + in.Text}}}, nil, nil
	})
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	s.url = hs.URL + "/mcp"
	prm := hs.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"resource": s.url, "authorization_servers": []string{s.as.Issuer},
			"scopes_supported": []string{"mcp:tools"}, "dpop_bound_access_tokens_required": true})
	})
	checker := &dpopcheck.Checker{Nonce: "rs-nonce"}
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv }, nil)
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(params string) {
			s.refused.Add(1)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP algs="ES256", resource_metadata=%q%s`, prm, params))
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		jkt := s.as.BoundKey(tok)
		if !ok || jkt == "" || !s.as.ValidAccessToken(tok) {
			refuse("")
			return
		}
		_, err := checker.Check(r.Header.Get("DPoP"), r.Method, s.url, tok, jkt)
		if errors.Is(err, dpopcheck.ErrUseNonce) {
			s.nonceChallenges.Add(1)
			w.Header().Set("DPoP-Nonce", checker.CurrentNonce())
			refuse(`, error="use_dpop_nonce"`)
			return
		}
		if err != nil {
			refuse(`, error="invalid_dpop_proof"`)
			return
		}
		s.accepted.Add(1)
		if s.rotate.Load() {
			s.rotations.Add(1)
			w.Header().Set("DPoP-Nonce", checker.Rotate())
		}
		streamable.ServeHTTP(w, r)
	}))
	s.as = oauthtest.New(t, oauthtest.Options{DPoP: true, ASNonce: "as-nonce", Resource: s.url, ASScopesSupported: []string{"mcp:tools"}})

	a, err := agent.New(t.Context(), agent.Config{Store: store.NewMemory(), OpenURL: s.as.Browser()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	s.client, _ = serveAgent(t, a, slog.New(slog.DiscardHandler))
	lctx, lcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer lcancel()
	info, err := s.client.Login(lctx, agent.LoginRequest{Server: s.url}, nil)
	if err != nil || !info.DPoP {
		t.Fatalf("login: %+v, %v (proof errors %v)", info, err, s.as.ProofErrors())
	}
	return s
}

// TestProbeDPoP: mcpkey probe's AuthTransport gets a proof per request from
// the agent, answers the resource's nonce challenge once, and calls a tool.
func TestProbeDPoP(t *testing.T) {
	s := newDPoPStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := launch.Probe(ctx, s.client, launch.ProbeOptions{Server: s.url, Call: "echo"})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if res.CallResult != "echo " || len(res.Tools) != 1 {
		t.Errorf("probe = %+v", res)
	}
	if n := s.nonceChallenges.Load(); n != 1 {
		t.Errorf("%d nonce challenges, want 1 (the nonce is remembered afterwards)", n)
	}
	if s.accepted.Load() < 3 {
		t.Errorf("%d requests accepted", s.accepted.Load())
	}
}

// TestClientTransportDPoP: ipc.Client.Transport under the go-sdk client
// signs every request through the agent, nonce included.
func TestClientTransportDPoP(t *testing.T) {
	s := newDPoPStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: s.url, HTTPClient: &http.Client{Transport: s.client.Transport(s.url, nil)}}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil || r.Content[0].(*mcp.TextContent).Text != "echo hi" {
		t.Fatalf("call: %v %v", r, err)
	}
	if n := s.nonceChallenges.Load(); n != 1 {
		t.Errorf("%d nonce challenges, want 1", n)
	}
}

// TestDPoPRotatingNonce: a resource server that hands out a new nonce on
// every response it accepts (RFC 9449 §9) costs probe (AuthTransport) and
// Client.Transport one nonce challenge in all: each new nonce reaches the
// agent with the next token.get, so the next proof carries it.
func TestDPoPRotatingNonce(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, s *dpopStack) error
	}{
		{"probe", func(ctx context.Context, s *dpopStack) error {
			_, err := launch.Probe(ctx, s.client, launch.ProbeOptions{Server: s.url, Call: "echo"})
			return err
		}},
		{"Client.Transport", func(ctx context.Context, s *dpopStack) error {
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
				Endpoint: s.url, HTTPClient: &http.Client{Transport: s.client.Transport(s.url, nil)}}, nil)
			if err != nil {
				return err
			}
			defer cs.Close()
			for range 3 {
				if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newDPoPStack(t)
			s.rotate.Store(true)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := tc.run(ctx, s); err != nil {
				t.Fatal(err)
			}
			if n := s.rotations.Load(); n < 4 {
				t.Fatalf("the server rotated its nonce %d times; the test needs at least 4", n)
			}
			if n := s.nonceChallenges.Load(); n != 1 {
				t.Errorf("%d nonce challenges for %d requests accepted, want 1: a nonce from a 200 did not reach the next proof", n, s.accepted.Load())
			}
		})
	}
}

// TestTokenHeaderLines: what `mcpkey token --dpop` prints is accepted once
// by the resource and refused when replayed.
func TestTokenHeaderLines(t *testing.T) {
	s := newDPoPStack(t)
	if _, err := s.client.Token(t.Context(), agent.TokenRequest{Server: s.url}); !errors.Is(err, agent.ErrDPoPRequired) {
		t.Fatalf("token.get without method and URL: %v", err)
	}
	tok, err := s.client.Token(t.Context(), agent.TokenRequest{Server: s.url, DPoPMethod: "POST", DPoPURL: s.url, DPoPNonce: "rs-nonce"})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := ipc.HeaderLines(tok, "POST", s.url)
	if err != nil {
		t.Fatal(err)
	}
	send := func() int {
		req, _ := http.NewRequest("POST", s.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
			k, v, _ := strings.Cut(l, ": ")
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if !strings.HasPrefix(lines, "Authorization: DPoP ") || !strings.Contains(lines, "\nDPoP: ") {
		t.Fatalf("lines = %q", strings.SplitN(lines, " ", 2)[0])
	}
	if code := send(); code == http.StatusUnauthorized {
		t.Errorf("the printed headers were refused")
	}
	if code := send(); code != http.StatusUnauthorized {
		t.Errorf("the replayed headers got %d, want 401", code)
	}
}
