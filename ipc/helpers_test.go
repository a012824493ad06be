package ipc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// testBackend is a small in-test server.Backend: each method calls its func
// field, or answers a fixed value when that is nil.
type testBackend struct {
	status    func(ctx context.Context) (agent.Status, error)
	sessions  func(ctx context.Context) ([]agent.SessionInfo, error)
	token     func(ctx context.Context, req agent.TokenRequest) (agent.Token, error)
	logout    func(ctx context.Context, req agent.LogoutRequest) (agent.LogoutResult, error)
	login     func(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error)
	complete  func(ctx context.Context, url string) error
	subscribe func(ctx context.Context) <-chan agent.Event
}

var _ server.Backend = (*testBackend)(nil)

func (b *testBackend) Status(ctx context.Context) (agent.Status, error) {
	if b.status != nil {
		return b.status(ctx)
	}
	return agent.Status{Version: "test", PID: os.Getpid(), StoreBackend: "memory"}, nil
}

func (b *testBackend) Sessions(ctx context.Context) ([]agent.SessionInfo, error) {
	if b.sessions != nil {
		return b.sessions(ctx)
	}
	return nil, nil
}

func (b *testBackend) Token(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
	if b.token != nil {
		return b.token(ctx, req)
	}
	return agent.Token{AccessToken: "tok-" + req.Server, TokenType: "Bearer", Server: req.Server,
		ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, nil
}

func (b *testBackend) Logout(ctx context.Context, req agent.LogoutRequest) (agent.LogoutResult, error) {
	if b.logout != nil {
		return b.logout(ctx, req)
	}
	return agent.LogoutResult{Server: req.Server, Account: req.Account}, nil
}

func (b *testBackend) Login(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error) {
	if b.login != nil {
		return b.login(ctx, req, progress)
	}
	return agent.SessionInfo{Server: req.Server, State: agent.StateReady}, nil
}

func (b *testBackend) CompleteLogin(ctx context.Context, url string) error {
	if b.complete != nil {
		return b.complete(ctx, url)
	}
	return nil
}

func (b *testBackend) Subscribe(ctx context.Context) <-chan agent.Event {
	if b.subscribe != nil {
		return b.subscribe(ctx)
	}
	ch := make(chan agent.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// shortDir returns a fresh directory with a path short enough for sun_path.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testServer struct {
	path string
	logs *logBuffer
	stop func() // cancels Serve and waits for it to return
	// transport is "" (the Unix socket) or "websocket"; for the latter
	// url and secret are the server's, also in agent.ws.json next to path.
	transport   string
	url, secret string
}

// startServer serves b on a fresh socket until the test ends.
func startServer(t testing.TB, b server.Backend, opts server.ServerOptions) *testServer {
	t.Helper()
	path := filepath.Join(shortDir(t), "s", "agent.sock")
	ln, err := ipc.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, b, opts, ln, path)
}

func serveOn(t testing.TB, b server.Backend, opts server.ServerOptions, ln net.Listener, path string) *testServer {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := server.NewServer(b, opts)
	stop := serveUntilStopped(t, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	return &testServer{path: path, logs: logs, stop: stop}
}

// serveUntilStopped runs serve until stop (also run when the test ends)
// cancels its context, and checks that it returns, without an error.
func serveUntilStopped(t testing.TB, serve func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (s *testServer) client() *ipc.Client {
	return &ipc.Client{Path: s.path, WebSocket: s.transport == "websocket"}
}

// rawConn is a hand-driven protocol connection.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
	// For a WebSocket (ws), lines receives what a reader goroutine reads
	// from c, until done: see rawWS.
	ws         bool
	lines      chan []byte
	done       chan struct{}
	readerOnce sync.Once
}

func (s *testServer) raw(t testing.TB) *rawConn {
	t.Helper()
	if s.transport == "websocket" {
		return s.rawWS(t)
	}
	c, err := net.Dial("unix", s.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReaderSize(c, 1<<16)}
}

func (r *rawConn) send(line string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(line + "\n")); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// recv reads one message, failing the test after 5 s.
func (r *rawConn) recv() map[string]any {
	r.t.Helper()
	m, err := r.tryRecv(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	return m
}

func (r *rawConn) tryRecv(d time.Duration) (map[string]any, error) {
	line, err := r.readLine(d)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("reply %q is not JSON: %w", line, err)
	}
	return m, nil
}

// expectClosed asserts that the server closes the connection within d,
// discarding anything it sends first.
func (r *rawConn) expectClosed(d time.Duration) {
	r.t.Helper()
	end := time.Now().Add(d)
	for {
		_, err := r.readLine(time.Until(end))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("connection still open after %v", d)
		}
		return
	}
}

func errCode(t testing.TB, m map[string]any) (int, string) {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("reply %v has no error", m)
	}
	code := int(e["code"].(float64))
	data, _ := e["data"].(map[string]any)
	s, _ := data["code"].(string)
	return code, s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // polling interval, not a readiness guess
	}
}

// checkNoGoroutineLeak records the goroutine count and, at cleanup, waits
// until it is back to that count; it must be called before anything that
// starts goroutines.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// wantCancelled waits for a backend call to report on cancelled that its
// context was cancelled, and fails the test with notCancelled if none does
// within 5 s.
func wantCancelled(t testing.TB, cancelled <-chan error, notCancelled string) {
	t.Helper()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend ctx err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal(notCancelled)
	}
}

// loginAsync starts a login for server "a" on c in a goroutine; cancel
// cancels its context, and its error arrives on errc.
func loginAsync(c *ipc.Client) (cancel context.CancelFunc, errc <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		_, err := c.Login(ctx, agent.LoginRequest{Server: "a"}, nil)
		ch <- err
	}()
	return cancel, ch
}
