package launch_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds the proxy secret to every request.
type bearer struct {
	secret string
	base   http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.secret)
	return b.base.RoundTrip(r)
}

func startProxy(t *testing.T, s *stack) (base, secret string) {
	t.Helper()
	secret = launch.NewSecret()
	p, err := launch.NewProxy(launch.ProxyConfig{Client: s.client, Secret: secret, AllowedOrigins: []string{"vscode-file://vscode-app"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String(), secret
}

func connectHTTP(t testing.TB, endpoint string, rt http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "http-host", Version: "1"}, nil)
	client.AddRoots(&mcp.Root{URI: "file:///proxied"})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: rt}}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestProxy(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	base, secret := startProxy(t, s)
	cs := connectHTTP(t, base+"/demo/mcp", bearer{secret, http.DefaultTransport})
	if got := callText(t, cs, "echo", map[string]any{"text": "via proxy"}); got != "via proxy" {
		t.Errorf("echo = %q", got)
	}
	if got := callText(t, cs, "roots", struct{}{}); got != "file:///proxied" {
		t.Errorf("roots = %q", got)
	}
	const size = 10 << 20
	if got := callText(t, cs, "big", map[string]any{"size": size}); len(got) != size {
		t.Errorf("big: %d bytes", len(got))
	}
	before := s.as.Refreshes()
	s.revokeCurrent()
	if got := callText(t, cs, "echo", map[string]any{"text": "after 401"}); got != "after 401" {
		t.Errorf("echo after 401 = %q", got)
	}
	if n := s.as.Refreshes() - before; n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}

	t.Run("refusals", func(t *testing.T) {
		port := strings.TrimPrefix(base, "http://127.0.0.1")
		init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
		for _, tc := range []struct {
			name   string
			host   string
			auth   string
			origin string
			path   string
			want   int
		}{
			{"no secret", "", "", "", "/demo/mcp", http.StatusUnauthorized},
			{"wrong secret", "", "Bearer " + secret + "x", "", "/demo/mcp", http.StatusUnauthorized},
			{"basic auth", "", "Basic " + secret, "", "/demo/mcp", http.StatusUnauthorized},
			{"foreign origin", "", "Bearer " + secret, "https://evil.example", "/demo/mcp", http.StatusForbidden},
			{"non-loopback host", "evil.example" + port, "Bearer " + secret, "", "/demo/mcp", http.StatusMisdirectedRequest},
			{"rebinding host", "attacker.test:80", "Bearer " + secret, "", "/demo/mcp", http.StatusMisdirectedRequest},
			{"unknown server", "", "Bearer " + secret, "", "/nope/mcp", http.StatusNotFound},
			{"bad path", "", "Bearer " + secret, "", "/demo/other", http.StatusNotFound},
			{"localhost host", "localhost" + port, "Bearer " + secret, "", "/demo/mcp", http.StatusOK},
			{"allowed origin", "", "Bearer " + secret, "vscode-file://vscode-app", "/demo/mcp", http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, base+tc.path, strings.NewReader(init))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if tc.host != "" {
					req.Host = tc.host
				}
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				if tc.origin != "" {
					req.Header.Set("Origin", tc.origin)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
				}
			})
		}
	})
}

// TestProxyUnixSocket: over the Unix socket the peer uid replaces the
// secret.
func TestProxyUnixSocket(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	p, err := launch.NewProxy(launch.ProxyConfig{Client: s.client})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mkp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "proxy.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	cs := connectHTTP(t, "http://localhost/demo/mcp", tr)
	if got := callText(t, cs, "echo", map[string]any{"text": "unix"}); got != "unix" {
		t.Errorf("echo = %q", got)
	}
}

// TestProxyNeedsLogin answers with a JSON-RPC error telling the user to
// sign in, not a 401 the host would try OAuth on.
func TestProxyNeedsLogin(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	release := s.browser.hold()
	defer release()
	secret := launch.NewSecret()
	p, _ := launch.NewProxy(launch.ProxyConfig{Client: s.client, Secret: secret, LoginGrace: 20 * time.Millisecond})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/demo/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		ID    int `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusInternalServerError || body.ID != 7 || body.Error.Code != launch.CodeLoginRequired ||
		!strings.Contains(body.Error.Message, "sign in to demo") {
		t.Errorf("answer without a session: %d %+v", resp.StatusCode, body)
	}
	if s.browser.opened.Load() != 1 {
		t.Errorf("browser opened %d times, want 1", s.browser.opened.Load())
	}
}
