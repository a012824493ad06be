package ipc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

func TestMethodsRoundTrip(t *testing.T) { forEachTransport(t, testMethodsRoundTrip) }

func testMethodsRoundTrip(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var gotTok agent.TokenRequest
	var gotCaller agent.Caller
	var gotLogout agent.LogoutRequest
	var gotURL string
	b := &testBackend{
		sessions: func(ctx context.Context) ([]agent.SessionInfo, error) {
			return []agent.SessionInfo{{Server: "https://a.example/mcp", Account: "work", State: agent.StateReady, Scopes: []string{"r"}}}, nil
		},
		token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
			gotTok = req
			gotCaller, _ = agent.CallerFrom(ctx)
			return agent.Token{AccessToken: "at", TokenType: "Bearer", ExpiresAt: exp, Scopes: []string{"r"},
				Server: "https://a.example/mcp", Account: "work"}, nil
		},
		logout: func(ctx context.Context, req agent.LogoutRequest) (agent.LogoutResult, error) {
			gotLogout = req
			return agent.LogoutResult{Server: req.Server, Revoked: true}, nil
		},
		complete: func(ctx context.Context, url string) error { gotURL = url; return nil },
	}
	s := startServerOn(t, tr, b, server.ServerOptions{AgentVersion: "1.2.3"})
	c := s.client()
	defer c.Close()
	ctx := context.Background()

	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProtocolVersion != 1 || h.AgentVersion != "1.2.3" || !contains(strings.Join(h.Capabilities, ","), "token.get") {
		t.Errorf("hello = %+v", h)
	}
	st, err := c.Status(ctx)
	if err != nil || st.PID != os.Getpid() || st.StoreBackend != "memory" {
		t.Errorf("status = %+v, %v", st, err)
	}
	ss, err := c.Sessions(ctx)
	if err != nil || len(ss) != 1 || ss[0].Account != "work" || ss[0].Scopes[0] != "r" {
		t.Errorf("sessions = %+v, %v", ss, err)
	}
	tok, err := c.Token(ctx, agent.TokenRequest{Server: "a", Account: "work", Scopes: []string{"r", "w"},
		MinTTL: 90*time.Second + time.Millisecond, RejectedToken: "old"})
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Token{AccessToken: "at", TokenType: "Bearer", ExpiresAt: exp, Scopes: []string{"r"},
		Server: "https://a.example/mcp", Account: "work"}
	if !reflect.DeepEqual(tok, want) {
		t.Errorf("token = %+v, want %+v", tok, want)
	}
	wantReq := agent.TokenRequest{Server: "a", Account: "work", Scopes: []string{"r", "w"}, MinTTL: 91 * time.Second, RejectedToken: "old"}
	if !reflect.DeepEqual(gotTok, wantReq) {
		t.Errorf("backend got %+v, want %+v", gotTok, wantReq)
	}
	exe, _ := os.Executable()
	if tr == "websocket" {
		// No pid over TCP: the secret identifies the client.
		if gotCaller.Transport != "websocket" || gotCaller.UID != os.Getuid() || gotCaller.PID != 0 || gotCaller.Client != "ws" {
			t.Errorf("caller = %+v, want websocket uid %d client ws", gotCaller, os.Getuid())
		}
	} else if gotCaller.Transport != "unix" || gotCaller.UID != os.Getuid() || gotCaller.PID != os.Getpid() || gotCaller.Exe != exe {
		t.Errorf("caller = %+v, want unix uid %d pid %d exe %s", gotCaller, os.Getuid(), os.Getpid(), exe)
	}
	lr, err := c.Logout(ctx, agent.LogoutRequest{Server: "a", Account: "x", KeepRemote: true})
	if err != nil || !lr.Revoked || lr.Server != "a" {
		t.Errorf("logout = %+v, %v", lr, err)
	}
	if gotLogout != (agent.LogoutRequest{Server: "a", Account: "x", KeepRemote: true}) {
		t.Errorf("backend logout got %+v", gotLogout)
	}
	if err := c.CompleteLogin(ctx, "http://127.0.0.1:1/cb?code=c&state=s"); err != nil || gotURL != "http://127.0.0.1:1/cb?code=c&state=s" {
		t.Errorf("complete: %v, url %q", err, gotURL)
	}

	// The wire form of token.get's result is exactly the documented one.
	r := s.raw(t)
	r.send(`{"jsonrpc":"2.0","id":"x","method":"token.get","params":{"server":"a","min_ttl_seconds":5}}`)
	m := r.recv()
	res, _ := json.Marshal(m["result"])
	if string(res) != `{"access_token":"at","account":"work","expires_at":"2030-01-02T03:04:05Z","scopes":["r"],"server":"https://a.example/mcp","token_type":"Bearer"}` || m["id"] != "x" {
		t.Errorf("wire reply = %s (id %v)", res, m["id"])
	}
}

func TestHelloRefusesNewerProtocol(t *testing.T) { forEachTransport(t, testHelloRefusesNewerProtocol) }

func testHelloRefusesNewerProtocol(t *testing.T, tr string) {
	s := startServerOn(t, tr, &testBackend{}, server.ServerOptions{})
	r := s.raw(t)
	r.send(`{"jsonrpc":"2.0","id":1,"method":"agent.hello","params":{"client":"x","protocol_version":2}}`)
	code, s2 := errCode(t, r.recv())
	if code != ipc.CodeInvalidReq || s2 != "invalid_request" {
		t.Errorf("code = %d %q, want invalid_request", code, s2)
	}
	r.send(`{"jsonrpc":"2.0","id":2,"method":"agent.hello","params":{"protocol_version":1}}`)
	if m := r.recv(); m["error"] != nil {
		t.Errorf("version 1 refused: %v", m)
	}
}

func TestErrorCodes(t *testing.T) { forEachTransport(t, testErrorCodes) }

func testErrorCodes(t *testing.T, tr string) {
	nl := &agent.NeedsLoginError{Server: "https://a.example/mcp", Account: "w", Scopes: []string{"r", "w"}, Reason: "no session"}
	cases := []struct {
		name     string
		err      error
		sentinel error
		code     int
		str      string
	}{
		{"not_found", fmt.Errorf("server x: %w", agent.ErrNotFound), agent.ErrNotFound, -32001, "not_found"},
		{"needs_login", nl, agent.ErrNeedsLogin, -32002, "needs_login"},
		{"needs_login bare", agent.ErrNeedsLogin, agent.ErrNeedsLogin, -32002, "needs_login"},
		{"locked", agent.ErrLocked, agent.ErrLocked, -32003, "locked"},
		{"denied", fmt.Errorf("approval: %w", agent.ErrDenied), agent.ErrDenied, -32004, "denied"},
		{"store_unavailable", fmt.Errorf("keyring: %w", agent.ErrStoreUnavailable), agent.ErrStoreUnavailable, -32005, "store_unavailable"},
		{"invalid_request", fmt.Errorf("bad url: %w", agent.ErrInvalidRequest), agent.ErrInvalidRequest, -32006, "invalid_request"},
		{"internal", errors.New("something broke"), nil, -32000, "internal"},
	}
	var current atomic.Pointer[error]
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		return agent.Token{}, *current.Load()
	}}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	r := s.raw(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			current.Store(&tc.err)
			_, err := c.Token(context.Background(), agent.TokenRequest{Server: "a"})
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.err.Error() {
				t.Errorf("message = %q, want %q", err.Error(), tc.err.Error())
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
			for _, other := range []error{agent.ErrNotFound, agent.ErrNeedsLogin, agent.ErrLocked, agent.ErrDenied, agent.ErrStoreUnavailable, agent.ErrInvalidRequest} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
			var we *ipc.Error
			if tc.name != "needs_login" && (!errors.As(err, &we) || we.Data.Code != tc.str) {
				t.Errorf("errors.As *ipc.Error: %v (%+v)", err, we)
			}
			r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`)
			code, str := errCode(t, r.recv())
			if code != tc.code || str != tc.str {
				t.Errorf("wire code = %d %q, want %d %q", code, str, tc.code, tc.str)
			}
		})
	}
	t.Run("needs_login details", func(t *testing.T) {
		var err error = nl
		current.Store(&err)
		_, err = c.Token(context.Background(), agent.TokenRequest{Server: "a"})
		var got *agent.NeedsLoginError
		if !errors.As(err, &got) || !reflect.DeepEqual(got, nl) {
			t.Fatalf("errors.As NeedsLoginError: %v, %+v", err, got)
		}
	})
}

func TestHostileInput(t *testing.T) { forEachTransport(t, testHostileInput) }

func testHostileInput(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	s := startServerOn(t, tr, &testBackend{}, server.ServerOptions{MaxFrame: 4096, FrameTimeout: 200 * time.Millisecond})
	ok := func(t *testing.T, r *rawConn) {
		t.Helper()
		r.send(`{"jsonrpc":"2.0","id":99,"method":"agent.status"}`)
		m := r.recv()
		if m["id"] != float64(99) || m["result"] == nil {
			t.Fatalf("connection unusable afterwards: %v", m)
		}
	}
	for _, tc := range []struct {
		name, line string
		code       int
		id         any
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","id":1,"method":`, -32700, nil},
		{"not JSON at all", "\x00\xff garbage", -32700, nil},
		{"unknown method", `{"jsonrpc":"2.0","id":2,"method":"no.such"}`, -32601, float64(2)},
		{"wrong param type", `{"jsonrpc":"2.0","id":3,"method":"token.get","params":{"server":42}}`, -32602, float64(3)},
		{"params not an object", `{"jsonrpc":"2.0","id":4,"method":"token.get","params":[1]}`, -32602, float64(4)},
		{"missing server", `{"jsonrpc":"2.0","id":5,"method":"token.get","params":{}}`, -32602, float64(5)},
		{"wrong version", `{"jsonrpc":"1.0","id":6,"method":"agent.status"}`, -32600, float64(6)},
		{"object id", `{"jsonrpc":"2.0","id":{"a":1},"method":"agent.status"}`, -32600, nil},
		{"array", `[1,2,3]`, -32700, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.raw(t)
			r.send(tc.line)
			m := r.recv()
			if code, _ := errCode(t, m); code != tc.code {
				t.Errorf("code = %d, want %d (%v)", code, tc.code, m)
			}
			if m["id"] != tc.id {
				t.Errorf("id = %v, want %v", m["id"], tc.id)
			}
			ok(t, r)
		})
	}
	t.Run("notifications get no reply", func(t *testing.T) {
		r := s.raw(t)
		r.send(`{"jsonrpc":"2.0","method":"no.such"}`)
		r.send(`{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":12345}}`)
		r.send(`{"jsonrpc":"2.0","method":"token.get","params":{"server":"a"}}`)
		ok(t, r) // the next message is the reply to this request, nothing before it
	})
	t.Run("frame over the cap", func(t *testing.T) {
		r := s.raw(t)
		go r.c.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"` + strings.Repeat("a", 10000) + `"}}` + "\n"))
		m := r.recv()
		if code, _ := errCode(t, m); code != -32600 || !contains(m["error"].(map[string]any)["message"].(string), "4096") {
			t.Errorf("reply = %v", m)
		}
		r.expectClosed(5 * time.Second)
	})
	t.Run("half a line then stall", func(t *testing.T) {
		r := s.raw(t)
		r.writeRaw(r.encode(`{"jsonrpc":"2.0","id":1,"method":"agent.status"}`)[:24])
		start := time.Now()
		r.expectClosed(5 * time.Second)
		if time.Since(start) < 150*time.Millisecond {
			t.Errorf("closed after %v, before the frame timeout", time.Since(start))
		}
	})
	t.Run("idle connection stays open", func(t *testing.T) {
		r := s.raw(t)
		if _, err := r.tryRecv(400 * time.Millisecond); err == nil {
			t.Fatal("unexpected message")
		}
		ok(t, r)
	})
	t.Run("slow but steady frame", func(t *testing.T) {
		// Bytes trickling in over less than the frame timeout are fine.
		r := s.raw(t)
		msg := r.encode(`{"jsonrpc":"2.0","id":7,"method":"agent.status"}`)
		r.writeRaw(msg[:24])
		r.writeRaw(msg[24:])
		if m := r.recv(); m["id"] != float64(7) {
			t.Fatalf("reply = %v", m)
		}
	})
}

func TestPanicInHandlerIsInternalError(t *testing.T) {
	forEachTransport(t, testPanicInHandlerIsInternalError)
}

func testPanicInHandlerIsInternalError(t *testing.T, tr string) {
	b := &testBackend{status: func(ctx context.Context) (agent.Status, error) { panic("boom with secret-ish params") }}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	_, err := c.Status(context.Background())
	var we *ipc.Error
	if !errors.As(err, &we) || we.Data.Code != "internal" {
		t.Fatalf("err = %v, want internal", err)
	}
	if _, err := c.Sessions(context.Background()); err != nil {
		t.Fatalf("connection unusable after a panic: %v", err)
	}
	if !contains(s.logs.String(), "handler panic") {
		t.Error("panic not logged")
	}
}

func TestCancel(t *testing.T) { forEachTransport(t, testCancel) }

func testCancel(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	b := &testBackend{
		login: func(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- ctx.Err()
			return agent.SessionInfo{}, ctx.Err()
		},
		token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- ctx.Err()
			return agent.Token{}, ctx.Err()
		},
	}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	t.Run("rpc.cancel", func(t *testing.T) {
		c := s.client()
		defer c.Close()
		cancel, errc := loginAsync(c)
		<-started
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Login err = %v, want context.Canceled", err)
		}
		wantCancelled(t, cancelled, "backend context not cancelled by rpc.cancel")
		// The shared connection survives a cancel.
		if _, err := c.Status(context.Background()); err != nil {
			t.Errorf("status after cancel: %v", err)
		}
	})
	t.Run("rpc.cancel raw reply", func(t *testing.T) {
		r := s.raw(t)
		r.send(`{"jsonrpc":"2.0","id":"L","method":"token.get","params":{"server":"a"}}`)
		<-started
		r.send(`{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":"L"}}`)
		m := r.recv()
		if code, str := errCode(t, m); code != ipc.CodeCancelled || str != "cancelled" || m["id"] != "L" {
			t.Errorf("reply = %v", m)
		}
		<-cancelled
	})
	t.Run("closing the connection", func(t *testing.T) {
		r := s.raw(t)
		r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`)
		<-started
		r.c.Close()
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("backend context not cancelled by disconnect")
		}
	})
	t.Run("server shutdown", func(t *testing.T) {
		r := s.raw(t)
		r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`)
		<-started
		s.stop()
		<-cancelled
		r.expectClosed(5 * time.Second)
	})
}

func TestLoginProgressBeforeResult(t *testing.T) { forEachTransport(t, testLoginProgressBeforeResult) }

func testLoginProgressBeforeResult(t *testing.T, tr string) {
	b := &testBackend{login: func(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error) {
		if req.ClientSecret != "sek" || !req.NoBrowser || req.ClientID != "cid" {
			return agent.SessionInfo{}, fmt.Errorf("bad request: %w", agent.ErrInvalidRequest)
		}
		for i := range 3 {
			progress(agent.Event{Kind: agent.EventLoginProgress, Message: fmt.Sprint("step ", i)})
		}
		return agent.SessionInfo{Server: req.Server, State: agent.StateReady}, nil
	}}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	var mu sync.Mutex
	var got []string
	info, err := c.Login(context.Background(), agent.LoginRequest{Server: "a", NoBrowser: true, ClientID: "cid", ClientSecret: "sek"},
		func(ev agent.Event) {
			mu.Lock()
			got = append(got, ev.Message)
			mu.Unlock()
		})
	if err != nil || info.State != agent.StateReady {
		t.Fatalf("login = %+v, %v", info, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "step 0,step 1,step 2" {
		t.Errorf("progress before result = %q", got)
	}
	if contains(s.logs.String(), "sek") {
		t.Error("client secret in server log")
	}
}

func TestWatch(t *testing.T) { forEachTransport(t, testWatch) }

func testWatch(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	feeds := make(chan chan agent.Event, 4)
	b := &testBackend{subscribe: func(ctx context.Context) <-chan agent.Event {
		ch := make(chan agent.Event, 16)
		feeds <- ch
		return ch
	}}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	c := s.client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	feed := <-feeds
	for i := range 5 {
		feed <- agent.Event{Kind: agent.EventSessionChanged, Server: fmt.Sprint("s", i)}
	}
	for i := range 5 {
		select {
		case ev := <-events:
			if ev.Server != fmt.Sprint("s", i) || ev.Kind != agent.EventSessionChanged {
				t.Errorf("event %d = %+v", i, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	// The agent dropping the subscriber (closing its channel) ends the stream.
	close(feed)
	select {
	case _, open := <-events:
		if open {
			t.Error("unexpected event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch channel not closed after the agent dropped the subscriber")
	}

	t.Run("ctx end closes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		events, err := c.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		feed := <-feeds
		cancel()
		for range events {
		}
		close(feed)
	})
}

func TestSlowClientsAreDropped(t *testing.T) { forEachTransport(t, testSlowClientsAreDropped) }

func testSlowClientsAreDropped(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	opts := server.ServerOptions{QueueSize: 16, WriteTimeout: 500 * time.Millisecond}
	big := strings.Repeat("x", 8192)
	feeds := make(chan chan agent.Event, 1)
	b := &testBackend{
		token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
			return agent.Token{AccessToken: big, Server: req.Server}, nil
		},
		subscribe: func(ctx context.Context) <-chan agent.Event {
			ch := make(chan agent.Event, 1<<16)
			feeds <- ch
			return ch
		},
	}
	s := startServerOn(t, tr, b, opts)

	normal := func(t *testing.T, n int) {
		c := s.client()
		defer c.Close()
		start := time.Now()
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.Token(ctx, agent.TokenRequest{Server: "n"})
			cancel()
			if err != nil {
				t.Fatalf("normal client call %d: %v", i, err)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("normal client slowed: %d calls took %v", n, d)
		}
	}

	t.Run("never reads replies", func(t *testing.T) {
		r := s.raw(t)
		line := []byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}` + "\n")
		flood := make(chan error, 1)
		go func() {
			for {
				if _, err := r.c.Write(line); err != nil {
					flood <- err
					return
				}
			}
		}()
		normal(t, 200)
		select {
		case <-flood: // the server hung up on the flooder
		case <-time.After(10 * time.Second):
			t.Fatal("flooding client that never reads was not disconnected")
		}
		if !contains(s.logs.String(), "disconnecting client") {
			t.Error("no disconnect logged")
		}
	})
	t.Run("subscriber never reads events", func(t *testing.T) {
		r := s.raw(t)
		r.send(`{"jsonrpc":"2.0","id":1,"method":"events.subscribe"}`)
		feed := <-feeds
		done := make(chan struct{})
		go func() {
			defer close(done)
			ev := agent.Event{Kind: agent.EventSessionChanged, Message: big}
			for range 1 << 16 {
				feed <- ev
			}
		}()
		normal(t, 100)
		<-done
		// The server closed the subscriber: writing eventually fails.
		waitFor(t, 10*time.Second, "subscriber disconnect", func() bool {
			r.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, err := r.c.Write([]byte(" \n")) // ignored by the server (blank)
			return err != nil
		})
	})
}

func TestConcurrentClients(t *testing.T) { forEachTransport(t, testConcurrentClients) }

func testConcurrentClients(t *testing.T, tr string) {
	checkNoGoroutineLeak(t)
	clients, calls := 500, 200
	if testing.Short() {
		clients, calls = 50, 20
	}
	var served atomic.Int64
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		served.Add(1)
		return agent.Token{AccessToken: "tok-" + req.Server, Server: req.Server}, nil
	}}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c := s.client()
			defer c.Close()
			server := fmt.Sprint("s", i)
			for range calls {
				tok, err := c.Token(context.Background(), agent.TokenRequest{Server: server})
				if err != nil {
					errs <- err
					return
				}
				if tok.AccessToken != "tok-"+server {
					errs <- fmt.Errorf("client %d got %q", i, tok.Server)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := served.Load(); got != int64(clients*calls) {
		t.Errorf("served %d, want %d", got, clients*calls)
	}
}

func TestClientConcurrentOnOneConnection(t *testing.T) {
	forEachTransport(t, testClientConcurrentOnOneConnection)
}

func testClientConcurrentOnOneConnection(t *testing.T, tr string) {
	// Replies come back out of order; ids match them up.
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		if req.Server == "slow" {
			<-ctx.Done()
		}
		return agent.Token{AccessToken: req.Server}, nil
	}}
	s := startServerOn(t, tr, b, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	slow := make(chan error, 1)
	go func() {
		_, err := c.Token(ctx, agent.TokenRequest{Server: "slow"})
		slow <- err
	}()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			want := fmt.Sprint("s", i)
			tok, err := c.Token(context.Background(), agent.TokenRequest{Server: want})
			if err != nil || tok.AccessToken != want {
				t.Errorf("got %q, %v; want %q", tok.AccessToken, err, want)
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-slow; !errors.Is(err, context.Canceled) {
		t.Errorf("slow call: %v", err)
	}
}

func TestClientRedialsAfterAgentRestart(t *testing.T) {
	s := startServer(t, &testBackend{}, server.ServerOptions{})
	c := s.client()
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stop()
	ln, err := ipc.Listen(s.path)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, &testBackend{}, server.ServerOptions{}, ln, s.path)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status after agent restart: %v", err)
	}
}

func TestHalfCloseGetsReplies(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		started <- struct{}{}
		select {
		case <-release:
			return agent.Token{AccessToken: "late"}, nil
		case <-ctx.Done():
			return agent.Token{}, ctx.Err()
		}
	}}
	s := startServer(t, b, server.ServerOptions{})
	r := s.raw(t)
	r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`)
	<-started
	if err := r.c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Give the server time to see the EOF before the backend answers; the
	// answer must arrive either way.
	waitFor(t, 5*time.Second, "EOF seen", func() bool { return contains(s.logs.String(), "half-closed") })
	close(release)
	m := r.recv()
	if res, _ := m["result"].(map[string]any); res["access_token"] != "late" {
		t.Fatalf("reply after half close = %v", m)
	}
	r.expectClosed(5 * time.Second)
}
