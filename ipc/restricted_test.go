package ipc_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

var _ server.PolicyBackend = (*agent.Agent)(nil)

const (
	rsA = "https://mcp.example.com/mcp"
	rsB = "https://other.example.com/mcp"
)

// policyAgent is a real agent over a memory store holding sessions for rsA
// and rsB.
func policyAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	st := store.NewMemory()
	for i, srv := range []string{rsA, rsB} {
		err := store.PutSession(t.Context(), st, store.SessionRecord{Server: srv, Issuer: "https://as.example.com", ClientID: "c",
			TokenType: "Bearer", AccessToken: "at-restricted-" + string(rune('A'+i)), RefreshToken: "rt-restricted",
			ExpiresAt: time.Now().Add(24 * time.Hour), ObtainedAt: time.Now(), Scopes: []string{"mcp:tools"}, Resource: srv})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg.Store = st
	cfg.DBusSessionAddress, cfg.DBusSystemAddress = "off", "off"
	a, err := agent.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// serveWithRestricted serves b on a fresh socket with restricted sockets
// enabled in the same directory; it returns the server and the main path.
func serveWithRestricted(t *testing.T, b server.Backend) (*server.Server, string) {
	t.Helper()
	dir := filepath.Join(shortDir(t), "s")
	path := filepath.Join(dir, "agent.sock")
	ln, err := ipc.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewServer(b, server.ServerOptions{Logger: discardLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	srv.EnableRestricted(ctx, dir)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, path
}

func TestRestrictedSocket(t *testing.T) {
	a := policyAgent(t, agent.Config{})
	srv, path := serveWithRestricted(t, a)
	main := &ipc.Client{Path: path}
	defer main.Close()
	rs, err := main.AddSocket(t.Context(), []string{rsA}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(rs.Path) != filepath.Dir(path) || !slices.Equal(rs.Servers, []string{rsA}) || !rs.ExpiresAt.IsZero() {
		t.Fatalf("socket = %+v", rs)
	}
	fi, err := os.Stat(rs.Path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("restricted socket file: %v %v", fi, err)
	}
	if list := srv.RestrictedSockets(); len(list) != 1 || list[0].Path != rs.Path {
		t.Fatalf("list = %+v", list)
	}

	rc := &ipc.Client{Path: rs.Path}
	defer rc.Close()
	tok, err := rc.Token(t.Context(), agent.TokenRequest{Server: rsA})
	if err != nil || tok.AccessToken != "at-restricted-A" {
		t.Fatalf("token for the listed server: %v", err)
	}
	if _, err := rc.Token(t.Context(), agent.TokenRequest{Server: rsB}); !errors.Is(err, agent.ErrDenied) {
		t.Fatalf("token for another server: %v, want denied", err)
	}
	hello, err := rc.Hello(t.Context())
	if err != nil || !slices.Equal(hello.Capabilities, []string{ipc.MethodHello, ipc.MethodTokenGet, ipc.FeatureDPoP}) {
		t.Fatalf("hello = %+v, %v", hello, err)
	}

	// Every other method, known or not, is denied.
	hm, _ := main.Hello(t.Context())
	others := append(slices.Clone(hm.Capabilities), "no.such.method", "admin.shutdown")
	raw := dialRaw(t, rs.Path)
	refused := 0
	for i, m := range others {
		if m == ipc.MethodHello || m == ipc.MethodTokenGet || m == ipc.MethodCancel {
			continue
		}
		raw.send(`{"jsonrpc":"2.0","id":` + itoa(i) + `,"method":"` + m + `","params":{"server":"` + rsA + `","id":1,"path":"/tmp/x","servers":["` + rsB + `"]}}`)
		resp := raw.recv()
		if code, s := errCode(t, resp); code != ipc.CodeDenied || s != ipc.ErrCodeDenied {
			t.Errorf("%s on a restricted socket: %v", m, resp)
		}
		refused++
	}
	if refused < 15 {
		t.Fatalf("only %d methods tried", refused)
	}
	// Nothing leaked through: still unlocked, still one socket.
	if st, _ := main.Status(t.Context()); st.Locked {
		t.Fatal("a restricted client locked the agent")
	}
	if len(srv.RestrictedSockets()) != 1 {
		t.Fatal("a restricted client changed the socket list")
	}

	if err := main.RemoveSocket(t.Context(), rs.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rs.Path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after remove: %v", err)
	}
	if err := main.RemoveSocket(t.Context(), rs.Path); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestRestrictedSocketTTLAndConfig(t *testing.T) {
	a := policyAgent(t, agent.Config{})
	srv, path := serveWithRestricted(t, a)
	main := &ipc.Client{Path: path}
	defer main.Close()
	rs, err := main.AddSocket(t.Context(), []string{rsA}, filepath.Join(filepath.Dir(path), "ttl.sock"), 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rs.ExpiresAt.IsZero() {
		t.Fatal("no expiry")
	}
	waitFor(t, 5*time.Second, "the socket to expire", func() bool {
		_, err := os.Stat(rs.Path)
		return os.IsNotExist(err) && len(srv.RestrictedSockets()) == 0
	})
	if _, err := main.AddSocket(t.Context(), []string{rsA}, "relative.sock", 0); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Fatalf("relative path: %v", err)
	}

	// Config sockets: added, kept, replaced, removed; CLI ones untouched.
	dir := filepath.Dir(path)
	cli, err := srv.AddRestricted(filepath.Join(dir, "cli.sock"), []string{rsB}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []config.RestrictedSocketSettings{{Path: filepath.Join(dir, "c1.sock"), Servers: []string{rsA}}}
	if err := srv.SyncRestricted(cfg); err != nil {
		t.Fatal(err)
	}
	paths := func() []string {
		var out []string
		for _, s := range srv.RestrictedSockets() {
			out = append(out, filepath.Base(s.Path))
		}
		return out
	}
	if got := paths(); !slices.Equal(got, []string{"c1.sock", "cli.sock"}) {
		t.Fatalf("after sync: %v", got)
	}
	if err := srv.SyncRestricted(nil); err != nil {
		t.Fatal(err)
	}
	if got := paths(); !slices.Equal(got, []string{"cli.sock"}) {
		t.Fatalf("after removing the config socket: %v", got)
	}
	if cli.FromConfig {
		t.Fatal("a socket.add socket marked as from the config")
	}
}

func TestLockAndApprovalsOverTheProtocol(t *testing.T) {
	a := policyAgent(t, agent.Config{})
	_, path := serveWithRestricted(t, a)
	c := &ipc.Client{Path: path}
	defer c.Close()
	if err := c.Lock(t.Context(), "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(t.Context(), agent.TokenRequest{Server: rsA}); !errors.Is(err, agent.ErrLocked) {
		t.Fatalf("token while locked: %v, want locked", err)
	}
	var we *ipc.Error
	if _, err := c.Token(t.Context(), agent.TokenRequest{Server: rsA}); !errors.As(err, &we) || we.Data.Code != ipc.ErrCodeLocked {
		t.Fatalf("wire code: %v", err)
	}
	if st, _ := c.Status(t.Context()); !st.Locked {
		t.Fatal("status not locked")
	}
	// A locked agent opens no new way in: the agent's policy refuses
	// socket.add, which the server serves itself.
	if _, err := c.AddSocket(t.Context(), []string{rsA}, "", 0); !errors.Is(err, agent.ErrLocked) {
		t.Fatalf("socket.add while locked: %v, want locked", err)
	}
	if err := c.Unlock(t.Context(), "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(t.Context(), agent.TokenRequest{Server: rsA}); err != nil {
		t.Fatal(err)
	}
	list, err := c.Approvals(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("approvals = %v, %v", list, err)
	}
	if err := c.AnswerApproval(t.Context(), 7, agent.DecisionAllow, false); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("answer unknown approval: %v", err)
	}
	if err := c.AnswerApproval(t.Context(), 7, "maybe", false); !errors.Is(err, agent.ErrInvalidRequest) {
		t.Fatalf("bad decision: %v", err)
	}
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	s := &testServer{path: path}
	return s.raw(t)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
