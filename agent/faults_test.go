package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
)

// fileStore opens a real file-backend store in dir.
func fileStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := store.Open(store.KeyringConfig{Backend: store.BackendFile, FileDir: dir, Timeout: 10 * time.Second,
		Passphrase: func(string) (string, error) { return "test passphrase", nil }})
	if err != nil {
		t.Fatalf("open file store: %v", err)
	}
	return st
}

func faultRecord(server string) store.SessionRecord {
	now := time.Now()
	return store.SessionRecord{Server: server, Issuer: "https://as.example.com", ClientID: "c", TokenType: "Bearer",
		AccessToken: "at-" + server, RefreshToken: "rt-" + server, ExpiresAt: now.Add(24 * time.Hour), ObtainedAt: now,
		Scopes: []string{"mcp:tools"}, Resource: server, TokenEndpoint: "https://as.example.com/token"}
}

// itemFile is the file backend's file for key.
func itemFile(t testing.TB, dir, key string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(key, "/", "%2F")
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), want) {
			return filepath.Join(dir, e.Name())
		}
	}
	t.Fatalf("no file for %s in %s", key, dir)
	return ""
}

// checkBrokenSession starts an agent over st, where good is a sound
// session and the items of bad were damaged, and checks that the agent
// starts, lists bad as broken naming item, serves good, answers a token
// request for bad with a sentence naming item, and that logout (by server,
// or by id when the metadata is unreadable) removes every item of bad.
func checkBrokenSession(t *testing.T, st store.Store, good, bad, item string, metaBroken bool) {
	t.Helper()
	ctx := t.Context()
	a, err := agent.New(ctx, agent.Config{Store: st})
	if err != nil {
		t.Fatalf("agent did not start with one corrupt item: %v", err)
	}
	defer a.Close()
	id := store.SessionID(bad, "")
	ss, err := a.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ss, func(s agent.SessionInfo) bool { return s.State == agent.StateBroken })
	if len(ss) != 2 || i < 0 {
		t.Fatalf("sessions = %+v, want the good one and a broken one", ss)
	}
	if b := ss[i]; b.ID != id || !strings.Contains(b.Error, item) || (!metaBroken && b.Server != bad) {
		t.Errorf("broken session = %+v, want id %s, server %q and an error naming %s", b, id, bad, item)
	}
	if tok, err := a.Token(ctx, agent.TokenRequest{Server: good}); err != nil || tok.AccessToken != "at-"+good {
		t.Errorf("the good session: %v", err)
	}
	if !metaBroken {
		_, err := a.Token(ctx, agent.TokenRequest{Server: bad})
		if !errors.Is(err, agent.ErrNeedsLogin) || !strings.Contains(err.Error(), item) {
			t.Errorf("token for the broken session: %v, want needs-login naming %s", err, item)
		}
	}
	name := bad
	if metaBroken {
		name = id
	}
	if _, err := a.Logout(ctx, agent.LogoutRequest{Server: name}); err != nil {
		t.Fatalf("logout %s: %v", name, err)
	}
	if ss, _ := a.Sessions(ctx); len(ss) != 1 || ss[0].Server != good {
		t.Errorf("after logout: %+v, want only %s", ss, good)
	}
	if keys, err := st.Keys(ctx, "session/"+id+"/"); err != nil || len(keys) != 0 {
		t.Errorf("items left after logout: %q, %v", keys, err)
	}
}

// TestCorruptItemFileBackend (issue 12 §7): garbage, zero bytes or a
// directory in place of one session's item (its access token, or its
// metadata) no longer stops the agent.
func TestCorruptItemFileBackend(t *testing.T) {
	const good, bad = "https://good.example.com/mcp", "https://bad.example.com/mcp"
	damage := map[string]func(t *testing.T, path string){
		"garbage":    func(t *testing.T, p string) { os.WriteFile(p, []byte("\x00\x01not a JWE at all"), 0o600) },
		"zero bytes": func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) },
		"directory": func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range damage {
		for _, item := range []string{"access", "meta"} {
			t.Run(name+"/"+item, func(t *testing.T) {
				dir := t.TempDir()
				st := fileStore(t, dir)
				for _, s := range []string{good, bad} {
					if err := store.PutSession(t.Context(), st, faultRecord(s)); err != nil {
						t.Fatal(err)
					}
				}
				key := "session/" + store.SessionID(bad, "") + "/" + item
				fn(t, itemFile(t, dir, key))
				checkBrokenSession(t, fileStore(t, dir), good, bad, key, item == "meta")
			})
		}
	}
}

// TestCorruptItemSecretService: the same in a real Secret Service
// (gnome-keyring), where an item can hold garbage or nothing (a directory
// has no equivalent). Skipped without a session bus, as TestSecretService.
func TestCorruptItemSecretService(t *testing.T) {
	const good, bad = "https://good.example.com/mcp", "https://bad.example.com/mcp"
	cfg := store.KeyringConfig{Backend: store.BackendSecretService, Collection: "session", Timeout: 5 * time.Second}
	for _, tc := range []struct{ name, item, value string }{
		{"garbage meta", "meta", "\x00\x01{not json"},
		{"zero-byte meta", "meta", ""},
		{"zero-byte access", "access", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(cfg)
			if err != nil {
				if os.Getenv("MCPKEY_TEST_REQUIRE_SECRET_SERVICE") == "1" {
					t.Fatal(err)
				}
				t.Skipf("no Secret Service: %v", err)
			}
			clearSessions := func() {
				ids, _ := store.SessionIDs(context.Background(), st)
				for _, id := range ids {
					store.DeleteSessionByID(context.Background(), st, id)
				}
			}
			clearSessions()
			t.Cleanup(clearSessions)
			for _, s := range []string{good, bad} {
				if err := store.PutSession(t.Context(), st, faultRecord(s)); err != nil {
					t.Fatal(err)
				}
			}
			key := "session/" + store.SessionID(bad, "") + "/" + tc.item
			if err := st.Put(t.Context(), key, []byte(tc.value)); err != nil {
				t.Fatal(err)
			}
			checkBrokenSession(t, st, good, bad, key, tc.item == "meta")
		})
	}
}
