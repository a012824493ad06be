package ipc_test

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// rotatingBackend hands out "stale" until a caller reports it rejected, then
// "fresh": a refresh happens once however many callers report the old token.
type rotatingBackend struct {
	testBackend
	mu        sync.Mutex
	current   string
	refreshes int
}

func newRotatingBackend() *rotatingBackend {
	b := &rotatingBackend{current: "stale"}
	b.token = func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if req.RejectedToken != "" && req.RejectedToken == b.current {
			b.refreshes++
			b.current = "fresh"
		}
		return agent.Token{AccessToken: b.current, TokenType: "Bearer", Server: req.Server}, nil
	}
	return b
}

// bearer admits only "Bearer fresh" and counts 401s.
func bearer(next http.Handler, unauthorized *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer fresh")) != 1 {
			unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestTransportWithGoSDKStreamableClient(t *testing.T) {
	b := newRotatingBackend()
	s := startServer(t, b, server.ServerOptions{})

	server := mcp.NewServer(&mcp.Implementation{Name: "test-server", Version: "1.0.0"}, nil)
	type in struct {
		Name string `json:"name"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "greet", Description: "says hello"},
		func(ctx context.Context, req *mcp.CallToolRequest, args in) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + args.Name}}}, nil, nil
		})
	var unauthorized atomic.Int64
	hs := httptest.NewServer(bearer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil), &unauthorized))
	defer hs.Close()

	c := s.client()
	defer c.Close()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	ctx := context.Background()
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   hs.URL,
		HTTPClient: &http.Client{Transport: c.Transport(hs.URL, nil)},
	}, nil)
	if err != nil {
		t.Fatalf("connect through the agent transport: %v", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) != 1 || tools.Tools[0].Name != "greet" {
		t.Fatalf("tools = %+v", tools.Tools)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "mcpkey"}})
	if err != nil || res.Content[0].(*mcp.TextContent).Text != "hello mcpkey" {
		t.Fatalf("call tool: %+v, %v", res, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refreshes != 1 || unauthorized.Load() != 1 {
		t.Errorf("refreshes = %d, 401s = %d; want one retry after one 401", b.refreshes, unauthorized.Load())
	}
}

func TestTransport(t *testing.T) {
	t.Run("replays a body without GetBody", func(t *testing.T) {
		b := newRotatingBackend()
		s := startServer(t, b, server.ServerOptions{})
		var unauthorized atomic.Int64
		var bodies []string
		var mu sync.Mutex
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(body))
			mu.Unlock()
			bearer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), &unauthorized).ServeHTTP(w, r)
		}))
		defer hs.Close()
		c := s.client()
		defer c.Close()
		hc := &http.Client{Transport: c.Transport(hs.URL, nil)}
		req, _ := http.NewRequest("POST", hs.URL, io.NopCloser(strings.NewReader("payload")))
		req.GetBody = nil
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != "ok" {
			t.Fatalf("status %d body %q", resp.StatusCode, got)
		}
		if strings.Join(bodies, ",") != "payload,payload" {
			t.Errorf("server saw bodies %q, want the payload twice", bodies)
		}
		if req.Header.Get("Authorization") != "" {
			t.Error("RoundTrip modified the caller's request")
		}
	})
	t.Run("second 401 returned as is", func(t *testing.T) {
		b := newRotatingBackend()
		s := startServer(t, b, server.ServerOptions{})
		var calls atomic.Int64
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			http.Error(w, "still no", http.StatusUnauthorized)
		}))
		defer hs.Close()
		c := s.client()
		defer c.Close()
		resp, err := (&http.Client{Transport: c.Transport(hs.URL, nil)}).Get(hs.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "still no") || calls.Load() != 2 {
			t.Errorf("status %d, body %q, %d calls; want the second 401 after 2 calls", resp.StatusCode, body, calls.Load())
		}
	})
	t.Run("agent errors surface", func(t *testing.T) {
		b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
			return agent.Token{}, &agent.NeedsLoginError{Server: req.Server, Reason: "no session"}
		}}
		s := startServer(t, b, server.ServerOptions{})
		c := s.client()
		defer c.Close()
		_, err := (&http.Client{Transport: c.Transport("https://x.example/mcp", nil)}).Get("http://127.0.0.1:1/")
		if !errors.Is(err, agent.ErrNeedsLogin) {
			t.Fatalf("err = %v, want ErrNeedsLogin", err)
		}
	})
}

// TestAuthTransportRedirectStartsNoLogin: server A redirects to server B
// while A's session needs a login. The redirect is refused before the
// agent is asked again, so no login starts and B sees nothing.
func TestAuthTransportRedirectStartsNoLogin(t *testing.T) {
	var bHits, tokenCalls, logins atomic.Int64
	hb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { bHits.Add(1) }))
	defer hb.Close()
	ha := httptest.NewServer(http.RedirectHandler(hb.URL+"/mcp", http.StatusTemporaryRedirect))
	defer ha.Close()
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		if tokenCalls.Add(1) == 1 {
			return agent.Token{AccessToken: "at", TokenType: "Bearer", Server: ha.URL + "/mcp"}, nil
		}
		return agent.Token{}, &agent.NeedsLoginError{Server: req.Server, Reason: "expired"}
	}}
	s := startServer(t, b, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	at := &launch.AuthTransport{Client: c, Server: ha.URL + "/mcp",
		Login: func(context.Context, []string) error { logins.Add(1); return nil }}
	_, err := (&http.Client{Transport: at}).Post(ha.URL+"/mcp", "application/json", strings.NewReader(`{}`))
	if !errors.Is(err, ipc.ErrOtherOrigin) {
		t.Errorf("err = %v, want ErrOtherOrigin", err)
	}
	if logins.Load() != 0 || bHits.Load() != 0 || tokenCalls.Load() != 1 {
		t.Errorf("%d logins, %d requests at B, %d token calls; want 0, 0, 1", logins.Load(), bHits.Load(), tokenCalls.Load())
	}
}
