package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

func TestLockWipesAndRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newPolicyAgent(t, agent.Config{Confirm: true})
		events := a.Subscribe(t.Context())
		ctx := callerCtx(t.Context(), exeA, 0)

		// A request waiting for approval is refused by the lock.
		r := asyncToken(a, ctx, srvA)
		nextApproval(t, events, agent.EventApprovalRequested)
		if err := a.Lock(t.Context(), "correct horse"); err != nil {
			t.Fatal(err)
		}
		if res := <-r; !errors.Is(res.err, agent.ErrLocked) {
			t.Fatalf("waiting request: %v, want ErrLocked", res.err)
		}
		waitKind(t, events, agent.EventLocked)

		if _, err := a.Token(ctx, agent.TokenRequest{Server: srvA}); !errors.Is(err, agent.ErrLocked) || !strings.Contains(err.Error(), "mcpkey unlock") {
			t.Fatalf("token while locked: %v", err)
		}
		if _, err := a.Token(t.Context(), agent.TokenRequest{Server: srvA}); !errors.Is(err, agent.ErrLocked) {
			t.Fatalf("in-process token while locked: %v", err)
		}
		if _, err := a.Login(ctx, agent.LoginRequest{Server: srvA}, nil); !errors.Is(err, agent.ErrLocked) {
			t.Fatalf("login while locked: %v", err)
		}
		if ss, _ := a.Sessions(t.Context()); len(ss) != 0 {
			t.Fatalf("sessions still in memory while locked: %d", len(ss))
		}
		if st, _ := a.Status(t.Context()); !st.Locked || st.Sessions != 0 {
			t.Fatalf("status = locked %v, sessions %d", st.Locked, st.Sessions)
		}
		if err := a.Lock(t.Context(), "x"); !errors.Is(err, agent.ErrLocked) {
			t.Fatalf("second lock: %v", err)
		}

		// Wrong passphrases back off: 1 s, 2 s, 4 s.
		for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			start := time.Now()
			if err := a.Unlock(t.Context(), "wrong"); !errors.Is(err, agent.ErrDenied) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if got := time.Since(start); got != want {
				t.Fatalf("wrong passphrase answered after %s, want %s", got, want)
			}
		}
		if !a.Locked() {
			t.Fatal("unlocked by a wrong passphrase")
		}
		start := time.Now()
		if err := a.Unlock(t.Context(), "correct horse"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("right passphrase delayed %s", d)
		}
		waitKind(t, events, agent.EventUnlocked)
		// Unlock re-read the keyring.
		if ss, _ := a.Sessions(t.Context()); len(ss) != 2 {
			t.Fatalf("sessions after unlock: %d, want 2", len(ss))
		}
		r = asyncToken(a, ctx, srvA)
		ap := nextApproval(t, events, agent.EventApprovalRequested)
		a.AnswerApproval(t.Context(), ap.ID, agent.DecisionAllowOnce, false)
		if res := <-r; res.err != nil || res.tok.AccessToken != accessA {
			t.Fatalf("token after unlock: %v", res.err)
		}
	})
}

func TestLockAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newPolicyAgent(t, agent.Config{Settings: &agent.Settings{LockAfterIdle: 30 * time.Minute}})
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		if a.Locked() {
			t.Fatal("locked before the idle time")
		}
		if _, err := a.Token(t.Context(), agent.TokenRequest{Server: srvA}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		if a.Locked() {
			t.Fatal("a request did not reset the idle timer")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if !a.Locked() {
			t.Fatal("not locked after 30 idle minutes")
		}
	})
}

func waitKind(t *testing.T, ev <-chan agent.Event, kind agent.EventKind) agent.Event {
	t.Helper()
	for e := range ev {
		if e.Kind == kind {
			return e
		}
	}
	t.Fatalf("event stream ended before %s", kind)
	return agent.Event{}
}

// TestUnlockBackoffCountsAbandonedGuesses: a guesser that gives up on each
// attempt after 7 ms gets no more passphrases checked than one that waits:
// 100 abandoned guesses within the first failure's 1 s are one check.
func TestUnlockBackoffCountsAbandonedGuesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedBuffer{}
		a := newPolicyAgent(t, agent.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err := a.Lock(t.Context(), "correct horse"); err != nil {
			t.Fatal(err)
		}
		for range 100 {
			ctx, cancel := context.WithTimeout(t.Context(), 7*time.Millisecond)
			if err := a.Unlock(ctx, "wrong"); err == nil {
				t.Fatal("a wrong passphrase unlocked")
			}
			cancel()
		}
		if n := strings.Count(logs.String(), "unlock refused"); n != 1 {
			t.Fatalf("100 abandoned guesses in 700 ms had %d passphrases checked, want 1", n)
		}
		// The right passphrase waits out the rest of the first failure's 1 s.
		start := time.Now()
		if err := a.Unlock(t.Context(), "correct horse"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("right passphrase after the guesses took %s, want the backoff's last 300 ms", d)
		}
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
