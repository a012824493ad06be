package launch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/internal/syncbuf"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stack is a real agent (memory store) behind a real ipc server on a Unix
// socket, an oauthtest authorization server, and go-sdk MCP servers: one
// Streamable HTTP server protected by the AS's tokens ("demo"), and a
// legacy HTTP+SSE server taking an API key ("keyed").
type stack struct {
	t       testing.TB
	as      *oauthtest.Server
	agent   *agent.Agent
	client  *ipc.Client
	sock    string
	mcpURL  string
	sseURL  string
	apiKey  string
	browser *gatedBrowser

	// rejectNext makes the demo server answer 401 to the next request
	// with the token it names (an access token revoked at the resource).
	rejectMu   sync.Mutex
	rejectNext string
	// rejectAll makes the demo server refuse every token, as a server does
	// whose authorization server issues tokens for another audience.
	rejectAll  atomic.Bool
	authorized atomic.Int64
	refused    atomic.Int64
	cancelled  chan struct{}
	sseSeen    atomic.Value // last X-Api-Key seen by the SSE server
	tokenGets  atomic.Int64 // token.get requests the agent's socket served
}

// methodCounter is a slog handler counting the ipc server's request logs
// for one method.
type methodCounter struct {
	method string
	n      *atomic.Int64
}

func (m methodCounter) Enabled(context.Context, slog.Level) bool { return true }
func (m methodCounter) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m methodCounter) WithGroup(string) slog.Handler            { return m }
func (m methodCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "method" && a.Value.String() == m.method {
			m.n.Add(1)
		}
		return true
	})
	return nil
}

// gatedBrowser completes the AS's auto-approving authorization when
// released; until then logins wait (a user taking their time).
type gatedBrowser struct {
	open    func(ctx context.Context, url string) error
	mu      sync.Mutex
	gate    chan struct{} // nil: open at once
	opened  atomic.Int64
	waiting chan struct{}
}

func (g *gatedBrowser) Open(ctx context.Context, url string) error {
	g.opened.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	go func() {
		if gate != nil {
			select {
			case g.waiting <- struct{}{}:
			default:
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		g.open(ctx, url)
	}()
	return nil
}

// hold makes the next logins wait until the returned func is called.
func (g *gatedBrowser) hold() (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.gate = ch
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(ch)
	}
}

func newStack(t testing.TB, opts oauthtest.Options) *stack {
	t.Helper()
	s := &stack{t: t, apiKey: "key-" + fmt.Sprint(time.Now().UnixNano()), cancelled: make(chan struct{}, 4)}
	mcpSrv := newTestServer(s)

	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	s.mcpURL = hs.URL + "/mcp"
	prm := hs.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"resource": s.mcpURL, "authorization_servers": []string{s.as.Issuer},
			"scopes_supported": []string{"mcp:tools"}})
	})
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv }, nil)
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.rejectMu.Lock()
		reject := tok != "" && tok == s.rejectNext || s.rejectAll.Load()
		s.rejectMu.Unlock()
		if tok == "" || reject || !s.as.ValidAccessToken(tok) {
			s.refused.Add(1)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q`, prm))
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		s.authorized.Add(1)
		streamable.ServeHTTP(w, r)
	}))
	sse := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return mcpSrv }, nil)
	mux.Handle("/sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.sseSeen.Store(r.Header.Get("X-Api-Key"))
		if r.Header.Get("X-Api-Key") != s.apiKey || r.Header.Get("Authorization") != "" {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && r.URL.Query().Get("sessionid") == "" {
			// A legacy server knows no Streamable HTTP POST.
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		sse.ServeHTTP(w, r)
	}))
	s.sseURL = hs.URL + "/sse"

	if opts.ASScopesSupported == nil {
		opts.ASScopesSupported = []string{"mcp:tools", "offline_access"}
	}
	opts.Resource = s.mcpURL
	s.as = oauthtest.New(t, opts)
	s.browser = &gatedBrowser{open: s.as.Browser(), waiting: make(chan struct{}, 16)}

	settings := &agent.Settings{Servers: map[string]agent.ServerSettings{
		"demo":  {Name: "demo", URL: s.mcpURL},
		"keyed": {Name: "keyed", URL: s.sseURL, Headers: map[string]string{"X-Api-Key": "secret:keyed-key"}},
		"needy": {Name: "needy", URL: s.sseURL, Headers: map[string]string{"X-Api-Key": "secret:absent"},
			Env: map[string]string{"NEEDY_TOKEN": "secret:absent", "OTHER": "secret:also-absent"}},
		"envy": {Name: "envy", URL: s.mcpURL, Env: map[string]string{"DEMO_TOKEN": "token", "DEMO_KEY": "secret:keyed-key"}},
	}}
	a, err := agent.New(t.Context(), agent.Config{Store: store.NewMemory(), Settings: settings, OpenURL: s.browser.Open})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	s.agent = a
	if err := a.SetSecret(t.Context(), "keyed-key", []byte(s.apiKey)); err != nil {
		t.Fatal(err)
	}

	s.client, s.sock = serveAgent(t, a, slog.New(methodCounter{method: ipc.MethodTokenGet, n: &s.tokenGets}))
	return s
}

// serveAgent serves a on a socket in a private temporary directory until
// the test ends, and returns a client of it and the socket's path.
func serveAgent(t testing.TB, a *agent.Agent, logger *slog.Logger) (*ipc.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mkl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.NewServer(a, server.ServerOptions{Logger: logger}).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	c := &ipc.Client{Path: sock}
	t.Cleanup(func() { c.Close() })
	return c, sock
}

// login signs in to the demo server.
func (s *stack) login() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.client.Login(ctx, agent.LoginRequest{Server: "demo"}, nil); err != nil {
		s.t.Fatalf("login: %v", err)
	}
}

// revokeCurrent makes the demo server refuse the agent's current token
// once, as a resource server does with a revoked access token.
func (s *stack) revokeCurrent() string {
	s.t.Helper()
	tok, err := s.client.Token(s.t.Context(), agent.TokenRequest{Server: "demo"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.rejectMu.Lock()
	s.rejectNext = tok.AccessToken
	s.rejectMu.Unlock()
	return tok.AccessToken
}

type textArgs struct {
	Text string `json:"text"`
}

type sizeArgs struct {
	Size int `json:"size"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newTestServer is a go-sdk server with tools that exercise every kind of
// message: results, big results, progress, server-to-client requests,
// notifications and cancellation.
func newTestServer(s *stack) *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "launch-test", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in textArgs) (*mcp.CallToolResult, any, error) {
		return text(in.Text), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "big"}, func(ctx context.Context, req *mcp.CallToolRequest, in sizeArgs) (*mcp.CallToolResult, any, error) {
		return text(strings.Repeat("x", in.Size)), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "progress"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if tok := req.Params.GetProgressToken(); tok != nil {
			for i := range 3 {
				req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i + 1), Total: 3, Message: "step"})
			}
		}
		return text("done"), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "roots"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		var uris []string
		for _, r := range res.Roots {
			uris = append(uris, r.URI)
		}
		return text(strings.Join(uris, ",")), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, in textArgs) (*mcp.CallToolResult, any, error) {
		err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "warning", Logger: "test", Data: in.Text})
		return text("logged"), nil, err
	})
	mcp.AddTool(server, &mcp.Tool{Name: "wait"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
			s.cancelled <- struct{}{}
			return nil, nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return text("not cancelled"), nil, nil
		}
	})
	return server
}

// pipes connects a go-sdk client to a Bridge over in-memory pipes.
type pipes struct {
	hostR   *io.PipeReader // host reads the bridge's output
	bridgeW *io.PipeWriter
	bridgeR *io.PipeReader // bridge reads the host's input
	hostW   *io.PipeWriter
}

func newPipes() *pipes {
	p := &pipes{}
	p.hostR, p.bridgeW = io.Pipe()
	p.bridgeR, p.hostW = io.Pipe()
	return p
}

// syncBuf is a goroutine-safe buffer (package syncbuf).
type syncBuf = syncbuf.Buffer

// poll calls cond until it is true or the deadline passes.
func poll(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
