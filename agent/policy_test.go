package agent_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
)

const (
	srvA      = "https://mcp.example.com/mcp"
	srvB      = "https://other.example.com/mcp"
	accessA   = "at-secret-AAAA-0123456789"
	refreshA  = "rt-secret-AAAA-0123456789"
	accessB   = "at-secret-BBBB-0123456789"
	refreshB  = "rt-secret-BBBB-0123456789"
	exeA      = "/opt/test/prog-a"
	exeB      = "/opt/test/prog-b"
	allowedEx = "/opt/test/allowed-tool"
)

// seeded returns a memory store holding sessions for srvA and srvB, valid
// for a day from now (the bubble's clock inside synctest).
func seeded(t *testing.T) store.Store {
	t.Helper()
	st := store.NewMemory()
	now := time.Now()
	for _, r := range []store.SessionRecord{
		{Server: srvA, Issuer: "https://as.example.com", ClientID: "c", TokenType: "Bearer", AccessToken: accessA,
			RefreshToken: refreshA, ExpiresAt: now.Add(24 * time.Hour), ObtainedAt: now, Scopes: []string{"mcp:tools"},
			Resource: srvA, TokenEndpoint: "https://as.example.com/token"},
		{Server: srvB, Issuer: "https://as.example.com", ClientID: "c", TokenType: "Bearer", AccessToken: accessB,
			RefreshToken: refreshB, ExpiresAt: now.Add(24 * time.Hour), ObtainedAt: now, Scopes: []string{"mcp:tools"},
			Resource: srvB, TokenEndpoint: "https://as.example.com/token"},
	} {
		if err := store.PutSession(t.Context(), st, r); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func newPolicyAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = seeded(t)
	}
	cfg.DBusSessionAddress, cfg.DBusSystemAddress = cmpOr(cfg.DBusSessionAddress, "off"), cmpOr(cfg.DBusSystemAddress, "off")
	a, err := agent.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func callerCtx(ctx context.Context, exe string, pid int) context.Context {
	return agent.WithCaller(ctx, agent.Caller{Transport: "unix", UID: os.Getuid(), PID: pid, Exe: exe})
}

type result struct {
	tok agent.Token
	err error
}

func asyncToken(a *agent.Agent, ctx context.Context, server string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		tok, err := a.Token(ctx, agent.TokenRequest{Server: server, Scopes: []string{"mcp:tools"}})
		ch <- result{tok, err}
	}()
	return ch
}

func nextApproval(t *testing.T, ev <-chan agent.Event, kind agent.EventKind) *agent.Approval {
	t.Helper()
	for e := range ev {
		if e.Kind == kind {
			if e.Approval == nil {
				t.Fatalf("%s event without approval", kind)
			}
			return e.Approval
		}
	}
	t.Fatalf("event stream ended before %s", kind)
	return nil
}

func TestApprovalFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &clock{t: time.Now()}
		a := newPolicyAgent(t, agent.Config{Now: clk.Now, Settings: &agent.Settings{Confirm: true,
			Allow: []string{"/opt/test/allowed-*"}, ApprovalTimeout: time.Minute, Remember: 8 * time.Hour}})
		events := a.Subscribe(t.Context())
		ctxA := callerCtx(t.Context(), exeA, os.Getpid())
		ctxB := callerCtx(t.Context(), exeB, 0)

		// Two requests from one program wait on one approval that names it.
		r1, r2 := asyncToken(a, ctxA, srvA), asyncToken(a, ctxA, srvA)
		ap := nextApproval(t, events, agent.EventApprovalRequested)
		if ap.Caller.Exe != exeA || ap.Caller.PID != os.Getpid() || ap.Server != srvA || len(ap.Scopes) != 1 || ap.Scopes[0] != "mcp:tools" {
			t.Fatalf("approval = %+v", ap)
		}
		if len(ap.Caller.Cmdline) == 0 || ap.Caller.Cmdline[0] != os.Args[0] || len(ap.Caller.Parents) == 0 || ap.Caller.Parents[0].PID != os.Getppid() {
			t.Fatalf("approval does not describe the caller's command line and parents: %+v", ap.Caller)
		}
		synctest.Wait()
		list, _ := a.Approvals(t.Context())
		if len(list) != 1 || list[0].ID != ap.ID || list[0].Waiting != 2 {
			t.Fatalf("approvals = %+v, want one with two waiting", list)
		}
		// The asking program itself cannot answer.
		if err := a.AnswerApproval(ctxA, ap.ID, agent.DecisionAllow, false); !errors.Is(err, agent.ErrDenied) {
			t.Fatalf("self-answer: %v, want ErrDenied", err)
		}
		if err := a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllowOnce, false); err != nil {
			t.Fatal(err)
		}
		for _, r := range []<-chan result{r1, r2} {
			if res := <-r; res.err != nil || res.tok.AccessToken != accessA {
				t.Fatalf("after allow_once: %v", res.err)
			}
		}
		if ans := nextApproval(t, events, agent.EventApprovalAnswered); ans.ID != ap.ID || ans.Decision != agent.DecisionAllowOnce {
			t.Fatalf("answered event = %+v", ans)
		}

		// allow_once is not remembered; allow is.
		r := asyncToken(a, ctxA, srvA)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		if err := a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllow, false); err != nil {
			t.Fatal(err)
		}
		if res := <-r; res.err != nil {
			t.Fatal(res.err)
		}
		if _, err := a.Token(ctxA, agent.TokenRequest{Server: srvA}); err != nil {
			t.Fatalf("remembered allow: %v", err)
		}
		// Remembered per (program, server): the other server asks again.
		r = asyncToken(a, ctxA, srvB)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		if ap.Server != srvB {
			t.Fatalf("approval for %s, want %s", ap.Server, srvB)
		}
		a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllowOnce, false)
		<-r

		// Another program: denied.
		r = asyncToken(a, ctxB, srvA)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		if ap.Caller.Exe != exeB {
			t.Fatalf("approval names %q, want %q", ap.Caller.Exe, exeB)
		}
		if err := a.AnswerApproval(t.Context(), ap.ID, agent.DecisionDeny, false); err != nil {
			t.Fatal(err)
		}
		if res := <-r; !errors.Is(res.err, agent.ErrDenied) {
			t.Fatalf("after deny: %v", res.err)
		}
		// Unanswered: denied after the timeout, saying how to approve.
		start := time.Now()
		r = asyncToken(a, ctxB, srvA)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		res := <-r
		if !errors.Is(res.err, agent.ErrDenied) || !strings.Contains(res.err.Error(), "mcpkey approve") {
			t.Fatalf("timeout: %v", res.err)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Fatalf("waited %s, want the 1m approval timeout", waited)
		}
		if ans := nextApproval(t, events, agent.EventApprovalAnswered); ans.ID != ap.ID || ans.Decision != agent.DecisionTimeout {
			t.Fatalf("answered event = %+v", ans)
		}
		if err := a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllow, false); !errors.Is(err, agent.ErrNotFound) {
			t.Fatalf("late answer: %v, want ErrNotFound", err)
		}

		// An allow rule admits without asking.
		if _, err := a.Token(callerCtx(t.Context(), allowedEx, 0), agent.TokenRequest{Server: srvA}); err != nil {
			t.Fatalf("allow rule: %v", err)
		}

		// The remembered allow expires (injected clock).
		clk.Advance(8*time.Hour + time.Minute)
		r = asyncToken(a, ctxA, srvA)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		a.AnswerApproval(t.Context(), ap.ID, agent.DecisionDeny, true)
		if res := <-r; !errors.Is(res.err, agent.ErrDenied) {
			t.Fatalf("after deny: %v", res.err)
		}
		// A remembered denial answers at once.
		if _, err := a.Token(ctxA, agent.TokenRequest{Server: srvA}); !errors.Is(err, agent.ErrDenied) || !strings.Contains(err.Error(), "remembered") {
			t.Fatalf("remembered deny: %v", err)
		}
		// Lock forgets remembered decisions.
		if err := a.Lock(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		if err := a.Unlock(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		r = asyncToken(a, ctxA, srvA)
		ap = nextApproval(t, events, agent.EventApprovalRequested)
		a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllowOnce, false)
		if res := <-r; res.err != nil {
			t.Fatalf("after lock and unlock: %v", res.err)
		}
	})
}

func TestApprovalCancelledWhenEveryCallerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newPolicyAgent(t, agent.Config{Confirm: true})
		events := a.Subscribe(t.Context())
		ctx, cancel := context.WithCancel(callerCtx(t.Context(), exeA, 0))
		r := asyncToken(a, ctx, srvA)
		ap := nextApproval(t, events, agent.EventApprovalRequested)
		cancel()
		if res := <-r; !errors.Is(res.err, context.Canceled) {
			t.Fatalf("err = %v", res.err)
		}
		if ans := nextApproval(t, events, agent.EventApprovalAnswered); ans.ID != ap.ID || ans.Decision != agent.DecisionCancelled {
			t.Fatalf("answered = %+v", ans)
		}
		if list, _ := a.Approvals(t.Context()); len(list) != 0 {
			t.Fatalf("approvals left: %+v", list)
		}
	})
}

func TestDenyRuleAndConfirmOff(t *testing.T) {
	a := newPolicyAgent(t, agent.Config{Settings: &agent.Settings{Deny: []string{"/opt/evil/*"}}})
	if _, err := a.Token(callerCtx(t.Context(), "/opt/evil/tool", 0), agent.TokenRequest{Server: srvA}); !errors.Is(err, agent.ErrDenied) {
		t.Fatalf("deny rule: %v", err)
	}
	if _, err := a.Logout(callerCtx(t.Context(), "/opt/evil/tool", 0), agent.LogoutRequest{Server: srvA, KeepRemote: true}); !errors.Is(err, agent.ErrDenied) {
		t.Fatalf("deny rule on logout: %v", err)
	}
	// confirm is off by default, as in ssh-agent.
	if tok, err := a.Token(callerCtx(t.Context(), exeA, 0), agent.TokenRequest{Server: srvA}); err != nil || tok.AccessToken != accessA {
		t.Fatalf("default policy: %v", err)
	}
}

func TestRestriction(t *testing.T) {
	a := newPolicyAgent(t, agent.Config{})
	ctx := agent.WithRestriction(callerCtx(t.Context(), "/usr/bin/ssh", 0), "/tmp/r.sock", []string{srvA})
	if tok, err := a.Token(ctx, agent.TokenRequest{Server: srvA}); err != nil || tok.AccessToken != accessA {
		t.Fatalf("listed server: %v", err)
	}
	if _, err := a.Token(ctx, agent.TokenRequest{Server: srvB}); !errors.Is(err, agent.ErrDenied) {
		t.Fatalf("other server: %v, want ErrDenied", err)
	}
	for name, call := range map[string]func() error{
		"login":     func() error { _, err := a.Login(ctx, agent.LoginRequest{Server: srvB}, nil); return err },
		"logout":    func() error { _, err := a.Logout(ctx, agent.LogoutRequest{Server: srvB}); return err },
		"approvals": func() error { _, err := a.Approvals(ctx); return err },
		"answer":    func() error { return a.AnswerApproval(ctx, 1, agent.DecisionAllow, false) },
		"lock":      func() error { return a.Lock(ctx, "") },
		"unlock":    func() error { return a.Unlock(ctx, "") },
	} {
		if err := call(); !errors.Is(err, agent.ErrDenied) {
			t.Errorf("%s on a restricted context: %v, want ErrDenied", name, err)
		}
	}
}
