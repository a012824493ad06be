// Package storetest is the behaviour suite every store.Store must pass:
// memory, Chunked, and each keyring backend that can run on the machine.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// Run runs the suite. newStore must return a store whose namespace is empty
// (a backend shared between calls must be cleared by newStore, and may hold
// other applications' items: the suite checks that Keys never lists them).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"Overwrite", testOverwrite},
		{"Keys", testKeys},
		{"InvalidKey", testInvalidKey},
		{"BinaryValues", testBinaryValues},
		{"Sizes", testSizes},
		{"Concurrent", testConcurrent},
		{"CanceledContext", testCanceledContext},
		{"Sessions", testSessions},
		{"SessionClient", testSessionClient},
		{"ListingReadsNoTokens", testListingReadsNoTokens},
		{"Clients", testClients},
		{"Secrets", testSecrets},
		{"Schema", testSchema},
		{"Corrupt", testCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustPut(t *testing.T, s store.Store, key string, v []byte) {
	t.Helper()
	if err := s.Put(ctx(t), key, v); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(v), err)
	}
}

func mustGet(t *testing.T, s store.Store, key string, want []byte) {
	t.Helper()
	got, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %s, want %d bytes %s", key, len(got), brief(got), len(want), brief(want))
	}
}

func brief(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%x…", b[:16])
	}
	return fmt.Sprintf("%x", b)
}

func mustKeys(t *testing.T, s store.Store, prefix string, want ...string) {
	t.Helper()
	got, err := s.Keys(ctx(t), prefix)
	if err != nil {
		t.Fatalf("Keys(%q): %v", prefix, err)
	}
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys(%q) = %q, want %q", prefix, got, want)
	}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func testGetPutDelete(t *testing.T, s store.Store) {
	if s.Backend() == "" {
		t.Error("Backend() is empty")
	}
	if _, err := s.Get(ctx(t), "k/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
	mustPut(t, s, "k/one", []byte("value one"))
	mustGet(t, s, "k/one", []byte("value one"))
	if err := s.Delete(ctx(t), "k/one"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx(t), "k/one"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), "k/one"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete error = %v, want ErrNotFound", err)
	}
	mustKeys(t, s, "")
}

func testOverwrite(t *testing.T, s store.Store) {
	small, large, larger := []byte("first"), random(t, 5000), random(t, 9000)
	for i, v := range [][]byte{small, large, larger, small, []byte("second")} {
		mustPut(t, s, "over", v)
		mustGet(t, s, "over", v)
		mustKeys(t, s, "", "over")
		_ = i
	}
	if err := s.Delete(ctx(t), "over"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustKeys(t, s, "")
}

func testKeys(t *testing.T, s store.Store) {
	mustKeys(t, s, "")
	for _, k := range []string{"a/1", "a/2", "b/1", "ab"} {
		mustPut(t, s, k, []byte(k))
	}
	mustPut(t, s, "a/big", random(t, 6000))
	mustKeys(t, s, "a/", "a/1", "a/2", "a/big")
	mustKeys(t, s, "a", "a/1", "a/2", "a/big", "ab")
	mustKeys(t, s, "", "a/1", "a/2", "a/big", "ab", "b/1")
	mustKeys(t, s, "zzz/")
}

func testInvalidKey(t *testing.T, s store.Store) {
	if err := s.Put(ctx(t), "", []byte("x")); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Put(\"\") error = %v, want ErrInvalidKey", err)
	}
	if _, err := s.Get(ctx(t), "has space"); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Get(\"has space\") error = %v, want ErrInvalidKey", err)
	}
	mustKeys(t, s, "")
}

func testBinaryValues(t *testing.T, s store.Store) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := map[string][]byte{
		"bin/nul":       {0},
		"bin/nuls":      {'a', 0, 'b', 0, 0, 'c'},
		"bin/all":       all,
		"bin/utf8":      []byte("ключ 🔑"),
		"bin/magic":     []byte("\x00mcpkey-chunks v1 00 1 1 00"),
		"bin/jsonish":   []byte(`{"Key":"x","Data":"eA=="}`),
		"bin/trailing0": append([]byte("token"), 0, 0),
	}
	for k, v := range cases {
		mustPut(t, s, k, v)
	}
	for k, v := range cases {
		mustGet(t, s, k, v)
	}
	// Values are copied: changing the caller's slice changes nothing.
	v := []byte("mutable")
	mustPut(t, s, "bin/copy", v)
	v[0] = 'X'
	got, err := s.Get(ctx(t), "bin/copy")
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "bin/copy", []byte("mutable"))
	got[0] = 'Y'
	mustGet(t, s, "bin/copy", []byte("mutable"))
}

func testSizes(t *testing.T, s store.Store) {
	var keys []string
	for _, n := range []int{1, 2559, 2560, 2561, 8000} {
		k := fmt.Sprintf("size/%d", n)
		v := random(t, n)
		mustPut(t, s, k, v)
		mustGet(t, s, k, v)
		keys = append(keys, k)
	}
	mustKeys(t, s, "size/", keys...)
	for _, k := range keys {
		if err := s.Delete(ctx(t), k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	mustKeys(t, s, "")
}

func testConcurrent(t *testing.T, s store.Store) {
	const workers, rounds = 6, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			own := fmt.Sprintf("conc/%d", w)
			for r := range rounds {
				v := fmt.Appendf(nil, "worker %d round %d", w, r)
				if err := s.Put(t.Context(), own, v); err != nil {
					errs <- err
					return
				}
				got, err := s.Get(t.Context(), own)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, v) {
					errs <- fmt.Errorf("%s: read %q after writing %q", own, got, v)
				}
				if err := s.Put(t.Context(), "conc/shared", v); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Get(ctx(t), "conc/shared")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("worker ")) {
		t.Fatalf("shared value = %q, want one worker's write", got)
	}
	want := []string{"conc/shared"}
	for w := range workers {
		want = append(want, fmt.Sprintf("conc/%d", w))
	}
	mustKeys(t, s, "", want...)
}

func testCanceledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Get(c, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with canceled ctx error = %v, want context.Canceled", err)
	}
	if err := s.Put(c, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with canceled ctx error = %v, want context.Canceled", err)
	}
	mustKeys(t, s, "")
}

func sampleSession(server, account string) store.SessionRecord {
	now := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return store.SessionRecord{
		Server:       server,
		Account:      account,
		Issuer:       "https://as.example.com",
		ClientID:     "client-123",
		TokenType:    "Bearer",
		AccessToken:  "at-" + server + "-" + account,
		RefreshToken: "rt-" + server + "-" + account,
		ExpiresAt:    now.Add(time.Hour),
		ObtainedAt:   now,
		Scopes:       []string{"mcp:read", "mcp:write"},
	}
}

func equalSession(t *testing.T, got, want store.SessionRecord) {
	t.Helper()
	if got.Server != want.Server || got.Account != want.Account || got.Issuer != want.Issuer ||
		got.ClientID != want.ClientID || got.TokenType != want.TokenType ||
		got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.ObtainedAt.Equal(want.ObtainedAt) ||
		!slices.Equal(got.Scopes, want.Scopes) {
		// %v redacts the tokens; say which differ.
		t.Fatalf("session = %v (access equal %t, refresh equal %t), want %v",
			got, got.AccessToken == want.AccessToken, got.RefreshToken == want.RefreshToken, want)
	}
}

func testSessions(t *testing.T, s store.Store) {
	c := ctx(t)
	a := sampleSession("https://mcp.example.com/mcp", "")
	b := sampleSession("https://mcp.example.com/mcp", "work")
	b.AccessToken = strings.Repeat("J", 3000) // a large JWT: chunked on keyring backends
	if err := store.PutSession(c, s, a); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	if err := store.PutSession(c, s, b); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	got, err := store.LoadSession(c, s, a.Server, a.Account)
	if err != nil {
		t.Fatalf("LoadSession: %v", err)
	}
	equalSession(t, got, a)
	all, err := store.LoadSessions(c, s)
	if err != nil {
		t.Fatalf("LoadSessions: %v", err)
	}
	if len(all) != 2 {
		t.Fatalf("LoadSessions returned %d sessions, want 2", len(all))
	}
	equalSession(t, all[0], a)
	equalSession(t, all[1], b)
	metas, err := store.ListSessionMeta(c, s)
	if err != nil {
		t.Fatalf("ListSessionMeta: %v", err)
	}
	if len(metas) != 2 || metas[0].Server != a.Server || metas[0].Account != "" || metas[1].Account != "work" ||
		metas[0].ID != store.SessionID(a.Server, a.Account) || !metas[0].HasRefresh ||
		metas[0].Issuer != a.Issuer || metas[0].ClientID != a.ClientID || metas[0].TokenType != "Bearer" ||
		!metas[0].ExpiresAt.Equal(a.ExpiresAt) || !metas[0].ObtainedAt.Equal(a.ObtainedAt) ||
		!slices.Equal(metas[0].Scopes, a.Scopes) {
		t.Fatalf("ListSessionMeta = %+v", metas)
	}
	id := store.SessionID(a.Server, a.Account)
	mustKeys(t, s, "session/"+id+"/", "session/"+id+"/access", "session/"+id+"/meta", "session/"+id+"/refresh")

	// Without a refresh token the refresh item goes away.
	a.RefreshToken = ""
	a.AccessToken = "at-rotated"
	if err := store.PutSession(c, s, a); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	got, err = store.LoadSession(c, s, a.Server, a.Account)
	if err != nil {
		t.Fatalf("LoadSession: %v", err)
	}
	equalSession(t, got, a)
	mustKeys(t, s, "session/"+id+"/", "session/"+id+"/access", "session/"+id+"/meta")

	// Redaction.
	for _, out := range []string{fmt.Sprint(b), fmt.Sprintf("%+v", b), fmt.Sprintf("%#v", b)} {
		if strings.Contains(out, b.RefreshToken) || strings.Contains(out, "JJJJ") {
			t.Fatalf("printing a SessionRecord shows a token: %s", out)
		}
	}

	if err := store.DeleteSession(c, s, a.Server, a.Account); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := store.LoadSession(c, s, a.Server, a.Account); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadSession after delete error = %v, want ErrNotFound", err)
	}
	if err := store.DeleteSession(c, s, a.Server, a.Account); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteSession error = %v, want ErrNotFound", err)
	}
	if err := store.PutSession(c, s, store.SessionRecord{Server: "https://x"}); err == nil {
		t.Fatal("PutSession without an access token succeeded")
	}
	bid := store.SessionID(b.Server, b.Account)
	mustKeys(t, s, "", "session/"+bid+"/access", "session/"+bid+"/meta", "session/"+bid+"/refresh")
}

// testSessionClient: a session records the client it was issued to; the
// client secret is its own secret item, never in the meta item; a meta item
// written before clients were recorded still loads.
func testSessionClient(t *testing.T, s store.Store) {
	c := ctx(t)
	r := sampleSession("https://mcp.example.com/mcp", "static")
	r.ClientSource, r.ClientAuthMethod, r.ClientSecret = "preregistered", "client_secret_basic", "cs-SECRET-value"
	if err := store.PutSession(c, s, r); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	got, err := store.LoadSession(c, s, r.Server, r.Account)
	if err != nil {
		t.Fatalf("LoadSession: %v", err)
	}
	equalSession(t, got, r)
	if got.ClientSource != r.ClientSource || got.ClientAuthMethod != r.ClientAuthMethod || got.ClientSecret != r.ClientSecret {
		t.Fatalf("client = %q %q (secret equal %t)", got.ClientSource, got.ClientAuthMethod, got.ClientSecret == r.ClientSecret)
	}
	id := store.SessionID(r.Server, r.Account)
	meta, err := s.Get(c, "session/"+id+"/meta")
	if err != nil || strings.Contains(string(meta), r.ClientSecret) || !strings.Contains(string(meta), `"has_client_secret":true`) {
		t.Fatalf("meta item (err %v) holds the secret or lacks has_client_secret", err)
	}
	if sec, err := s.Get(c, "session/"+id+"/client_secret"); err != nil || string(sec) != r.ClientSecret {
		t.Fatalf("client_secret item: err %v, equal %t", err, string(sec) == r.ClientSecret)
	}
	for _, out := range []string{fmt.Sprint(r), fmt.Sprintf("%#v", r)} {
		if strings.Contains(out, r.ClientSecret) {
			t.Fatalf("printing a SessionRecord shows the client secret: %s", out)
		}
	}
	// A public client: the secret item goes away.
	r.ClientSecret, r.ClientAuthMethod = "", "none"
	if err := store.PutSession(c, s, r); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	mustKeys(t, s, "session/"+id+"/", "session/"+id+"/access", "session/"+id+"/meta", "session/"+id+"/refresh")
	// A meta item from before (no client fields) loads with ClientSource "".
	old := fmt.Sprintf(`{"v":1,"server":%q,"account":%q,"issuer":"https://as.example.com","client_id":"client-123","has_refresh":true}`, r.Server, r.Account)
	if err := s.Put(c, "session/"+id+"/meta", []byte(old)); err != nil {
		t.Fatal(err)
	}
	if got, err := store.LoadSession(c, s, r.Server, r.Account); err != nil || got.ClientSource != "" || got.ClientID != "client-123" || got.ClientSecret != "" {
		t.Fatalf("old meta item: %v, %v", got, err)
	}
	if err := store.DeleteSession(c, s, r.Server, r.Account); err != nil {
		t.Fatal(err)
	}
	mustKeys(t, s, "session/"+id+"/")
}

// counting wraps a Store and counts Gets per key.
type counting struct {
	store.Store
	mu   sync.Mutex
	gets map[string]int
}

func (c *counting) Get(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	c.gets[key]++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

func testListingReadsNoTokens(t *testing.T, s store.Store) {
	cs := &counting{Store: s, gets: map[string]int{}}
	for _, acct := range []string{"", "a", "b"} {
		if err := store.PutSession(ctx(t), s, sampleSession("https://mcp.example.com", acct)); err != nil {
			t.Fatal(err)
		}
	}
	metas, err := store.ListSessionMeta(ctx(t), cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 3 {
		t.Fatalf("ListSessionMeta returned %d, want 3", len(metas))
	}
	metaReads := 0
	for k, n := range cs.gets {
		switch {
		case strings.HasSuffix(k, "/access"), strings.HasSuffix(k, "/refresh"):
			t.Errorf("listing read token item %s (%d times)", k, n)
		case strings.HasSuffix(k, "/meta"):
			metaReads += n
		}
	}
	if metaReads != 3 {
		t.Errorf("listing read meta items %d times, want 3", metaReads)
	}
}

func testClients(t *testing.T, s store.Store) {
	c := ctx(t)
	reg := oauth.Client{
		Issuer:                  "https://as.example.com",
		ClientID:                "cid",
		ClientSecret:            "client-secret-value",
		TokenEndpointAuthMethod: "client_secret_basic",
		RedirectURIs:            []string{"http://127.0.0.1/callback"},
		Source:                  "dcr",
		RegisteredAt:            time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if _, err := store.LoadClient(c, s, reg.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadClient(missing) error = %v, want ErrNotFound", err)
	}
	if err := store.PutClient(c, s, reg); err != nil {
		t.Fatalf("PutClient: %v", err)
	}
	got, err := store.LoadClient(c, s, reg.Issuer)
	if err != nil {
		t.Fatalf("LoadClient: %v", err)
	}
	if got.Issuer != reg.Issuer || got.ClientID != reg.ClientID || got.ClientSecret != reg.ClientSecret ||
		got.TokenEndpointAuthMethod != reg.TokenEndpointAuthMethod || !slices.Equal(got.RedirectURIs, reg.RedirectURIs) ||
		got.Source != reg.Source || !got.RegisteredAt.Equal(reg.RegisteredAt) {
		t.Fatalf("LoadClient = %+v, want %+v", got, reg)
	}
	// Issuers are compared exactly: a trailing slash is another issuer.
	if _, err := store.LoadClient(c, s, reg.Issuer+"/"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadClient(issuer+/) error = %v, want ErrNotFound", err)
	}
	if err := store.DeleteClient(c, s, reg.Issuer); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	if err := store.DeleteClient(c, s, reg.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteClient error = %v, want ErrNotFound", err)
	}
	mustKeys(t, s, "")
}

func testSecrets(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := store.PutSecret(c, s, "github-token", []byte("ghp_x\x00y")); err != nil {
		t.Fatal(err)
	}
	if err := store.PutSecret(c, s, "api.key@prod", random(t, 3000)); err != nil {
		t.Fatal(err)
	}
	got, err := store.LoadSecret(c, s, "github-token")
	if err != nil || !bytes.Equal(got, []byte("ghp_x\x00y")) {
		t.Fatalf("LoadSecret = %q, %v", got, err)
	}
	names, err := store.ListSecrets(c, s)
	if err != nil || !slices.Equal(names, []string{"api.key@prod", "github-token"}) {
		t.Fatalf("ListSecrets = %q, %v", names, err)
	}
	for _, bad := range []string{"", "a/b", "../x", ".hidden", "sp ace"} {
		if err := store.PutSecret(c, s, bad, []byte("x")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("PutSecret(%q) error = %v, want ErrInvalidKey", bad, err)
		}
	}
	if err := store.DeleteSecret(c, s, "github-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadSecret(c, s, "github-token"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadSecret after delete error = %v, want ErrNotFound", err)
	}
	if err := store.DeleteSecret(c, s, "github-token"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteSecret error = %v, want ErrNotFound", err)
	}
	mustKeys(t, s, "", "secret/api.key@prod")
}

func testSchema(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := store.EnsureSchema(c, s); err != nil {
		t.Fatalf("EnsureSchema on empty store: %v", err)
	}
	mustGet(t, s, "schema", []byte(fmt.Sprint(store.SchemaVersion)))
	if err := store.EnsureSchema(c, s); err != nil {
		t.Fatalf("second EnsureSchema: %v", err)
	}
	mustPut(t, s, "schema", []byte("99"))
	if err := store.EnsureSchema(c, s); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("EnsureSchema with version 99 error = %v, want a newer-schema error", err)
	}
	mustPut(t, s, "schema", []byte("garbage"))
	if err := store.EnsureSchema(c, s); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("EnsureSchema with garbage error = %v, want ErrCorrupt", err)
	}
}

func testCorrupt(t *testing.T, s store.Store) {
	c := ctx(t)
	const secret = "SECRET-CONTENT-xyz"
	good := sampleSession("https://good.example.com", "")
	if err := store.PutSession(c, s, good); err != nil {
		t.Fatal(err)
	}
	badID := store.SessionID("https://bad.example.com", "")
	badKey := "session/" + badID + "/meta"
	for _, content := range []string{"{" + secret, `{"v":1,"server":` + "\"" + secret + "\"}", `{"v":1,"server":7}`, `{"v":9,"server":"x"}`} {
		mustPut(t, s, badKey, []byte(content))
		metas, err := store.ListSessionMeta(c, s)
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("ListSessionMeta with corrupt meta error = %v, want ErrCorrupt", err)
		}
		if !strings.Contains(err.Error(), badKey) || strings.Contains(err.Error(), secret) {
			t.Fatalf("corrupt-item error %q must name %s and not quote the content", err, badKey)
		}
		if len(metas) != 1 || metas[0].Server != good.Server {
			t.Fatalf("ListSessionMeta with one corrupt item = %+v, want the good one", metas)
		}
		if _, err := store.LoadSessions(c, s); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("LoadSessions error = %v, want ErrCorrupt", err)
		}
	}
	// A meta item whose access token is missing.
	goodID := store.SessionID(good.Server, good.Account)
	if err := s.Delete(c, "session/"+goodID+"/access"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LoadSession(c, s, good.Server, good.Account); !errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LoadSession with missing access error = %v, want ErrCorrupt and not ErrNotFound", err)
	}
	// A client registration stored for another issuer.
	if err := store.PutClient(c, s, oauth.Client{Issuer: "https://as.example.com", ClientID: "x"}); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Keys(c, "client/")
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys(client/) = %q, %v", keys, err)
	}
	mustPut(t, s, keys[0], []byte(`{"issuer":"https://evil.example.com","client_id":"x"}`))
	if _, err := store.LoadClient(c, s, "https://as.example.com"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("LoadClient of another issuer's item error = %v, want ErrCorrupt", err)
	}
	mustPut(t, s, keys[0], []byte("\x00\x01"+secret))
	if _, err := store.LoadClient(c, s, "https://as.example.com"); !errors.Is(err, store.ErrCorrupt) || strings.Contains(err.Error(), secret) {
		t.Fatalf("LoadClient of garbage error = %v, want ErrCorrupt without content", err)
	}
}
