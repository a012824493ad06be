package launch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rejectedSentence is what every path says when a server keeps rejecting
// freshly issued tokens (issue 12 §3).
const rejectedSentence = "the server rejected a freshly issued token; its audience may not match (see "

// callUntilRejected calls echo until the answer names the rejected token
// (at most 10 calls; a login the bridge or proxy started may answer
// "sign in" meanwhile) and returns that error.
func callUntilRejected(t *testing.T, s *stack, cs *mcp.ClientSession) error {
	t.Helper()
	var last error
	for range 10 {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
		cancel()
		if err == nil {
			t.Fatal("a call succeeded although the server rejects every token")
		}
		last = err
		if strings.Contains(err.Error(), rejectedSentence) {
			return err
		}
		// A login in flight: wait for it to finish before the next call.
		poll(t, 10*time.Second, func() bool {
			st, err := s.agent.Status(t.Context())
			return err == nil && st.PendingLogins == 0
		})
	}
	t.Fatalf("after 10 calls no error named the rejected token; last: %v", last)
	return nil
}

// TestNoLoginLoopBridge: a bridge to a server that rejects every token
// opens at most one browser window beyond the first login, then relays
// the sentence that names the audience.
func TestNoLoginLoopBridge(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	b := startBridge(t, s, "demo", launch.BridgeConfig{LoginGrace: 5 * time.Second})
	s.rejectAll.Store(true)
	callUntilRejected(t, s, b.cs)
	if n := s.browser.opened.Load(); n > 2 {
		t.Errorf("browser opened %d times, want at most 2 (the login and one extra sign-in)", n)
	}
	opened := s.browser.opened.Load()
	for range 3 { // and it stays that way
		callUntilRejected(t, s, b.cs)
	}
	if n := s.browser.opened.Load(); n != opened {
		t.Errorf("browser opened %d more times after the agent gave up", n-opened)
	}
}

// TestNoLoginLoopProxy: the same through the proxy, whose JSON-RPC error
// body carries the sentence (MCP clients show a 500's body).
func TestNoLoginLoopProxy(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	base, secret := startProxy(t, s)
	s.rejectAll.Store(true)
	var last string
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatalf("after 10 requests no answer named the rejected token; last: %s", last)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/demo/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the proxy answered 200 although the server rejects every token")
		}
		if strings.Contains(string(b), rejectedSentence) {
			break
		}
		poll(t, 10*time.Second, func() bool {
			st, err := s.agent.Status(t.Context())
			return err == nil && st.PendingLogins == 0
		})
	}
	if n := s.browser.opened.Load(); n > 2 {
		t.Errorf("browser opened %d times, want at most 2", n)
	}
}

// TestNoRefreshLoopClientTransport: Client.Transport never logs in; against
// a server that rejects every token it refreshes once, then gets
// needs_login (naming the audience) however often it asks; after one more
// login, ErrTokenRejected with the sentence.
func TestNoRefreshLoopClientTransport(t *testing.T) {
	s := newStack(t, oauthtest.Options{})
	s.login()
	s.rejectAll.Store(true)
	hc := &http.Client{Transport: s.client.Transport("demo", nil)}
	get := func() error {
		resp, err := hc.Get(s.mcpURL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	before := s.as.Refreshes()
	var last error
	for range 5 {
		if err := get(); err != nil {
			last = err
		}
	}
	if !errors.Is(last, agent.ErrNeedsLogin) || !strings.Contains(last.Error(), "its audience may not match") {
		t.Errorf("last error = %v, want needs_login naming the audience", last)
	}
	if n := s.as.Refreshes() - before; n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	s.login()
	if err := get(); !errors.Is(err, agent.ErrTokenRejected) || !strings.Contains(err.Error(), rejectedSentence) {
		t.Errorf("after one more login: %v, want ErrTokenRejected with the sentence", err)
	}
	if n := s.browser.opened.Load(); n != 2 {
		t.Errorf("browser opened %d times, want 2 (the two logins; Client.Transport never logs in)", n)
	}
}
