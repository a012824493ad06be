package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent/browser"
	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// loginFlight is one login in progress for a (server, account). Every caller
// asking for that login joins it: one browser tab, one verifier.
type loginFlight struct {
	done   chan struct{}
	cancel context.CancelFunc

	mu      sync.Mutex // guards the fields below
	subs    map[int]func(Event)
	nextID  int
	history []Event // progress so far, replayed to callers who join late
	info    SessionInfo
	err     error
}

func (f *loginFlight) join(progress func(Event)) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID
	f.nextID++
	if progress != nil {
		for _, e := range f.history {
			progress(e)
		}
	}
	f.subs[id] = progress
	return id
}

// leave removes a caller and reports how many remain.
func (f *loginFlight) leave(id int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, id)
	return len(f.subs)
}

func (f *loginFlight) emit(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history = append(f.history, e)
	for _, p := range f.subs {
		if p != nil {
			p(e)
		}
	}
}

// Login runs the OAuth login for req.Server, or joins the one already in
// flight for the same (server, account). progress receives
// EventLoginProgress events until Login returns. When every caller has gone
// (ctx cancelled: Ctrl-C in the CLI), the flow itself is cancelled.
func (a *Agent) Login(ctx context.Context, req LoginRequest, progress func(Event)) (SessionInfo, error) {
	t, err := a.names.resolve(req.Server)
	if err != nil {
		return SessionInfo{}, err
	}
	key := sessionKey{t.url, t.account(req.Account)}
	if err := a.admit(ctx, "session.login", t, key.account, req.Scopes); err != nil {
		return SessionInfo{}, err
	}
	return a.login(ctx, t, key, req, progress)
}

// login runs or joins the login for key, once admitted.
func (a *Agent) login(ctx context.Context, t target, key sessionKey, req LoginRequest, progress func(Event)) (SessionInfo, error) {
	a.mu.Lock()
	f := a.logins[key]
	if f == nil {
		fctx, cancel := context.WithTimeoutCause(a.bg, a.cfg.LoginTimeout, errLoginTimedOut)
		f = &loginFlight{done: make(chan struct{}), cancel: cancel, subs: make(map[int]func(Event))}
		a.logins[key] = f
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer cancel()
			info, err := a.runLogin(fctx, t, key, req, f)
			if err != nil && errors.Is(context.Cause(fctx), errLoginTimedOut) {
				err = &LoginTimeoutError{Server: key.server, Ref: req.Server, Account: req.Account, After: a.cfg.LoginTimeout}
			}
			a.mu.Lock()
			delete(a.logins, key)
			a.mu.Unlock()
			f.mu.Lock()
			f.info, f.err = info, err
			f.mu.Unlock()
			close(f.done)
			a.http.trimSoon()
			ev := Event{Kind: EventLoginFinished, Server: key.server, Account: key.account}
			if err != nil {
				ev.Error = err.Error()
			} else {
				ev.Session = &info
			}
			a.events.publish(ev)
		}()
	}
	id := f.join(progress)
	a.mu.Unlock()
	select {
	case <-f.done:
		f.leave(id)
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.info, f.err
	case <-ctx.Done():
		if f.leave(id) == 0 {
			f.cancel()
		}
		return SessionInfo{}, ctx.Err()
	}
}

// errLoginTimedOut is the cause of a login flow's context when
// Config.LoginTimeout ran out.
var errLoginTimedOut = errors.New("login timed out")

// LoginTimeoutError ends a login nobody finished within Config.LoginTimeout.
// It unwraps to context.DeadlineExceeded.
type LoginTimeoutError struct {
	Server  string        // the session's server URL
	Ref     string        // what the caller named it (a URL or a configured name)
	Account string        // the account asked for, if any
	After   time.Duration // Config.LoginTimeout
}

func (e *LoginTimeoutError) Error() string {
	ref := e.Ref
	if ref == "" {
		ref = e.Server
	}
	cmd := "mcpkey login " + ref
	if e.Account != "" {
		cmd += " --account " + e.Account
	}
	return fmt.Sprintf("nobody finished signing in to %s within %s; run `%s` again", e.Server, shortDuration(e.After), cmd)
}

func (e *LoginTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// shortDuration prints d as people write it: "10m", "1h30m", "250ms".
func shortDuration(d time.Duration) string {
	if d >= time.Second {
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (a *Agent) runLogin(ctx context.Context, t target, key sessionKey, req LoginRequest, f *loginFlight) (SessionInfo, error) {
	step := func(msg string) {
		f.emit(Event{Kind: EventLoginProgress, Time: a.now(), Server: key.server, Account: key.account, Message: msg})
	}
	step("discovering " + t.url)
	d, err := discover(ctx, a.http.client(t), t, a.log)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
	}
	ch := d.Challenge
	as := d.AS

	// Scopes: explicit (flag, config), else the spec's selection; a step-up
	// asks for the union with what the session already holds.
	var previous []string
	var prevRec *store.SessionRecord
	if err := a.loadFor(ctx, key); err != nil {
		return SessionInfo{}, fmt.Errorf("login %s: read the stored session: %w", t.url, err)
	}
	a.mu.RLock()
	old := a.sessions[key]
	existed := old != nil
	if old != nil {
		old.mu.Lock()
		previous = old.rec.Scopes
		prevRec = ptr(old.rec)
		old.mu.Unlock()
	}
	a.mu.RUnlock()
	explicit := UnionScopes(t.settings.Scopes, req.Scopes)
	sel := ch
	if len(explicit) > 0 {
		sel = &oauth.Challenge{Scopes: explicit}
	}
	scopes := oauth.SelectScopes(sel, d, as, previous)

	var ts *oauth.TokenSet
	var client *oauth.Client
	g, err := grantFor(ctx, a.cfg.Store, t, req, prevRec)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
	}

	// A key-bound session gets its own new key; it never leaves the agent.
	// The grants without a browser (grants.go) take bearer tokens.
	var dk *oauth.DPoPKey
	refused := a.dpop.refused(t, prevRec)
	if g.mode == "" && wantDPoP(t, d, req.DPoP, refused) {
		if dk, err = oauth.NewDPoPKey(); err != nil {
			return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
		}
		step("asking for tokens bound to a key only this agent holds (DPoP)")
	}
	if g.mode != "" { // a grant without a browser (grants.go)
		if !req.Grant.Unattended {
			g.person = &grantPerson{req: req, step: step}
		}
		scopes = slices.DeleteFunc(slices.Clone(scopes), isOfflineAccess) // no refresh token to ask for
		step("requesting a token with the " + g.mode + " grant")
		if client, ts, err = g.run(ctx, a.http.client(t), &a.idps, t, as, d.Resource, scopes, a.names.audience(t, as.Issuer, d.Resource), ""); err != nil {
			return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
		}
	}
	for attempt := 0; g.mode == ""; attempt++ { // the browser sign-in
		client, ts, err = a.authz.authorize(ctx, t, key, req, d, scopes, prevRec, attempt > 0, dk, f, step)
		if err == nil {
			break
		}
		// A registration the AS no longer knows (or whose redirect URI it
		// rejects): forget it and register again, once.
		if attempt == 0 && oauth.IsInvalidClient(err) && client != nil && client.Source != oauth.SourcePreregistered {
			step("the authorization server rejected the stored client registration; registering again")
			continue
		}
		return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
	}

	now := a.now()
	ts.ExpiresAt = onOurClock(a.now, ts.ExpiresAt)
	rec := store.SessionRecord{
		Server: key.server, Account: key.account, Issuer: as.Issuer,
		TokenType: ts.TokenType, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken,
		ExpiresAt: ts.ExpiresAt, ObtainedAt: now, Scopes: ts.Scopes,
		Resource: d.Resource, TokenEndpoint: as.TokenEndpoint, RevocationEndpoint: as.RevocationEndpoint,
	}
	recordClient(&rec, client)
	if dk != nil && strings.EqualFold(ts.TokenType, TokenTypeDPoP) {
		if rec.DPoPKey, err = marshalKey(dk); err != nil {
			return SessionInfo{}, fmt.Errorf("login %s: %w", t.url, err)
		}
		rec.TokenType = TokenTypeDPoP
	} else if strings.EqualFold(ts.TokenType, TokenTypeDPoP) {
		return SessionInfo{}, fmt.Errorf("login %s: the authorization server issued a DPoP-bound token without a proof", t.url)
	}
	// else: asked for a key-bound token but the AS issued a bearer one;
	// the session is a bearer session and the key is dropped.
	rec.DPoPRefused = refused && rec.DPoPKey == "" // remembered with the session
	if g.mode != "" {
		g.record(&rec, client)
	}
	if len(rec.Scopes) == 0 {
		rec.Scopes = scopes
	}
	if err := store.PutSession(ctx, a.cfg.Store, rec); err != nil {
		if !existed {
			// A new session written in part (the kernel keyring's quota
			// ran out after the refresh token): take the orphans back out.
			_ = store.DeleteSession(a.bg, a.cfg.Store, key.server, key.account)
		}
		return SessionInfo{}, fmt.Errorf("login %s: save session: %w", t.url, storeErr(err))
	}
	info := a.adoptStored(key, rec, now)
	ts.Wipe() // the session holds its own copies
	who := "signed in to " + key.server
	if key.account != "" {
		who += " as " + key.account
	}
	if rec.ExpiresAt.IsZero() {
		step(who + "; the server gave no token lifetime: the token is used until the server rejects it")
	} else {
		step(fmt.Sprintf("%s, token valid for %s", who, humanDuration(rec.ExpiresAt.Sub(now))))
	}
	if n := store.Notice(a.cfg.Store); n != "" && !a.noticeShown.Swap(true) {
		step(n) // once per agent: the first login on a machine without a keyring
	}
	a.log.Info("login finished", "server", key.server, "account", key.account, "issuer", as.Issuer)
	a.pol.Audit(a.bg, AuditRecord{Event: AuditLogin, Server: key.server, Account: key.account, Scopes: rec.Scopes, ExpiresAt: rec.ExpiresAt})
	return info, nil
}

// adoptStored makes rec, just stored, key's session in memory (last used
// at used) and announces it.
func (a *Agent) adoptStored(key sessionKey, rec store.SessionRecord, used time.Time) SessionInfo {
	s := newSession(rec, &a.marginCap)
	s.lastUsed = used
	a.mu.Lock()
	s.inheritRejects(a.sessions[key])
	if !a.pol.Locked() { // locked meanwhile: the keyring has it for unlock
		a.sessions[key] = s
		id := store.SessionID(key.server, key.account)
		delete(a.broken, id) // its items were just replaced
		delete(a.pending, id)
	}
	a.mu.Unlock()
	a.wake.nudge()
	info := a.sessionInfo(s)
	a.events.publish(Event{Kind: EventSessionChanged, Server: key.server, Account: key.account, Session: &info})
	return info
}

// discover finds t's authorization server over hc (t's client): probe,
// then RFC 9728 / 8414 discovery.
func discover(ctx context.Context, hc *http.Client, t target, log *slog.Logger) (*oauth.Discovery, error) {
	ch, err := oauth.Probe(ctx, hc, t.url)
	if err != nil {
		return nil, err
	}
	d, err := oauth.Discover(ctx, hc, t.url, ch, oauth.DiscoverOptions{AllowPrivateNetwork: t.settings.AllowPrivateNetwork, Logger: log})
	if err != nil {
		return nil, err
	}
	if ch == nil && d.ResourceMetadataURL == "" {
		return nil, errors.New("the server answered without asking for authorization and publishes no protected resource metadata: there is nothing to log in to")
	}
	return d, nil
}

// authorizer is the login's room for the person's part of a browser
// sign-in: the client registration its loopback redirect needs, then the
// device grant (a headless login, when the authorization server offers
// it) or the authorization-code flow through the browser, answered by the
// loopback callback or a pasted redirect URL (flows, CompleteLogin). The
// in-flight login table stays the Agent's: a lock drops it together with
// the sessions.
type authorizer struct {
	store   store.Store
	now     func() time.Time
	openURL func(ctx context.Context, url string) error // Config.OpenURL
	http    *outbound
	names   *resolver
	regs    *registrations
	dpop    *dpopState
	flows   callbacks // pending authorizations by state
}

// authorize registers (or reuses a registration) and runs one authorization:
// the device grant for a headless login when the AS offers it, else the
// authorization-code flow with a loopback callback.
//
// The client is, in order: the one the login request or the config names,
// else the pre-registered client the session being renewed (prev) was
// issued to, else the issuer's stored or a new registration.
func (z *authorizer) authorize(ctx context.Context, t target, key sessionKey, req LoginRequest, d *oauth.Discovery, scopes []string, prev *store.SessionRecord, reregister bool, dk *oauth.DPoPKey, f *loginFlight, step func(string)) (*oauth.Client, *oauth.TokenSet, error) {
	as := d.AS
	hc := z.http.client(t)
	aud := z.names.audience(t, as.Issuer, d.Resource)
	existing, err := z.regs.stored(ctx, as.Issuer)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if reregister && existing != nil {
		if err := store.DeleteClient(ctx, z.store, as.Issuer); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, storeErr(err)
		}
		existing = nil
	}

	// The callback listener comes first: its redirect URI is registered.
	// Reuse the port of a stored registration when it is free, so an AS that
	// matches redirect URIs literally keeps accepting it.
	port := t.settings.RedirectPort
	if port == 0 && existing != nil {
		port = redirectPort(existing.RedirectURIs)
	}
	cb, err := oauth.ListenCallback(ctx, port, "/callback")
	if err != nil && port != 0 && t.settings.RedirectPort == 0 {
		cb, err = oauth.ListenCallback(ctx, 0, "/callback")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loopback callback listener: %w", err)
	}
	defer cb.Close()

	clientID, secret, cimd := req.ClientID, req.ClientSecret, req.ClientMetadataURL
	if clientID == "" {
		clientID = t.settings.ClientID
	}
	if secret == "" && t.settings.ClientSecretFile != "" {
		if secret, err = ReadSecretFile(t.settings.ClientSecretFile); err != nil {
			return nil, nil, err
		}
	}
	if cimd == "" {
		cimd = t.settings.ClientMetadataURL
	}
	preIssuer := ""
	if clientID == "" && prev != nil && prev.ClientSource == oauth.SourcePreregistered && prev.Issuer == as.Issuer {
		// Renewing a session issued to a pre-registered client: use it again.
		clientID, secret, preIssuer = prev.ClientID, prev.ClientSecret, prev.Issuer
	}
	client, err := oauth.Register(ctx, hc, as, oauth.RegisterRequest{
		Existing: existing, ClientID: clientID, ClientSecret: secret, ClientMetadataURL: cimd,
		PreregisteredIssuer: preIssuer,
		// A dynamic registration asks for this login's scopes (some servers
		// allow a client nothing else); a later login that needs more
		// updates it (RFC 7592) or registers again, with the union.
		Scopes:      scopes,
		RedirectURI: cb.RedirectURI(), ClientName: "mcpkey", Now: z.now, Progress: step,
		Audience: nonEmpty(aud),
	})
	if err != nil {
		return nil, nil, err
	}
	if client.Source == oauth.SourcePreregistered {
		step("using the pre-registered client " + client.ClientID)
	}
	if client.Source != oauth.SourcePreregistered && (existing == nil || !slices.Equal(existing.RedirectURIs, client.RedirectURIs) ||
		existing.ClientID != client.ClientID || existing.Scope != client.Scope || existing.ClientSecret != client.ClientSecret ||
		existing.RegistrationAccessToken != client.RegistrationAccessToken || !slices.Equal(existing.Audience, client.Audience)) {
		if err := store.PutClient(ctx, z.store, *client); err != nil {
			return nil, nil, fmt.Errorf("save client registration: %w", storeErr(err))
		}
	}

	if req.NoBrowser && as.DeviceAuthorizationEndpoint != "" {
		da, err := oauth.StartDevice(ctx, hc, as, client, d.Resource, scopes, oauth.WithAudience(aud), z.dpop.option(dk))
		if err == nil {
			u := da.VerificationURIComplete
			if u == "" {
				u = da.VerificationURI
			}
			ev := Event{Kind: EventLoginProgress, Time: z.now(), Server: key.server, Account: key.account,
				Message: "open " + u + " on any device and enter the code " + da.UserCode, URL: u, UserCode: da.UserCode}
			f.emit(ev)
			step("waiting for you to finish signing in (Ctrl-C cancels)")
			ts, err := da.Poll(ctx, hc)
			return client, ts, err
		}
		step("the device authorization grant failed (" + err.Error() + "); falling back to pasting the redirect URL")
	}

	flow, err := oauth.NewFlow(as, client, d.Resource, scopes, cb.RedirectURI(), oauth.WithAudience(aud), z.dpop.option(dk))
	if err != nil {
		return client, nil, err
	}
	authURL := flow.AuthCodeURL()
	if existing != nil && client.ClientID == existing.ClientID && client.Source == oauth.SourceDCR {
		if err := preflight(ctx, hc, authURL); err != nil {
			return client, nil, err
		}
	}
	state := stateOf(authURL)
	defer z.flows.add(state, cb)()

	ev := Event{Kind: EventLoginProgress, Time: z.now(), Server: key.server, Account: key.account, URL: authURL}
	if req.NoBrowser {
		ev.Message = "open this URL in a browser on any machine, sign in, then paste the address the browser ends on (it starts with " + cb.RedirectURI() + ")"
		f.emit(ev)
	} else {
		ev.Message = "opening your browser"
		f.emit(ev)
		// The browser gets a one-time loopback address that redirects to
		// authURL: its argv is world-readable, and authURL's state is what
		// proves a callback belongs to this login (issue 13 item 12).
		launch, err := cb.Launch(authURL)
		if err == nil {
			err = z.openURL(browser.WithEnv(ctx, req.Env), launch)
		}
		if err != nil {
			f.emit(Event{Kind: EventLoginProgress, Time: z.now(), Server: key.server, Account: key.account, URL: authURL,
				ShowURL: true, Message: "could not open a browser (" + err.Error() + "); open this URL yourself"})
		}
	}
	step("waiting for you to finish signing in (Ctrl-C cancels)")
	code, err := cb.Wait(ctx, flow.ValidateCallback)
	if err != nil {
		return client, nil, err
	}
	step("exchanging the authorization code")
	ts, err := flow.Exchange(ctx, hc, code)
	return client, ts, err
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// CompleteLogin hands a pasted redirect URL to the login whose state it
// carries (headless logins).
func (a *Agent) CompleteLogin(ctx context.Context, redirectURL string) error {
	u, err := url.Parse(redirectURL)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrInvalidRequest)
	}
	state := u.Query().Get("state")
	cb := a.authz.flows.get(state)
	if state == "" || cb == nil {
		return fmt.Errorf("%w: no login is waiting for that redirect URL (it has no or an unknown state)", ErrNotFound)
	}
	return cb.Deliver(ctx, redirectURL)
}

// revokeTimeout bounds the revocation a logout starts, whoever waits.
const revokeTimeout = 10 * time.Second

// Logout removes a session and, unless KeepRemote, revokes its refresh token
// at the authorization server (RFC 7009) when it offers revocation.
//
// The session is removed locally first, on a context the caller cannot
// cancel: a caller that gives up (Ctrl-C while a revocation endpoint hangs)
// must not leave the session serving tokens. The revocation then runs in
// the agent, bounded by revokeTimeout, whether or not the caller still
// waits for its answer.
func (a *Agent) Logout(ctx context.Context, req LogoutRequest) (LogoutResult, error) {
	if b := a.brokenByID(req.Server); b != nil && b.server == "" {
		// A broken session with unreadable metadata, named by its id.
		if err := a.admit(ctx, "session.logout", target{}, "", nil); err != nil {
			return LogoutResult{}, err
		}
		return a.logoutBroken(ctx, b)
	}
	t, err := a.names.resolve(req.Server)
	if err != nil {
		return LogoutResult{}, err
	}
	key := sessionKey{t.url, t.account(req.Account)}
	if err := a.admit(ctx, "session.logout", t, key.account, nil); err != nil {
		return LogoutResult{}, err
	}
	if err := a.loadFor(ctx, key); err != nil {
		return LogoutResult{}, fmt.Errorf("logout %s: read the stored session: %w", key.server, err)
	}
	a.mu.RLock()
	s := a.sessions[key]
	a.mu.RUnlock()
	if s == nil {
		if b := a.brokenFor(key); b != nil {
			return a.logoutBroken(ctx, b)
		}
		if req.ForgetClient {
			return a.forgetWithoutSession(ctx, t, key)
		}
		return LogoutResult{}, fmt.Errorf("%w: no session for %s", ErrNotFound, key.server)
	}
	s.mu.Lock()
	rec := s.rec
	// Whoever still holds s serves nothing from it any more, and a refresh
	// in flight does not write it back to the store.
	s.needsLogin, s.lastErr, s.removed = true, "logged out", true
	s.renewHotLocked()
	s.mu.Unlock()
	res := LogoutResult{Server: key.server, Account: key.account}

	lctx := context.WithoutCancel(ctx)
	if err := store.DeleteSession(lctx, a.cfg.Store, key.server, key.account); err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, fmt.Errorf("logout %s: %w", key.server, storeErr(err))
	}
	a.mu.Lock()
	if a.sessions[key] == s {
		delete(a.sessions, key)
	}
	a.mu.Unlock()
	a.events.publish(Event{Kind: EventSessionRemoved, Server: key.server, Account: key.account})
	a.pol.Audit(lctx, AuditRecord{Event: AuditLogout, Server: key.server, Account: key.account})

	// The client the session was issued to revokes its token, even when
	// the user asked to forget that client's registration below.
	var client *oauth.Client
	var clientErr error
	if !req.KeepRemote && rec.RevocationEndpoint != "" {
		client, clientErr = a.regs.forSession(lctx, t, rec)
	}
	if req.ForgetIdP && rec.Grant.IdP != "" {
		if err := a.idps.forget(lctx, rec.Grant.IdP); err != nil {
			forget(s)
			return res, fmt.Errorf("logout %s: %w", key.server, err)
		}
		res.ForgotIdP = rec.Grant.IdP
	}
	if req.ForgetClient && rec.Issuer != "" {
		// Whichever client the issuer's stored registration is: the user
		// asked for the next login to register anew.
		forgot, err := a.regs.forget(lctx, rec.Issuer, "")
		if err != nil {
			forget(s)
			return res, fmt.Errorf("logout %s: forget the client registration with %s: %w", key.server, rec.Issuer, err)
		}
		if forgot {
			res.ForgotClient = rec.Issuer
		}
	}

	switch {
	case req.KeepRemote:
		res.RevokeError = "skipped (--keep-remote)"
	case rec.RefreshToken == "" && rec.AccessToken == "":
		res.RevokeError = "nothing to revoke"
	case rec.RevocationEndpoint == "":
		res.RevokeError = "the authorization server offers no revocation endpoint"
	case clientErr != nil:
		res.RevokeError = clientErr.Error()
	default:
		done := make(chan error, 1)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			rctx, cancel := context.WithTimeout(a.bg, revokeTimeout)
			defer cancel()
			err := revoke(rctx, a.http.client(t), rec, client)
			forget(s) // rec shares s's tokens: wiped once revoked
			a.http.releaseMemory()
			if err != nil {
				a.log.Warn("revocation after logout failed", "server", key.server, "account", key.account, "err", err)
			} else {
				a.log.Info("revoked after logout", "server", key.server, "account", key.account)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				res.RevokeError = err.Error()
			} else {
				res.Revoked = true
			}
		case <-ctx.Done():
			res.RevokeError = "the caller left; the agent goes on revoking for up to " + humanDuration(revokeTimeout)
		}
		a.log.Info("logged out", "server", key.server, "account", key.account, "revoked", res.Revoked)
		return res, nil
	}
	forget(s)
	a.http.releaseMemory()
	a.log.Info("logged out", "server", key.server, "account", key.account, "revoked", res.Revoked)
	return res, nil
}

// revoke revokes rec's refresh token (else its access token) at its
// authorization server with client, the one it was issued to, over hc.
func revoke(ctx context.Context, hc *http.Client, rec store.SessionRecord, client *oauth.Client) error {
	as := &oauth.AuthServer{Issuer: rec.Issuer, TokenEndpoint: rec.TokenEndpoint, RevocationEndpoint: rec.RevocationEndpoint}
	tok, hint := rec.RefreshToken, "refresh_token"
	if tok == "" {
		tok, hint = rec.AccessToken, "access_token"
	}
	return oauth.Revoke(ctx, hc, as, client, tok, hint)
}

// forgetWithoutSession serves logout --forget-client for a server without a
// session (a login that never finished): discovery names the issuer.
func (a *Agent) forgetWithoutSession(ctx context.Context, t target, key sessionKey) (LogoutResult, error) {
	res := LogoutResult{Server: key.server, Account: key.account, RevokeError: "no session"}
	d, err := discover(ctx, a.http.client(t), t, a.log)
	if err != nil {
		return res, fmt.Errorf("logout %s --forget-client: no session, and finding its authorization server failed: %w", key.server, err)
	}
	forgot, err := a.regs.forget(ctx, d.AS.Issuer, "")
	if err != nil {
		return res, fmt.Errorf("logout %s: forget the client registration with %s: %w", key.server, d.AS.Issuer, err)
	}
	if forgot {
		res.ForgotClient = d.AS.Issuer
	}
	return res, nil
}

func redirectPort(uris []string) int {
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if _, p, err := net.SplitHostPort(u.Host); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				return n
			}
		}
	}
	return 0
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%d m", int(d.Minutes()))
	default:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
}

// stateOf returns the state parameter of an authorization URL.
func stateOf(authURL string) string {
	u, err := url.Parse(authURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("state")
}

// preflight checks a reused dynamic registration before the browser opens.
// An AS that no longer knows a client (or its redirect URI) shows the user
// an error page instead of redirecting back (it must not redirect to an
// unverified URI), so the agent would never hear of it; a GET of the
// authorization URL without cookies, not following redirects, answers 4xx
// in that case, and the login registers again. Any other answer (a login
// page, a redirect) lets the flow go on.
func preflight(ctx context.Context, hc *http.Client, authURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil // the browser will show whatever is wrong
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
		return &oauth.AuthorizeError{Code: "invalid_client", Description: fmt.Sprintf("the authorization endpoint answered HTTP %d to the stored client registration", resp.StatusCode)}
	}
	// Ory Hydra (and others) redirect to their own error page instead:
	// 302 to …?error=invalid_client. An error in the redirect is the
	// answer the browser would get; act on the ones that blame the client.
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc, err := resp.Location(); err == nil {
			q := loc.Query()
			ae := &oauth.AuthorizeError{Code: q.Get("error"), Description: q.Get("error_description")}
			if ae.Code != "" && oauth.IsInvalidClient(ae) {
				ae.Description = "the authorization endpoint redirected to an error page: " + ae.Code
				return ae
			}
		}
	}
	return nil
}

// callbacks maps a pending authorization's state to its loopback callback,
// so that a pasted redirect URL (headless logins, --no-browser) reaches the
// flow it belongs to. Its lock guards only the map.
type callbacks struct {
	mu sync.Mutex
	m  map[string]*oauth.CallbackServer
}

// add registers cb for state until the returned function is called.
func (c *callbacks) add(state string, cb *oauth.CallbackServer) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*oauth.CallbackServer)
	}
	c.m[state] = cb
	return func() {
		c.mu.Lock()
		delete(c.m, state)
		c.mu.Unlock()
	}
}

// get returns the callback waiting for state, or nil.
func (c *callbacks) get(state string) *oauth.CallbackServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[state]
}
