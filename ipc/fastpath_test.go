package ipc_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// cachingBackend is a testBackend with the agent's non-blocking token.get:
// cached answers from its own func, counting both paths.
type cachingBackend struct {
	*testBackend
	cached      func(ctx context.Context, req agent.TokenRequest) (agent.Token, bool)
	fast, slow  atomic.Int64
	lastCaller  atomic.Pointer[agent.Caller]
	lastRequest atomic.Pointer[agent.TokenRequest]
}

func (b *cachingBackend) CachedToken(ctx context.Context, req agent.TokenRequest) (agent.Token, bool) {
	b.fast.Add(1)
	if c, ok := agent.CallerFrom(ctx); ok {
		b.lastCaller.Store(&c)
	}
	b.lastRequest.Store(&req)
	return b.cached(ctx, req)
}

func newCachingBackend(cached func(ctx context.Context, req agent.TokenRequest) (agent.Token, bool)) *cachingBackend {
	b := &cachingBackend{cached: cached}
	b.testBackend = &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		b.slow.Add(1)
		switch req.Server {
		case "slow":
			<-ctx.Done()
			return agent.Token{}, ctx.Err()
		case "locked":
			return agent.Token{}, agent.ErrLocked
		}
		return agent.Token{AccessToken: "slow-" + req.Server, Server: req.Server}, nil
	}}
	return b
}

func TestTokenServedInline(t *testing.T) {
	forEachTransport(t, testTokenServedInline)
}

func testTokenServedInline(t *testing.T, tr string) {
	b := newCachingBackend(func(ctx context.Context, req agent.TokenRequest) (agent.Token, bool) {
		switch req.Server {
		case "panic":
			panic("boom")
		case "cached":
			return agent.Token{AccessToken: "fast", TokenType: "Bearer", Server: req.Server, Scopes: []string{"r"}}, true
		}
		return agent.Token{}, false
	})
	s := startServerOn(t, tr, b, ipc.ServerOptions{})
	c := s.client()
	defer c.Close()

	tok, err := c.Token(t.Context(), agent.TokenRequest{Server: "cached", Account: "acc", Scopes: []string{"r"}, MinTTL: 90 * time.Second})
	if err != nil || tok.AccessToken != "fast" || tok.Server != "cached" || len(tok.Scopes) != 1 {
		t.Fatalf("cached token = %+v, %v", tok, err)
	}
	if b.fast.Load() != 1 || b.slow.Load() != 0 {
		t.Errorf("fast %d slow %d, want the cache only", b.fast.Load(), b.slow.Load())
	}
	if r := b.lastRequest.Load(); r.Account != "acc" || r.MinTTL != 90*time.Second || len(r.Scopes) != 1 || r.Scopes[0] != "r" {
		t.Errorf("CachedToken got %+v", r)
	}
	if cl := b.lastCaller.Load(); cl == nil || cl.Transport == "" {
		t.Errorf("CachedToken's context has no caller: %v", cl)
	}
	// Declined, or a panic: the handler goroutine answers.
	for _, server := range []string{"other", "panic"} {
		tok, err = c.Token(t.Context(), agent.TokenRequest{Server: server})
		if err != nil || tok.AccessToken != "slow-"+server {
			t.Errorf("%s: token = %+v, %v", server, tok, err)
		}
	}
	if b.slow.Load() != 2 {
		t.Errorf("slow path ran %d times, want 2", b.slow.Load())
	}
	if !contains(s.logs.String(), "handler panic") {
		t.Errorf("no panic logged:\n%s", s.logs.String())
	}
	// A rejected token is never served from the cache.
	b.fast.Store(0)
	if tok, err := c.Token(t.Context(), agent.TokenRequest{Server: "cached", RejectedToken: "fast"}); err != nil || tok.AccessToken != "slow-cached" || b.fast.Load() != 0 {
		t.Errorf("rejected token: %+v, %v, cache asked %d times", tok, err, b.fast.Load())
	}
}

// TestTokenInlineDuplicateID: an id still in flight on the slow path is a
// duplicate for the inline path too.
func TestTokenInlineDuplicateID(t *testing.T) {
	b := newCachingBackend(func(ctx context.Context, req agent.TokenRequest) (agent.Token, bool) {
		return agent.Token{AccessToken: "fast"}, req.Server == "cached"
	})
	s := startServer(t, b, ipc.ServerOptions{})
	r := s.raw(t)
	r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"slow"}}`)
	waitFor(t, 5*time.Second, "slow request started", func() bool { return b.slow.Load() == 1 })
	r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"cached"}}`)
	m := r.recv()
	if code, _ := errCode(t, m); code != ipc.CodeInvalidRequest || m["id"] != float64(1) {
		t.Errorf("reply = %v, want a duplicate id error", m)
	}
	r.send(`{"jsonrpc":"2.0","id":2,"method":"token.get","params":{"server":"cached"}}`)
	if m := r.recv(); m["id"] != float64(2) || m["result"].(map[string]any)["access_token"] != "fast" {
		t.Errorf("reply = %v", m)
	}
}

// TestClientTokenCache: the client's reuse of the last decoded token never
// hands out a stale token or a shared Scopes slice.
func TestClientTokenCache(t *testing.T) {
	var mu sync.Mutex
	access := "first"
	b := newCachingBackend(func(ctx context.Context, req agent.TokenRequest) (agent.Token, bool) {
		mu.Lock()
		defer mu.Unlock()
		if req.Server == "locked" {
			return agent.Token{}, false
		}
		return agent.Token{AccessToken: access, TokenType: "Bearer", Scopes: []string{"r", "w"}, Server: req.Server,
			ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, true
	})
	s := startServer(t, b, ipc.ServerOptions{})
	c := s.client()
	defer c.Close()
	get := func() agent.Token {
		t.Helper()
		tok, err := c.Token(t.Context(), agent.TokenRequest{Server: "s"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t1 := get()
	t1.Scopes[0] = "changed by the caller"
	t2 := get()
	if t2.AccessToken != "first" || t2.Scopes[0] != "r" || !t2.ExpiresAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("second token = %+v", t2)
	}
	t2.Scopes[1] = "changed again"
	mu.Lock()
	access = "second"
	mu.Unlock()
	if t3 := get(); t3.AccessToken != "second" || t3.Scopes[1] != "w" {
		t.Fatalf("token after rotation = %+v", t3)
	}
	// An error reply is never taken for the cached token.
	if _, err := c.Token(t.Context(), agent.TokenRequest{Server: "locked"}); !errors.Is(err, agent.ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
}
