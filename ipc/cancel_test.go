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
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// lateCancelConn holds the write of the first session.login request, after
// it went out whole, until its caller's context has ended and the client
// has set the write deadline that aborts writes: the window between a
// successful write and the end of its context watch, which the scheduler
// only rarely opens.
type lateCancelConn struct {
	net.Conn
	written  chan struct{} // closed once the request went out
	aborted  chan struct{} // closed when a deadline in the past is set
	heldOnce sync.Once
	abortOne sync.Once
}

func (c *lateCancelConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if bytes.Contains(b, []byte(`"session.login"`)) {
		c.heldOnce.Do(func() {
			close(c.written)
			<-c.aborted
		})
	}
	return n, err
}

func (c *lateCancelConn) SetWriteDeadline(t time.Time) error {
	err := c.Conn.SetWriteDeadline(t)
	if !t.IsZero() && t.Before(time.Now()) {
		c.abortOne.Do(func() { close(c.aborted) })
	}
	return err
}

// TestCancelRightAfterWrite is the regression test for a cancellation lost
// when the caller's context ended just after its request was written: the
// deadline that aborts a write stayed on the connection and failed the
// rpc.cancel notification, so the agent never cancelled the call.
func TestCancelRightAfterWrite(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	b := &testBackend{login: func(ctx context.Context, req agent.LoginRequest, progress func(agent.Event)) (agent.SessionInfo, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- ctx.Err()
		return agent.SessionInfo{}, ctx.Err()
	}}
	s := startServer(t, b, server.ServerOptions{})
	lc := &lateCancelConn{written: make(chan struct{}), aborted: make(chan struct{})}
	c := &ipc.Client{Dial: func(ctx context.Context) (net.Conn, error) {
		nc, err := ipc.Dial(ctx, s.path)
		if err != nil {
			return nil, err
		}
		lc.Conn = nc
		return lc, nil
	}}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Login(ctx, agent.LoginRequest{Server: "a"}, nil)
		errc <- err
	}()
	<-lc.written
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Login err = %v, want context.Canceled", err)
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend ctx err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend context not cancelled by rpc.cancel")
	}
	// The connection is still good: no deadline was left behind.
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("status after cancel: %v", err)
	}
	if got := countLines(s.logs.String(), "connection opened"); got != 1 {
		t.Errorf("%d connections opened, want 1 (the cancel broke the connection)", got)
	}
}

func countLines(logs, sub string) int {
	n := 0
	for line := range bytes.SplitSeq([]byte(logs), []byte("\n")) {
		if bytes.Contains(line, []byte(sub)) {
			n++
		}
	}
	return n
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
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend ctx err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request on a half-closed connection not cancelled by server shutdown")
	}
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
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend ctx err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request of a half-closed peer not cancelled when it closed")
	}
	waitFor(t, 5*time.Second, "connection closed", func() bool { return contains(s.logs.String(), "connection closed") })
}
