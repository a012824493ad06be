package agent_test

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/agent/store"
)

// clock is a settable clock shared by the agent and the test AS.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	t     *testing.T
	as    *oauthtest.Server
	a     *agent.Agent
	store store.Store
	clk   *clock
}

func newFixture(t *testing.T, opts oauthtest.Options, tweak ...func(*agent.Config)) *fixture {
	t.Helper()
	clk := newClock()
	opts.Now = clk.Now
	if opts.ScopesSupported == nil {
		opts.ScopesSupported = []string{"mcp:tools"}
	}
	as := oauthtest.New(t, opts)
	st := store.NewMemory()
	cfg := agent.Config{Store: st, Now: clk.Now, OpenURL: as.Browser()}
	for _, f := range tweak {
		f(&cfg)
	}
	a, err := agent.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &fixture{t: t, as: as, a: a, store: st, clk: clk}
}

func (f *fixture) login(req agent.LoginRequest) agent.SessionInfo {
	f.t.Helper()
	if req.Server == "" {
		req.Server = f.as.MCPURL
	}
	ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
	defer cancel()
	info, err := f.a.Login(ctx, req, nil)
	if err != nil {
		f.t.Fatalf("login: %v", err)
	}
	return info
}

func (f *fixture) token(req agent.TokenRequest) (agent.Token, error) {
	if req.Server == "" {
		req.Server = f.as.MCPURL
	}
	ctx, cancel := context.WithTimeout(f.t.Context(), 10*time.Second)
	defer cancel()
	return f.a.Token(ctx, req)
}

func TestLoginThenToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{ASScopesSupported: []string{"mcp:tools", "offline_access"}, AccessTokenTTL: time.Hour})
	events := f.a.Subscribe(t.Context())
	var progress []string
	info, err := f.a.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL}, func(e agent.Event) { progress = append(progress, e.Message) })
	if err != nil {
		t.Fatal(err)
	}
	if info.Server != f.as.MCPURL || info.Issuer != f.as.Issuer || info.State != agent.StateReady || !info.HasRefresh {
		t.Errorf("session info = %+v", info)
	}
	if !slices.Contains(info.Scopes, "mcp:tools") {
		t.Errorf("scopes = %v, want mcp:tools", info.Scopes)
	}
	joined := strings.Join(progress, "\n")
	for _, want := range []string{"discovering " + f.as.MCPURL, "registering with " + f.as.Issuer, "opening your browser", "waiting for you", "signed in to"} {
		if !strings.Contains(joined, want) {
			t.Errorf("progress lacks %q:\n%s", want, joined)
		}
	}
	// The authorization request carried PKCE S256, the resource verbatim
	// and offline_access (the AS lists it).
	ar := f.as.AuthorizeRequests()
	if len(ar) != 1 {
		t.Fatalf("authorize requests = %d, want 1", len(ar))
	}
	if ar[0].Get("code_challenge_method") != "S256" || ar[0].Get("resource") != f.as.Resource {
		t.Errorf("authorize request = %v", ar[0])
	}
	if got := ar[0].Get("scope"); got != "mcp:tools offline_access" {
		t.Errorf("scope = %q", got)
	}
	tok, err := f.token(agent.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !f.as.ValidAccessToken(tok.AccessToken) || tok.TokenType == "" || tok.Server != f.as.MCPURL {
		t.Errorf("token = %+v (valid at the AS: %v)", tok.LogValue(), f.as.ValidAccessToken(tok.AccessToken))
	}
	// Persisted: a new agent over the same store serves the same token
	// without a login.
	a2, err := agent.New(t.Context(), agent.Config{Store: f.store, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	tok2, err := a2.Token(t.Context(), agent.TokenRequest{Server: f.as.MCPURL})
	if err != nil || tok2.AccessToken != tok.AccessToken {
		t.Errorf("restarted agent: token equal=%v err=%v", tok2.AccessToken == tok.AccessToken, err)
	}
	ss, _ := f.a.Sessions(t.Context())
	if len(ss) != 1 || ss[0].State != agent.StateReady {
		t.Errorf("sessions = %+v", ss)
	}
	waitEvent(t, events, func(e agent.Event) bool { return e.Kind == agent.EventLoginFinished && e.Error == "" })
}

func waitEvent(t *testing.T, ch <-chan agent.Event, match func(agent.Event) bool) agent.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatal("no matching event within 10s")
		}
	}
}

func TestNoSessionNeedsLogin(t *testing.T) {
	f := newFixture(t, oauthtest.Options{})
	_, err := f.token(agent.TokenRequest{Scopes: []string{"mcp:read"}})
	var nl *agent.NeedsLoginError
	if !errors.As(err, &nl) || !errors.Is(err, agent.ErrNeedsLogin) {
		t.Fatalf("err = %v, want NeedsLoginError", err)
	}
	if nl.Server != f.as.MCPURL || !slices.Equal(nl.Scopes, []string{"mcp:read"}) {
		t.Errorf("needs login = %+v", nl)
	}
	if _, err := f.token(agent.TokenRequest{Server: "not a url"}); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("bad server: err = %v, want ErrNotFound", err)
	}
}

func TestConcurrentLoginsShareOneFlow(t *testing.T) {
	release := make(chan struct{})
	var opened []string
	var mu sync.Mutex
	f := newFixture(t, oauthtest.Options{})
	browser := f.as.Browser()
	// The browser waits for the test: both callers are joined by then.
	f2 := newFixtureWithBrowser(t, f, func(ctx context.Context, u string) error {
		mu.Lock()
		opened = append(opened, u)
		mu.Unlock()
		go func() { <-release; browser(ctx, u) }()
		return nil
	})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	joined := make(chan struct{}, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f2.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL}, func(e agent.Event) {
				if strings.HasPrefix(e.Message, "waiting for you") {
					joined <- struct{}{}
				}
			})
		}()
	}
	for range errs {
		select {
		case <-joined:
		case <-time.After(10 * time.Second):
			t.Fatal("callers did not all join the login")
		}
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if len(opened) != 1 || len(f.as.AuthorizeRequests()) != 1 {
		t.Errorf("browser opened %d times, %d authorize requests; want 1 and 1", len(opened), len(f.as.AuthorizeRequests()))
	}
}

// newFixtureWithBrowser returns a second agent on f's AS with another browser.
func newFixtureWithBrowser(t *testing.T, f *fixture, open func(context.Context, string) error) *agent.Agent {
	a, err := agent.New(t.Context(), agent.Config{Store: store.NewMemory(), Now: f.clk.Now, OpenURL: open})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestSingleFlightRefresh(t *testing.T) {
	for _, n := range []int{1, 10, 100} {
		t.Run("callers="+strconv.Itoa(n), func(t *testing.T) {
			f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute})
			f.login(agent.LoginRequest{})
			before, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
			f.clk.Advance(5*time.Minute + time.Second) // expired
			var wg sync.WaitGroup
			toks := make([]agent.Token, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() { defer wg.Done(); toks[i], errs[i] = f.token(agent.TokenRequest{}) }()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if toks[i].AccessToken != toks[0].AccessToken {
					t.Fatalf("caller %d got another token", i)
				}
			}
			if got := f.as.Refreshes(); got != 1 {
				t.Errorf("refreshes at the AS = %d, want 1", got)
			}
			if !f.as.ValidAccessToken(toks[0].AccessToken) {
				t.Error("the refreshed token is not valid at the AS")
			}
			// The rotated refresh token was persisted.
			after, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
			if err != nil || after.RefreshToken == before.RefreshToken || after.AccessToken != toks[0].AccessToken {
				t.Errorf("stored session not rotated (err %v)", err)
			}
			// The grant is still alive: the next refresh works.
			f.clk.Advance(5*time.Minute + time.Second)
			if _, err := f.token(agent.TokenRequest{}); err != nil || f.as.Refreshes() != 2 {
				t.Errorf("second refresh: err %v, refreshes %d", err, f.as.Refreshes())
			}
		})
	}
}

func TestRejectedTokenRefreshesOnce(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	tok, _ := f.token(agent.TokenRequest{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nt, err := f.token(agent.TokenRequest{RejectedToken: tok.AccessToken})
			if err != nil || nt.AccessToken == tok.AccessToken {
				t.Errorf("err %v, same token %v", err, nt.AccessToken == tok.AccessToken)
			}
		}()
	}
	wg.Wait()
	if got := f.as.Refreshes(); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

func TestInvalidGrantNeedsLogin(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute})
	f.login(agent.LoginRequest{})
	f.as.RevokeAll()
	f.clk.Advance(6 * time.Minute)
	_, err := f.token(agent.TokenRequest{})
	if !errors.Is(err, agent.ErrNeedsLogin) {
		t.Fatalf("err = %v, want needs login", err)
	}
	ss, _ := f.a.Sessions(t.Context())
	if len(ss) != 1 || ss[0].State != agent.StateNeedsLogin || !strings.Contains(ss[0].Error, "invalid_grant") {
		t.Errorf("sessions = %+v", ss)
	}
	// A new login recovers.
	f.login(agent.LoginRequest{})
	if _, err := f.token(agent.TokenRequest{}); err != nil {
		t.Errorf("after login: %v", err)
	}
}

func TestInvalidGrantAdoptsTokenRotatedElsewhere(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: 5 * time.Minute, NoRotation: true})
	f.login(agent.LoginRequest{})
	// Someone else (an older agent, a restored backup) stored newer tokens.
	rec, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
	access, refresh := f.as.Grant(rec.ClientID, rec.Scopes)
	rec.AccessToken, rec.RefreshToken, rec.ExpiresAt = access, refresh, f.clk.Now().Add(time.Hour)
	if err := store.PutSession(t.Context(), f.store, rec); err != nil {
		t.Fatal(err)
	}
	f.as.ForceInvalidGrant(true)
	f.clk.Advance(6 * time.Minute)
	tok, err := f.token(agent.TokenRequest{})
	if err != nil || tok.AccessToken != access {
		t.Fatalf("err = %v, adopted = %v", err, tok.AccessToken == access)
	}
}

func TestTransientFailureKeepsServingValidToken(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	tok, _ := f.token(agent.TokenRequest{})
	f.as.SetDown(true)
	f.clk.Advance(time.Hour - 30*time.Second) // inside the refresh margin, still valid
	got, err := f.token(agent.TokenRequest{})
	if err != nil || got.AccessToken != tok.AccessToken {
		t.Fatalf("AS down: err %v, same token %v", err, got.AccessToken == tok.AccessToken)
	}
	ss, _ := f.a.Sessions(t.Context())
	if len(ss) != 1 || ss[0].State != agent.StateError {
		t.Errorf("state = %+v, want error", ss)
	}
	if _, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, ""); err != nil {
		t.Errorf("credentials deleted: %v", err)
	}
	// A 500 also keeps credentials.
	f.as.SetDown(false)
	f.as.SetTokenFailure(http.StatusInternalServerError)
	f.clk.Advance(10 * time.Second) // past the first backoff
	if got, err := f.token(agent.TokenRequest{}); err != nil || got.AccessToken != tok.AccessToken {
		t.Fatalf("AS 500: err %v", err)
	}
	// Expired and the AS still failing: an error, not needs_login, and
	// nothing deleted.
	f.clk.Advance(time.Minute)
	if _, err := f.token(agent.TokenRequest{}); err == nil || errors.Is(err, agent.ErrNeedsLogin) {
		t.Errorf("expired while AS fails: err = %v", err)
	}
	// Back up: the next attempt after the backoff refreshes.
	f.as.SetTokenFailure(0)
	f.clk.Advance(10 * time.Minute)
	if _, err := f.token(agent.TokenRequest{}); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestStepUpScopes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	_, err := f.token(agent.TokenRequest{Scopes: []string{"mcp:write"}})
	var nl *agent.NeedsLoginError
	if !errors.As(err, &nl) || !slices.Equal(nl.Scopes, []string{"mcp:tools", "mcp:write"}) {
		t.Fatalf("err = %v (%+v), want needs login for the union", err, nl)
	}
	info := f.login(agent.LoginRequest{Scopes: nl.Scopes})
	if !slices.Contains(info.Scopes, "mcp:write") || !slices.Contains(info.Scopes, "mcp:tools") {
		t.Errorf("after step-up scopes = %v", info.Scopes)
	}
	if _, err := f.token(agent.TokenRequest{Scopes: []string{"mcp:write"}}); err != nil {
		t.Errorf("token after step-up: %v", err)
	}
}

func TestLogoutRevokes(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	rec, _ := store.LoadSession(t.Context(), f.store, f.as.MCPURL, "")
	res, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL})
	if err != nil || !res.Revoked {
		t.Fatalf("logout = %+v, %v", res, err)
	}
	revs := f.as.Revocations()
	if len(revs) != 1 || revs[0].Get("token") != rec.RefreshToken || revs[0].Get("token_type_hint") != "refresh_token" {
		t.Errorf("revocations = %d", len(revs))
	}
	if _, err := store.LoadSession(t.Context(), f.store, f.as.MCPURL, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session still stored: %v", err)
	}
	if _, err := f.token(agent.TokenRequest{}); !errors.Is(err, agent.ErrNeedsLogin) {
		t.Errorf("token after logout: %v", err)
	}
	if _, err := f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL}); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("second logout: %v", err)
	}
	// --keep-remote skips revocation.
	f.login(agent.LoginRequest{})
	res, err = f.a.Logout(t.Context(), agent.LogoutRequest{Server: f.as.MCPURL, KeepRemote: true})
	if err != nil || res.Revoked || len(f.as.Revocations()) != 1 {
		t.Errorf("keep-remote logout = %+v, %v, revocations %d", res, err, len(f.as.Revocations()))
	}
}

func TestLoginCancelledByEveryCaller(t *testing.T) {
	opened := make(chan string, 1)
	f := newFixture(t, oauthtest.Options{}, func(c *agent.Config) {
		c.OpenURL = func(ctx context.Context, u string) error { opened <- u; return nil } // the user never signs in
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := f.a.Login(ctx, agent.LoginRequest{Server: f.as.MCPURL}, nil); done <- err }()
	<-opened
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := f.a.Status(t.Context())
		if st.PendingLogins == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flow was not cancelled")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

func TestHeadlessPasteBack(t *testing.T) {
	f := newFixture(t, oauthtest.Options{NoDevice: true})
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := f.a.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL, NoBrowser: true}, func(e agent.Event) {
			if e.URL != "" {
				urls <- e.URL
			}
		})
		done <- err
	}()
	authURL := <-urls
	// The user signs in elsewhere; the browser ends on the loopback URL,
	// which cannot be reached from there: it is pasted back.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if err := f.a.CompleteLogin(t.Context(), "http://127.0.0.1:1/callback?state=bogus&code=x"); !errors.Is(err, agent.ErrNotFound) {
		t.Errorf("unknown state: %v", err)
	}
	if err := f.a.CompleteLogin(t.Context(), loc); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHeadlessDeviceGrant(t *testing.T) {
	f := newFixture(t, oauthtest.Options{DeviceInterval: 1})
	var code string
	_, err := f.a.Login(t.Context(), agent.LoginRequest{Server: f.as.MCPURL, NoBrowser: true}, func(e agent.Event) {
		if e.UserCode != "" {
			code = e.UserCode
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if code == "" {
		t.Error("no user code shown")
	}
	if _, err := f.token(agent.TokenRequest{}); err != nil {
		t.Error(err)
	}
}

func TestReregistersOnInvalidClient(t *testing.T) {
	f := newFixture(t, oauthtest.Options{AccessTokenTTL: time.Hour})
	f.login(agent.LoginRequest{})
	// The AS forgets the registration: a stale client id in the store.
	c, err := store.LoadClient(t.Context(), f.store, f.as.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientID = "forgotten"
	if err := store.PutClient(t.Context(), f.store, c); err != nil {
		t.Fatal(err)
	}
	f.login(agent.LoginRequest{})
	if n := len(f.as.Registrations()); n != 2 {
		t.Errorf("registrations = %d, want 2 (one automatic re-registration)", n)
	}
}

func TestImportsPointOneWay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/mcpkey/mcpkey/agent/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/mcpkey/mcpkey/ipc") || strings.HasPrefix(p, "github.com/mcpkey/mcpkey/tray") {
			t.Errorf("agent depends on %s", p)
		}
	}
}
