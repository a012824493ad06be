package ipc_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// heldWriteConn holds the write of the first session.login request until
// released, and records any write deadline in the past: a caller's write
// in progress when its context ends.
type heldWriteConn struct {
	net.Conn
	holding   chan struct{} // closed when the request's write has started
	release   chan struct{}
	heldOnce  sync.Once
	mu        sync.Mutex
	abortedAt []time.Time // write deadlines set in the past
}

func (c *heldWriteConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`"session.login"`)) {
		c.heldOnce.Do(func() {
			close(c.holding)
			<-c.release
		})
	}
	return c.Conn.Write(b)
}

func (c *heldWriteConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		c.mu.Lock()
		c.abortedAt = append(c.abortedAt, t)
		c.mu.Unlock()
	}
	return c.Conn.SetWriteDeadline(t)
}

// TestCancelDuringWrite: a caller's context ends while its request is being
// written. The write is not aborted (half a message breaks the line
// framing, and any write error kills a gorilla WebSocket for good, which
// made TestClientSharedUnderCancellation/websocket flaky): it completes,
// the caller gets its context's error, the agent is told by rpc.cancel, and
// the connection serves the next call.
func TestCancelDuringWrite(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		started := make(chan struct{}, 1)
		cancelled := make(chan error, 1)
		b := &testBackend{login: func(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- ctx.Err()
			return agent.SessionInfo{}, ctx.Err()
		}}
		s := startServerOn(t, tr, b, server.ServerOptions{})
		hc := &heldWriteConn{holding: make(chan struct{}), release: make(chan struct{})}
		c, dials := countingClient(s)
		dial := c.Dial
		c.Dial = func(ctx context.Context) (net.Conn, error) {
			nc, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			hc.Conn = nc
			return hc, nil
		}
		defer c.Close()
		cancel, errc := loginAsync(c)
		<-hc.holding
		cancel()
		close(hc.release)
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Login err = %v, want context.Canceled", err)
		}
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the request whose caller gave up during the write never reached the agent (the write was aborted)")
		}
		wantCancelled(t, cancelled, "backend context not cancelled by rpc.cancel")
		if _, err := c.Status(context.Background()); err != nil {
			t.Errorf("status after cancel: %v", err)
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("the client dialled %d times, want 1 (the cancel broke the connection)", n)
		}
		hc.mu.Lock()
		defer hc.mu.Unlock()
		if len(hc.abortedAt) > 0 {
			t.Errorf("the client set write deadlines in the past %v: it aborts writes", hc.abortedAt)
		}
	})
}

// blockingTokenBackend answers token.get only when its context ends, and
// reports that on cancelled.
func blockingTokenBackend() (b *testBackend, started chan struct{}, cancelled chan error) {
	started = make(chan struct{}, 1)
	cancelled = make(chan error, 1)
	b = &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- ctx.Err()
		return agent.Token{}, ctx.Err()
	}}
	return b, started, cancelled
}

// halfClosedWithRequest starts a server with opts, sends it a token.get
// that b never finishes on its own, and half-closes the connection once
// the backend has the request; it returns when the server has seen the EOF.
func halfClosedWithRequest(t *testing.T, b server.Backend, started <-chan struct{}, opts server.ServerOptions) (s *testServer, r *rawConn) {
	s = startServer(t, b, opts)
	r = s.raw(t)
	r.send(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`)
	<-started
	if err := r.c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "EOF seen", func() bool { return contains(s.logs.String(), "half-closed") })
	return s, r
}

// TestHalfCloseServerStop: a request pending on a half-closed connection
// must not keep Serve from returning, even when the backend call ignores
// its cancellation for longer than CancelGrace (a hung keyring).
func TestHalfCloseServerStop(t *testing.T) {
	checkNoGoroutineLeak(t)
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- ctx.Err()
		<-release
		return agent.Token{}, ctx.Err()
	}}
	s, r := halfClosedWithRequest(t, b, started, server.ServerOptions{CancelGrace: 50 * time.Millisecond})
	stopped := make(chan struct{})
	go func() {
		s.stop()
		close(stopped)
	}()
	wantCancelled(t, cancelled, "request on a half-closed connection not cancelled by server shutdown")
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return while a cancelled request hung")
	}
	r.expectClosed(5 * time.Second)
	if !contains(s.logs.String(), "not waiting for them") {
		t.Errorf("no warning about the hung request in the log:\n%s", s.logs.String())
	}
}

// TestHalfCloseThenClose: a half-closed peer that then closes for good has
// its pending requests cancelled, as if it had closed at once.
func TestHalfCloseThenClose(t *testing.T) {
	checkNoGoroutineLeak(t)
	b, started, cancelled := blockingTokenBackend()
	s, r := halfClosedWithRequest(t, b, started, server.ServerOptions{})
	r.c.Close()
	wantCancelled(t, cancelled, "request of a half-closed peer not cancelled when it closed")
	waitFor(t, 5*time.Second, "connection closed", func() bool { return contains(s.logs.String(), "connection closed") })
}
