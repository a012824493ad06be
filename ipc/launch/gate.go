package launch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// errLoginPending: a login runs and this request stopped waiting for it.
var errLoginPending = errors.New("login in progress")

type loginWaitKey struct{}

// withLoginWait bounds how long a login started for this request waits;
// a context without it (or with 0) never starts a login.
func withLoginWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, loginWaitKey{}, d)
}

// gate runs at most one login at a time for one launcher and lets requests
// wait for it, each as long as it can afford. The agent joins it with any
// other launcher's or CLI's login for the same session, so the user sees one
// browser tab.
type gate struct {
	client  *ipc.Client
	t       *target
	account string
	wait    time.Duration // bound on one login
	statusf func(format string, a ...any)

	// mu guards running, done and err.
	mu      sync.Mutex
	running bool
	done    chan struct{}
	err     error
}

// login is an AuthTransport Login: it starts the login (or joins the
// one running) and waits as long as ctx's login wait allows. bctx bounds
// the login itself.
func (g *gate) login(bctx, ctx context.Context, scopes []string) error {
	d, _ := ctx.Value(loginWaitKey{}).(time.Duration)
	if d <= 0 {
		return errLoginPending // e.g. a DELETE at shutdown: no login for it
	}
	done := g.start(bctx, scopes)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.err
	case <-t.C:
		return errLoginPending
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) start(bctx context.Context, scopes []string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running {
		return g.done
	}
	g.running = true
	g.done = make(chan struct{})
	done := g.done
	name := g.t.display()
	g.statusf("sign in to %s: a browser window is opening (waiting up to %s); or run: mcpkey login %s", name, g.wait, name)
	go func() {
		ctx, cancel := context.WithTimeout(bctx, g.wait)
		defer cancel()
		_, err := g.client.Login(ctx, agent.LoginRequest{Server: g.t.ref, Account: g.account, Scopes: scopes}, func(e agent.Event) {
			if e.Message != "" {
				g.statusf("%s", e.Message)
			}
			if e.URL != "" && e.ShowURL {
				g.statusf("open this URL to sign in: %s", e.URL)
			}
		})
		if err != nil {
			g.statusf("sign-in to %s failed: %v", name, err)
		} else {
			g.statusf("signed in to %s", name)
		}
		g.mu.Lock()
		g.err, g.running = err, false
		close(done)
		g.mu.Unlock()
	}()
	return done
}

// await holds a request while a login runs, up to d; errLoginPending if the
// login is still running then.
func (g *gate) await(ctx context.Context, d time.Duration) error {
	g.mu.Lock()
	running, done := g.running, g.done
	g.mu.Unlock()
	if !running {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return errLoginPending
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loginError is the message (and JSON-RPC error data) for a request that
// cannot go through until the user signs in.
func (g *gate) loginError() (string, map[string]any) {
	g.mu.Lock()
	running := g.running
	g.mu.Unlock()
	name := g.t.display()
	msg := fmt.Sprintf("mcpkey: sign in to %s: a browser window was opened; or run: mcpkey login %s", name, name)
	if !running {
		msg = fmt.Sprintf("mcpkey: sign in to %s: run: mcpkey login %s", name, name)
	}
	return msg, map[string]any{"reason": "login_required", "server": g.t.sc.Resource, "command": "mcpkey login " + name}
}
