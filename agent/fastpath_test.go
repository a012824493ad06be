package agent_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

// TestCachedToken checks the fast path against the slow one: CachedToken
// answers only when Token would answer the same token at once, and leaves
// every refusal, wait and refresh to Token.
func TestCachedToken(t *testing.T) {
	type tc struct {
		name     string
		settings *agent.Settings
		confirm  bool
		// setup runs on the fresh agent before the request.
		setup func(t *testing.T, a *agent.Agent, clk *clock)
		ctx   func(ctx context.Context) context.Context
		req   agent.TokenRequest
		want  bool
		// wantErr is what Token then says when CachedToken declines
		// (nil: a token, after a wait if wait is set).
		wantErr error
		wait    bool
	}
	progA := func(ctx context.Context) context.Context { return callerCtx(ctx, exeA, 0) }
	cases := []tc{
		{name: "fresh", ctx: progA, req: agent.TokenRequest{Server: srvA}, want: true},
		{name: "in-process", ctx: func(ctx context.Context) context.Context { return ctx }, req: agent.TokenRequest{Server: srvA}, want: true},
		{name: "scopes held", ctx: progA, req: agent.TokenRequest{Server: srvA, Scopes: []string{"mcp:tools"}}, want: true},
		{name: "scope missing", ctx: progA, req: agent.TokenRequest{Server: srvA, Scopes: []string{"admin"}}, wantErr: agent.ErrNeedsLogin},
		{name: "min_ttl met", ctx: progA, req: agent.TokenRequest{Server: srvA, MinTTL: time.Hour}, want: true},
		// Token refreshes in these two (which fails here, as there is no
		// authorization server): only the fast path's answer is checked.
		{name: "min_ttl beyond expiry", ctx: progA, req: agent.TokenRequest{Server: srvA, MinTTL: 48 * time.Hour}},
		{name: "stale", ctx: progA, req: agent.TokenRequest{Server: srvA},
			setup: func(t *testing.T, a *agent.Agent, clk *clock) { clk.Advance(24*time.Hour - 30*time.Second) }},
		{name: "rejected token", ctx: progA, req: agent.TokenRequest{Server: srvA, RejectedToken: accessA}, wantErr: errAny},
		{name: "no session", ctx: progA, req: agent.TokenRequest{Server: "https://none.example.com/mcp"}, wantErr: agent.ErrNeedsLogin},
		{name: "unknown server", ctx: progA, req: agent.TokenRequest{Server: "nonsense"}, wantErr: agent.ErrNotFound},
		{name: "locked", ctx: progA, req: agent.TokenRequest{Server: srvA}, wantErr: agent.ErrLocked,
			setup: func(t *testing.T, a *agent.Agent, clk *clock) {
				if err := a.Lock(t.Context(), ""); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "deny rule", settings: &agent.Settings{Deny: []string{"/opt/test/*"}}, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, wantErr: agent.ErrDenied},
		{name: "server deny rule", settings: &agent.Settings{Servers: map[string]agent.ServerSettings{
			"a": {Name: "a", URL: srvA, Deny: []string{exeA}}}}, ctx: progA,
			req: agent.TokenRequest{Server: "a"}, wantErr: agent.ErrDenied},
		{name: "server deny rule, other program", settings: &agent.Settings{Servers: map[string]agent.ServerSettings{
			"a": {Name: "a", URL: srvA, Deny: []string{exeB}}}}, ctx: progA,
			req: agent.TokenRequest{Server: "a"}, want: true},
		{name: "confirm needs approval", settings: &agent.Settings{Confirm: true}, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, wait: true},
		{name: "confirm from the command line", confirm: true, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, wait: true},
		{name: "server confirm", settings: &agent.Settings{Servers: map[string]agent.ServerSettings{
			"a": {Name: "a", URL: srvA, Confirm: ptr(true)}}}, ctx: progA,
			req: agent.TokenRequest{Server: "a"}, wait: true},
		{name: "confirm, allow rule", settings: &agent.Settings{Confirm: true, Allow: []string{"/opt/test/prog-*"}}, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, want: true},
		{name: "confirm, unknown program", settings: &agent.Settings{Confirm: true, Allow: []string{"*"}},
			ctx: func(ctx context.Context) context.Context { return callerCtx(ctx, "", 4242) },
			req: agent.TokenRequest{Server: srvA}, wait: true},
		{name: "confirm, remembered allow", settings: &agent.Settings{Confirm: true, Remember: time.Hour}, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, want: true,
			setup: func(t *testing.T, a *agent.Agent, clk *clock) {
				approveOnce(t, a, callerCtx(t.Context(), exeA, 0), true)
			}},
		{name: "confirm, remembered allow expired", settings: &agent.Settings{Confirm: true, Remember: time.Hour}, ctx: progA,
			req: agent.TokenRequest{Server: srvA}, wait: true,
			setup: func(t *testing.T, a *agent.Agent, clk *clock) {
				approveOnce(t, a, callerCtx(t.Context(), exeA, 0), true)
				clk.Advance(2 * time.Hour)
			}},
		{name: "restricted socket, listed", ctx: func(ctx context.Context) context.Context {
			return agent.WithRestriction(progA(ctx), "/tmp/r.sock", []string{srvA})
		}, req: agent.TokenRequest{Server: srvA}, want: true},
		{name: "restricted socket, not listed", ctx: func(ctx context.Context) context.Context {
			return agent.WithRestriction(progA(ctx), "/tmp/r.sock", []string{srvB})
		}, req: agent.TokenRequest{Server: srvA}, wantErr: agent.ErrDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			a := newPolicyAgent(t, agent.Config{Now: clk.Now, Settings: c.settings, Confirm: c.confirm})
			if c.setup != nil {
				c.setup(t, a, clk)
			}
			ctx := c.ctx(t.Context())
			tok, ok := a.CachedToken(ctx, c.req)
			if ok != c.want {
				t.Fatalf("CachedToken ok = %v, want %v", ok, c.want)
			}
			if !ok {
				if tok.AccessToken != "" || tok.Server != "" {
					t.Errorf("CachedToken declined but returned %v", tok)
				}
				if c.wait {
					// Token waits for the user: it must not answer before
					// its context ends.
					wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
					defer cancel()
					if _, err := a.Token(wctx, c.req); !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Token = %v, want it to wait for an approval", err)
					}
					return
				}
				if c.wantErr != nil {
					_, err := a.Token(ctx, c.req)
					if err == nil || (c.wantErr != errAny && !errors.Is(err, c.wantErr)) {
						t.Errorf("Token err = %v, want %v", err, c.wantErr)
					}
				}
				return
			}
			// What the fast path served is what the slow path serves.
			slow, err := a.Token(ctx, c.req)
			if err != nil {
				t.Fatalf("Token refused what CachedToken served: %v", err)
			}
			if slow.AccessToken != tok.AccessToken || !slow.ExpiresAt.Equal(tok.ExpiresAt) || !slices.Equal(slow.Scopes, tok.Scopes) ||
				slow.Server != tok.Server || slow.Account != tok.Account || slow.TokenType != tok.TokenType {
				t.Errorf("CachedToken = %v, Token = %v", tok, slow)
			}
		})
	}
}

// errAny stands for any error in TestCachedToken.
var errAny = errors.New("any error")

func ptr[T any](v T) *T { return &v }

// approveOnce makes ctx's caller ask for srvA and answers allow, remembered
// when remember is set.
func approveOnce(t *testing.T, a *agent.Agent, ctx context.Context, remember bool) {
	t.Helper()
	events := a.Subscribe(t.Context())
	res := asyncToken(a, ctx, srvA)
	ap := nextApproval(t, events, agent.EventApprovalRequested)
	if err := a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllow, remember); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
}

// TestCachedTokenAudit: a token the fast path serves is audited as Token
// audits it; a declined request leaves no record (Token writes it).
func TestCachedTokenAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := agent.New(t.Context(), agent.Config{Store: seeded(t), Audit: agent.AuditOptions{Path: path},
		Settings:           &agent.Settings{Deny: []string{exeB}},
		DBusSessionAddress: "off", DBusSystemAddress: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.CachedToken(callerCtx(t.Context(), exeA, 7), agent.TokenRequest{Server: srvA}); !ok {
		t.Fatal("CachedToken declined a fresh token")
	}
	if _, ok := a.CachedToken(callerCtx(t.Context(), exeB, 8), agent.TokenRequest{Server: srvA}); ok {
		t.Fatal("CachedToken served a denied program")
	}
	a.Close()
	recs := readAudit(t, path)
	if len(recs) != 1 {
		t.Fatalf("audit = %+v, want one record", recs)
	}
	r := recs[0]
	if r.Event != agent.AuditTokenIssued || r.Server != srvA || r.Caller == nil || r.Caller.Exe != exeA || r.Caller.PID != 7 || r.ExpiresAt.IsZero() {
		t.Errorf("audit record = %+v", r)
	}
}
