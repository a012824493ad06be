package ipc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// countingClient is s.client() that counts its dials: a client that keeps
// its connection dials once.
func countingClient(s *testServer) (*ipc.Client, *atomic.Int32) {
	var n atomic.Int32
	c := s.client()
	c.Dial = func(ctx context.Context) (net.Conn, error) {
		n.Add(1)
		if s.transport == "websocket" {
			return ipc.DialWebSocket(ctx, s.url, s.secret)
		}
		return ipc.Dial(ctx, s.path)
	}
	return c, &n
}

// slowBackend answers token.get for "slow" only when the call is
// cancelled (announcing on started that it waits), and at once for any
// other server, with the server's name as the token.
func slowBackend(started chan<- struct{}) *testBackend {
	return &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		if req.Server == "slow" {
			if started != nil {
				started <- struct{}{}
			}
			<-ctx.Done()
			return agent.Token{}, ctx.Err()
		}
		return agent.Token{AccessToken: req.Server, TokenType: "Bearer", Server: req.Server}, nil
	}}
}

// TestClientSurvivesCancelledRead: a caller reads its own reply, so a
// cancelled caller is interrupted in the middle of reading. The connection
// must survive that, over and over: the next calls go out on it (no
// redial) and get their own replies.
func TestClientSurvivesCancelledRead(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		checkNoGoroutineLeak(t)
		started := make(chan struct{}, 1)
		s := startServerOn(t, tr, slowBackend(started), server.ServerOptions{})
		c, dials := countingClient(s)
		defer c.Close()
		for i := range 20 {
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := c.Token(ctx, agent.TokenRequest{Server: "slow"})
				errc <- err
			}()
			<-started // the caller is reading by now, or about to
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: slow call = %v, want context.Canceled", i, err)
			}
			want := fmt.Sprint("fast", i)
			tok, err := c.Token(context.Background(), agent.TokenRequest{Server: want})
			if err != nil || tok.AccessToken != want {
				t.Fatalf("round %d: token after a cancelled call = %q, %v; want %q", i, tok.AccessToken, err, want)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("the client dialled %d times, want 1: a cancelled read broke the connection", n)
		}
	})
}

// TestClientSharedUnderCancellation: callers sharing one client, some
// cancelled at random moments (before, during and after their reply), all
// get their own replies or their context's error, on one connection.
func TestClientSharedUnderCancellation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) {
		checkNoGoroutineLeak(t)
		b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
			if d, ok := strings.CutPrefix(req.Server, "wait-"); ok {
				// Answer after a moment, or not at all once cancelled.
				dur, _ := time.ParseDuration(d)
				t := time.NewTimer(dur)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return agent.Token{}, ctx.Err()
				}
			}
			return agent.Token{AccessToken: req.Server, TokenType: "Bearer", Server: req.Server}, nil
		}}
		s := startServerOn(t, tr, b, server.ServerOptions{})
		c, dials := countingClient(s)
		defer c.Close()
		if _, err := c.Status(context.Background()); err != nil { // dial outside the short deadlines
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var ok, cancelled atomic.Int32
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for i := range 150 {
					server := fmt.Sprintf("g%d-%d", g, i)
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if rng.IntN(3) == 0 {
						server = fmt.Sprintf("wait-%dus", rng.IntN(400))
						ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(400))*time.Microsecond)
					}
					tok, err := c.Token(ctx, agent.TokenRequest{Server: server})
					cancel()
					switch {
					case err == nil && tok.AccessToken == server:
						ok.Add(1)
					case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
						cancelled.Add(1)
					default:
						t.Errorf("Token(%q) = %q, %v", server, tok.AccessToken, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if n := dials.Load(); n != 1 {
			t.Errorf("the client dialled %d times, want 1", n)
		}
		if ok.Load() == 0 || cancelled.Load() == 0 {
			t.Errorf("%d calls answered and %d cancelled: want some of each", ok.Load(), cancelled.Load())
		}
		t.Logf("%d answered, %d cancelled", ok.Load(), cancelled.Load())
	})
}

// TestClientResumesAfterPartialReply: the agent had written part of a
// reply when its caller gave up. The next caller on the connection reads
// the rest of that reply (and drops it: nobody waits for it), then its
// own.
func TestClientResumesAfterPartialReply(t *testing.T) {
	path := filepath.Join(shortDir(t), "partial.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	half := make(chan struct{})
	serverErr := make(chan error, 1)
	go func() {
		serverErr <- func() error {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			r := bufio.NewReader(c)
			expect := func(want string) error {
				line, err := r.ReadString('\n')
				if err != nil || !strings.Contains(line, want) {
					return fmt.Errorf("read %q, %v; want a line with %s", line, err, want)
				}
				return nil
			}
			if err := expect(`"id":1,"method":"token.get"`); err != nil {
				return err
			}
			first := `{"jsonrpc":"2.0","id":1,"result":{"access_token":"first","token_type":"Bearer"}}` + "\n"
			if _, err := c.Write([]byte(first[:30])); err != nil {
				return err
			}
			close(half)
			if err := expect(`"rpc.cancel","params":{"id":1}`); err != nil {
				return err
			}
			if _, err := c.Write([]byte(first[30:])); err != nil {
				return err
			}
			if err := expect(`"id":2,"method":"token.get"`); err != nil {
				return err
			}
			_, err = c.Write([]byte(`{"jsonrpc":"2.0","id":2,"result":{"access_token":"second","token_type":"Bearer"}}` + "\n"))
			return err
		}()
	}()
	c := &ipc.Client{Path: path}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Token(ctx, agent.TokenRequest{Server: "a"})
		errc <- err
	}()
	select {
	case <-half:
	case err := <-serverErr:
		t.Fatalf("server: %v", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("first call = %v, want context.Canceled", err)
	}
	tok, err := c.Token(context.Background(), agent.TokenRequest{Server: "a"})
	if err != nil || tok.AccessToken != "second" {
		t.Fatalf("second call = %q, %v; want %q", tok.AccessToken, err, "second")
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
}
