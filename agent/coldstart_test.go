package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// gatedStore is a real store whose reads of session items wait until the
// test opens the gate for that session (or the read's context ends).
type gatedStore struct {
	store.Store
	mu    sync.Mutex
	open  map[string]chan struct{} // by session id
	reads map[string]int           // completed session reads, by id
}

func newGatedStore(inner store.Store) *gatedStore {
	return &gatedStore{Store: inner, open: make(map[string]chan struct{}), reads: make(map[string]int)}
}

func (g *gatedStore) gate(id string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[id] == nil {
		g.open[id] = make(chan struct{})
	}
	return g.open[id]
}

func (g *gatedStore) release(id string) { close(g.gate(id)) }

func (g *gatedStore) readsOf(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reads[id]
}

func (g *gatedStore) Get(ctx context.Context, key string) ([]byte, error) {
	rest, ok := strings.CutPrefix(key, "session/")
	if !ok {
		return g.Store.Get(ctx, key)
	}
	id, _, _ := strings.Cut(rest, "/")
	select {
	case <-g.gate(id):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	v, err := g.Store.Get(ctx, key)
	g.mu.Lock()
	g.reads[id]++
	g.mu.Unlock()
	return v, err
}

// TestColdStartAnswersBeforeReadingSessions (issue 12 §9): over a real
// file-backend store whose session reads are held back, the agent's socket
// answers status before a single session was read, and a token.get for one
// session waits for that session only (every other one is still held).
func TestColdStartAnswersBeforeReadingSessions(t *testing.T) {
	const n = 100 // held back, the count does not matter; the benchmark runs 1,000
	dir := t.TempDir()
	st := fileStore(t, dir)
	servers := make([]string, n)
	for i := range servers {
		servers[i] = fmt.Sprintf("https://s%03d.example.com/mcp", i)
		if err := store.PutSession(t.Context(), st, faultRecord(servers[i])); err != nil {
			t.Fatal(err)
		}
	}
	g := newGatedStore(fileStore(t, dir))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	started := make(chan *agent.Agent, 1)
	go func() {
		a, err := agent.New(ctx, agent.Config{Store: g})
		if err != nil {
			t.Error(err)
		}
		started <- a
	}()
	var a *agent.Agent
	select {
	case a = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("agent.New waits for the sessions to be read")
	}
	if a == nil {
		t.FailNow()
	}
	defer a.Close()
	sockDir, err := os.MkdirTemp("", "mk")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	ln, err := ipc.Listen(filepath.Join(sockDir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go server.NewServer(a, server.ServerOptions{}).Serve(ctx, ln)
	c := &ipc.Client{Path: filepath.Join(sockDir, "a.sock")}
	defer c.Close()

	status, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if status.Sessions != n || status.Loading != n {
		t.Errorf("status: %d sessions, %d loading; want %d and %d (none read yet)", status.Sessions, status.Loading, n, n)
	}

	target := servers[42]
	id := store.SessionID(target, "")
	g.release(id)
	tok, err := c.Token(ctx, agent.TokenRequest{Server: target})
	if err != nil || tok.AccessToken != "at-"+target {
		t.Fatalf("token.get for a session not read yet: %v", err)
	}
	for _, s := range servers {
		if s != target && g.readsOf(store.SessionID(s, "")) != 0 {
			t.Errorf("token.get for %s read %s too", target, s)
		}
	}
	if status, _ := c.Status(ctx); status.Loading != n-1 {
		t.Errorf("after one token.get, %d loading, want %d", status.Loading, n-1)
	}
}
