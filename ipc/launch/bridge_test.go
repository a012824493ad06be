package launch_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bridged is a go-sdk client session talking through launch.Bridge.
type bridged struct {
	cs     *mcp.ClientSession
	status *syncBuf
	done   chan error

	mu       sync.Mutex
	progress []float64
	logs     []string
}

func startBridge(t testing.TB, s *stack, server string, cfg launch.BridgeConfig) *bridged {
	t.Helper()
	p := newPipes()
	b := &bridged{status: &syncBuf{}, done: make(chan error, 1)}
	cfg.Client, cfg.Server, cfg.In, cfg.Out, cfg.Status = s.client, server, p.bridgeR, p.bridgeW, b.status
	go func() {
		err := launch.Bridge(context.Background(), cfg)
		p.bridgeW.Close()
		p.bridgeR.Close()
		b.done <- err
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "host", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			b.mu.Lock()
			b.progress = append(b.progress, r.Params.Progress)
			b.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			b.mu.Lock()
			b.logs = append(b.logs, r.Params.Data.(string))
			b.mu.Unlock()
		},
	})
	client.AddRoots(&mcp.Root{URI: "file:///work/project", Name: "project"})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: p.hostR, Writer: p.hostW}, nil)
	if err != nil {
		t.Fatalf("connect through the bridge: %v\nbridge stderr:\n%s", err, b.status.String())
	}
	b.cs = cs
	t.Cleanup(func() {
		cs.Close()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Error("the bridge did not exit after the host closed stdin")
		}
	})
	return b
}

// exit closes the host side and returns the bridge's result.
func (b *bridged) exit(t *testing.T) error {
	t.Helper()
	b.cs.Close()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the bridge did not exit after the host closed stdin")
		return nil
	}
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	// A hang guard, not a timing: the 10 MB result under -race on a busy
	// 2-core machine takes over 20 s.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("call %s: error result %+v", name, res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// TestBridgeStreamable relays every kind of message between a go-sdk host
// and a bearer-protected go-sdk Streamable HTTP server.
func TestBridgeStreamable(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	b := startBridge(t, s, "demo", launch.BridgeConfig{})
	ctx := t.Context()

	if ir := b.cs.InitializeResult(); ir.ServerInfo.Name != "launch-test" {
		t.Errorf("server info = %+v", ir.ServerInfo)
	}
	tools, err := b.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if len(tools.Tools) != 6 {
		t.Errorf("tools/list returned %d tools, want 6", len(tools.Tools))
	}
	if got := callText(t, b.cs, "echo", map[string]any{"text": "héllo\nworld"}); got != "héllo\nworld" {
		t.Errorf("echo = %q", got)
	}

	t.Run("progress", func(t *testing.T) {
		res, err := b.cs.CallTool(ctx, &mcp.CallToolParams{Name: "progress", Meta: mcp.Meta{"progressToken": "p1"}})
		if err != nil || res.IsError {
			t.Fatalf("progress: %v %+v", err, res)
		}
		if !poll(t, 5*time.Second, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.progress) == 3 }) {
			t.Errorf("progress notifications: %v, want 3", b.progress)
		}
	})
	t.Run("server request", func(t *testing.T) {
		if got := callText(t, b.cs, "roots", struct{}{}); got != "file:///work/project" {
			t.Errorf("roots seen by the server = %q", got)
		}
	})
	t.Run("notification", func(t *testing.T) {
		if err := b.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
			t.Fatal(err)
		}
		callText(t, b.cs, "log", map[string]any{"text": "from the server"})
		if !poll(t, 5*time.Second, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.logs) == 1 }) {
			t.Errorf("log notifications = %v", b.logs)
		}
	})
	t.Run("cancellation", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := b.cs.CallTool(cctx, &mcp.CallToolParams{Name: "wait"})
			errc <- err
		}()
		// Cancel once the server is running the tool.
		if !poll(t, 5*time.Second, func() bool { return s.authorized.Load() > 0 }) {
			t.Fatal("no request reached the server")
		}
		time.AfterFunc(100*time.Millisecond, cancel)
		select {
		case <-s.cancelled:
		case <-time.After(10 * time.Second):
			t.Fatal("the server never saw the cancellation")
		}
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call returned %v", err)
		}
	})
	t.Run("10 MB result", func(t *testing.T) {
		const size = 10 << 20
		if got := callText(t, b.cs, "big", map[string]any{"size": size}); len(got) != size {
			t.Errorf("big result: %d bytes, want %d", len(got), size)
		}
	})
	t.Run("401 mid-session", func(t *testing.T) {
		before := s.as.Refreshes()
		old := s.revokeCurrent()
		if got := callText(t, b.cs, "echo", map[string]any{"text": "after 401"}); got != "after 401" {
			t.Errorf("echo after 401 = %q", got)
		}
		if n := s.as.Refreshes() - before; n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
		if strings.Contains(b.status.String(), old) {
			t.Error("the bridge wrote a token to stderr")
		}
	})
	if err := b.exit(t); err != nil {
		t.Errorf("bridge exit: %v", err)
	}
	if st := b.status.String(); !strings.Contains(st, "mcpkey bridge: relaying stdio to "+s.mcpURL) || !strings.Contains(st, "closed stdin") {
		t.Errorf("bridge stderr:\n%s", st)
	}
}

// TestBridgeLegacySSE falls back to the 2024-11-05 transport and sends the
// stored API key, never an OAuth token.
func TestBridgeLegacySSE(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	b := startBridge(t, s, "keyed", launch.BridgeConfig{})
	if got := callText(t, b.cs, "echo", map[string]any{"text": "over sse"}); got != "over sse" {
		t.Errorf("echo = %q", got)
	}
	if got := callText(t, b.cs, "roots", struct{}{}); got != "file:///work/project" {
		t.Errorf("roots = %q", got)
	}
	if !strings.Contains(b.status.String(), "2024-11-05 HTTP+SSE") {
		t.Errorf("stderr does not mention the fallback:\n%s", b.status.String())
	}
	if seen, _ := s.sseSeen.Load().(string); seen != s.apiKey {
		t.Errorf("the server saw X-Api-Key %q", seen)
	}
	if strings.Contains(b.status.String(), s.apiKey) {
		t.Error("the API key reached stderr")
	}
}

// TestBridgeMissingSecret exits before reading stdin, naming the secret.
func TestBridgeMissingSecret(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	p := newPipes()
	err := launch.Bridge(t.Context(), launch.BridgeConfig{Client: s.client, Server: "needy", In: p.bridgeR, Out: p.bridgeW})
	var ms *launch.MissingSecretsError
	if !errors.As(err, &ms) || len(ms.Names) != 1 || ms.Names[0] != "absent" {
		t.Fatalf("err = %v, want a missing secret 'absent'", err)
	}
}

// TestBridgeLogin: initialize waits for the login the bridge starts; later,
// while a login runs, requests are answered at once with an error saying
// what to do, and traffic resumes once signed in.
func TestBridgeLogin(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	release := s.browser.hold()
	go func() {
		<-s.browser.waiting
		release()
	}()
	b := startBridge(t, s, "demo", launch.BridgeConfig{LoginGrace: 50 * time.Millisecond})
	if got := callText(t, b.cs, "echo", map[string]any{"text": "signed in"}); got != "signed in" {
		t.Errorf("echo = %q", got)
	}
	if n := s.browser.opened.Load(); n != 1 {
		t.Errorf("browser opened %d times, want 1", n)
	}

	// The grant dies (refresh → invalid_grant): a login is needed again.
	release = s.browser.hold()
	s.as.RevokeAll()
	s.revokeCurrent()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := b.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != launch.CodeLoginRequired || !strings.Contains(we.Message, "sign in to demo") || !strings.Contains(we.Message, "mcpkey login demo") {
		t.Fatalf("call during login: %v, want a login_required error", err)
	}
	// Another request while the login still runs: answered after the
	// grace period, no second browser tab.
	_, err = b.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "y"}})
	if !errors.As(err, &we) || we.Code != launch.CodeLoginRequired {
		t.Fatalf("second call during login: %v", err)
	}
	release()
	if !poll(t, 10*time.Second, func() bool {
		return strings.Contains(b.status.String(), "signed in to demo") && strings.Count(b.status.String(), "signed in to demo") >= 2
	}) {
		t.Fatalf("the second login never finished:\n%s", b.status.String())
	}
	if got := callText(t, b.cs, "echo", map[string]any{"text": "resumed"}); got != "resumed" {
		t.Errorf("echo after login = %q", got)
	}
	if n := s.browser.opened.Load(); n != 2 {
		t.Errorf("browser opened %d times, want 2", n)
	}
}

// TestBridgeSharedRefresh: two bridges on one session whose token the
// server stops accepting cause one refresh at the AS.
func TestBridgeSharedRefresh(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	b1 := startBridge(t, s, "demo", launch.BridgeConfig{})
	b2 := startBridge(t, s, "demo", launch.BridgeConfig{})
	before := s.as.Refreshes()
	s.revokeCurrent()
	var wg sync.WaitGroup
	for _, b := range []*bridged{b1, b2} {
		wg.Go(func() { callText(t, b.cs, "echo", map[string]any{"text": "both"}) })
	}
	wg.Wait()
	if n := s.as.Refreshes() - before; n != 1 {
		t.Errorf("%d refreshes for two bridges, want 1", n)
	}
}

// TestBridgeTokenReuse: the bridge reuses the agent's token across
// messages, and drops it as soon as the agent says something changed: a
// lock stops the next request, a logout asks for a sign-in.
func TestBridgeTokenReuse(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	b := startBridge(t, s, "demo", launch.BridgeConfig{LoginGrace: 50 * time.Millisecond})
	// The event subscription starts with the bridge: wait until a call
	// is served from the cache (no token.get), then count.
	if !poll(t, 5*time.Second, func() bool {
		before := s.tokenGets.Load()
		callText(t, b.cs, "echo", map[string]any{"text": "warm"})
		return s.tokenGets.Load() == before
	}) {
		t.Fatal("every call still asks the agent for a token")
	}
	before := s.tokenGets.Load()
	for range 20 {
		callText(t, b.cs, "echo", map[string]any{"text": "again"})
	}
	if n := s.tokenGets.Load() - before; n != 0 {
		t.Errorf("%d token.get requests for 20 calls, want 0", n)
	}

	// Locked: the cached token is dropped, the agent refuses.
	if err := s.client.Lock(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	var lockedErr error
	if !poll(t, 5*time.Second, func() bool {
		_, lockedErr = b.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "locked"}})
		return lockedErr != nil
	}) {
		t.Fatal("calls still go through with the agent locked")
	}
	if !strings.Contains(lockedErr.Error(), "unlock") {
		t.Errorf("error while locked = %v, want it to say how to unlock", lockedErr)
	}
	if err := s.client.Unlock(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	callText(t, b.cs, "echo", map[string]any{"text": "unlocked"})

	// Logged out: the next call asks for a sign-in instead of using the
	// old token (the browser is held: a user yet to sign in).
	release := s.browser.hold()
	defer release()
	if _, err := s.client.Logout(t.Context(), agent.LogoutRequest{Server: "demo"}); err != nil {
		t.Fatal(err)
	}
	var loginErr error
	if !poll(t, 5*time.Second, func() bool {
		_, loginErr = b.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "out"}})
		return loginErr != nil
	}) {
		t.Fatal("calls still go through after logout")
	}
	var we *jsonrpc.Error
	if !errors.As(loginErr, &we) || we.Code != launch.CodeLoginRequired {
		t.Errorf("error after logout = %v, want code %d", loginErr, launch.CodeLoginRequired)
	}
}

// TestBridgeReusesConnections: POSTs answered with an event stream leave
// their connection in the pool, so a session of many calls dials a handful
// of connections (the POSTs' and the GET stream's), not one per call.
func TestBridgeReusesConnections(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	var dials atomic.Int64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	b := startBridge(t, s, "demo", launch.BridgeConfig{Base: tr})
	for range 50 {
		callText(t, b.cs, "echo", map[string]any{"text": "pooled"})
	}
	if n := dials.Load(); n > 4 {
		t.Errorf("%d connections dialled for 50 calls, want at most 4", n)
	}
}
