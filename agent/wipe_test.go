package agent

import (
	"strings"
	"testing"

	"github.com/mcpkey/mcpkey/agent/store"
)

func zeroed(s string) bool { return s == strings.Repeat("\x00", len(s)) }

// TestSessionWipesTokens: a session holds its own copies of its tokens,
// wipes superseded ones two adoptions later, and wipes all on wipeLocked.
func TestSessionWipesTokens(t *testing.T) {
	rec := func(at, rt string) store.SessionRecord {
		return store.SessionRecord{Server: "https://mcp.test/", AccessToken: at, RefreshToken: rt}
	}
	s := newSession(rec("access-1", "refresh-1"), nil)
	at1, rt1 := s.rec.AccessToken, s.rec.RefreshToken
	if at1 != "access-1" || rt1 != "refresh-1" {
		t.Fatalf("record = %q %q", at1, rt1)
	}
	s.mu.Lock()
	s.adoptLocked(rec("access-2", "refresh-2"))
	if zeroed(at1) || zeroed(rt1) {
		t.Error("tokens superseded by the latest refresh were wiped (a caller may still be handed them)")
	}
	at2 := s.rec.AccessToken
	s.adoptLocked(rec("access-3", "refresh-2")) // no rotation: the refresh token is kept
	if !zeroed(at1) || !zeroed(rt1) {
		t.Errorf("tokens two refreshes old were not wiped: %q %q", at1, rt1)
	}
	if zeroed(at2) || s.rec.RefreshToken != "refresh-2" {
		t.Errorf("the previous access token or the kept refresh token was wiped")
	}
	at3, rt2 := s.rec.AccessToken, s.rec.RefreshToken
	s.wipeLocked()
	s.mu.Unlock()
	for _, tok := range []string{at2, at3, rt2} {
		if !zeroed(tok) {
			t.Errorf("wipeLocked left %q", tok)
		}
	}
	if s.rec.AccessToken != "" || s.rec.RefreshToken != "" || s.hot.Load() != nil {
		t.Error("wipeLocked left tokens to serve")
	}
}
