package agent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

const (
	// maxRefreshMargin caps how early a token is refreshed before it expires.
	maxRefreshMargin = 60 * time.Second
	// refreshTimeout bounds one refresh request, whoever waits for it.
	refreshTimeout = 30 * time.Second
	// activeWindow: a session used this recently is refreshed ahead of
	// expiry in the background; idle ones are refreshed when next asked.
	activeWindow = time.Hour
	minBackoff   = 5 * time.Second
	maxBackoff   = 5 * time.Minute
)

type sessionKey struct{ server, account string }

// session is one cached credential. Its mutex guards every field; it is never
// held across network or keyring I/O.
type session struct {
	mu sync.Mutex
	// rec is the stored record, tokens included.
	rec store.SessionRecord
	// needsLogin is set when the grant is known dead (invalid_grant).
	needsLogin bool
	// lastErr explains needsLogin or the last transient failure.
	lastErr string
	// refreshing is the refresh in flight, if any: every caller waits on it.
	refreshing *flight
	// failures counts transient refresh failures in a row; retryAt is when
	// the next attempt may start.
	failures int
	retryAt  time.Time
	// retired holds the tokens the previous adoption superseded, in memory
	// of the session's own, until the next adoption or a wipe clears them
	// (adoptLocked). dropped is set once the tokens were wiped (lock,
	// logout): the session takes no new ones.
	retired []string
	dropped bool
	// removed is set by logout: a refresh that ends afterwards keeps and
	// stores nothing.
	removed bool
	// unpersisted is set when a refreshed record could not be written to
	// the store yet: it must be, before its tokens are served.
	unpersisted bool
	lastUsed    time.Time
	// rejectLevel counts rejected tokens answered in a row and
	// lastRejectAt is when the last was reported, lastRejected a hash of
	// that token (see rejected.go).
	rejectLevel  int
	lastRejectAt time.Time
	lastRejected [sha256.Size]byte

	// hot is what Token serves without taking mu: a snapshot of the
	// current token while it is servable (nil otherwise). Every change of
	// rec, needsLogin or unpersisted goes through setLocked, which renews it.
	hot atomic.Pointer[hotToken]
	// used is lastUsed for hot serving (Unix nanoseconds).
	used atomic.Int64
	// cap is the agent's refresh_margin setting (nanoseconds; 0 = 60 s).
	cap *marginCap
	// key is the DPoP key of rec.DPoPKey, parsed (nil: a bearer session);
	// read without mu on the hot path.
	key atomic.Pointer[oauth.DPoPKey]
}

// marginCap is where a session reads the agent's refresh-margin cap.
type marginCap = atomic.Int64

// hotToken is an immutable servable token.
type hotToken struct {
	tok Token
	// staleAt is when the token enters its refresh margin.
	staleAt time.Time
}

// renewHotLocked recomputes s.hot from the fields mu guards.
func (s *session) renewHotLocked() {
	r := &s.rec
	if s.needsLogin || s.unpersisted || r.AccessToken == "" {
		s.hot.Store(nil)
		return
	}
	staleAt := r.ExpiresAt.Add(-s.margin(*r))
	if r.ExpiresAt.IsZero() {
		staleAt = neverStale // lifetime unknown: served until rejected
	}
	s.hot.Store(&hotToken{tok: s.tokenLocked(), staleAt: staleAt})
}

// neverStale is the staleAt of a token whose lifetime is unknown.
var neverStale = time.Unix(1<<62, 0)

// lastsFor reports whether a token expiring at exp is still valid for d
// after now. A zero exp is a lifetime the server did not give: such a token
// is valid (it is served until a resource server rejects it), but whether
// it lasts a further d > 0 cannot be judged.
func lastsFor(exp, now time.Time, d time.Duration) bool {
	if exp.IsZero() {
		return d <= 0
	}
	return now.Add(d).Before(exp)
}

type flight struct {
	done chan struct{}
	err  error
}

func newSession(r store.SessionRecord, cap *marginCap) *session {
	s := &session{cap: cap}
	s.adoptLocked(r)
	return s
}

// lastUsedLocked is the later of the locked and the hot path's last use.
func (s *session) lastUsedLocked() time.Time {
	if u := time.Unix(0, s.used.Load()); u.After(s.lastUsed) {
		return u
	}
	return s.lastUsed
}

// margin is how long before expiry r's token counts as stale: 10% of its
// lifetime, at most the refresh_margin setting (default a minute).
func (s *session) margin(r store.SessionRecord) time.Duration {
	life := r.ExpiresAt.Sub(r.ObtainedAt)
	if life <= 0 {
		return 0
	}
	limit := maxRefreshMargin
	if s.cap != nil {
		if c := time.Duration(s.cap.Load()); c > 0 {
			limit = c
		}
	}
	return min(limit, life/10)
}

// info is the non-secret view of s. The caller holds no lock on s.
func (s *session) info(now time.Time) SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec
	si := SessionInfo{
		Server: r.Server, Account: r.Account, Issuer: r.Issuer, ClientID: r.ClientID,
		Scopes: slices.Clone(r.Scopes), ExpiresAt: r.ExpiresAt, ObtainedAt: r.ObtainedAt,
		HasRefresh: r.RefreshToken != "", State: StateReady, Error: s.lastErr, DPoP: r.DPoPKey != "", Grant: r.Grant.Mode,
	}
	switch {
	case s.needsLogin:
		si.State = StateNeedsLogin
	case s.refreshing != nil:
		si.State = StateRefreshing
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) && !renewable(&r):
		si.State, si.Error = StateNeedsLogin, "access token expired and there is no refresh token"
	case s.failures > 0:
		si.State = StateError
	}
	return si
}

func sortSessions(ss []SessionInfo) {
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].Server != ss[j].Server {
			return ss[i].Server < ss[j].Server
		}
		return ss[i].Account < ss[j].Account
	})
}

// Token returns an access token for req.Server. The hot path is a map lookup
// under a read lock: the keyring is never touched for a cached, fresh token.
func (a *Agent) Token(ctx context.Context, req TokenRequest) (tok Token, err error) {
	var s *session
	defer func() {
		if err == nil && tok.KeyBound() {
			tok, err = a.dpop.prove(s, tok, req)
		}
		if err == nil {
			a.pol.AuditIssued(ctx, tok)
		}
	}()
	t, err := a.names.resolve(req.Server)
	if err != nil {
		return Token{}, err
	}
	key := sessionKey{t.url, t.account(req.Account)}
	if err := a.admit(ctx, "token.get", t, key.account, req.Scopes); err != nil {
		return Token{}, err
	}
	a.mu.RLock()
	s = a.sessions[key]
	a.mu.RUnlock()
	if s != nil {
		// Fast path: a fresh cached token, no locks beyond the map's.
		if tok, ok := s.hotToken(req, a.now); ok {
			return tok, nil
		}
	}
	if s == nil {
		// Not read yet after start: read this one session (only).
		if err := a.loadFor(ctx, key); err != nil {
			return Token{}, fmt.Errorf("read session %s: %w", key.server, err)
		}
		a.mu.RLock()
		s = a.sessions[key]
		a.mu.RUnlock()
	}
	if s == nil && a.brokenFor(key) == nil {
		// A configured grant without a person starts its session here.
		if ran, err := a.autoGrant(ctx, t, key); ran {
			if err != nil {
				return Token{}, err
			}
			a.mu.RLock()
			s = a.sessions[key]
			a.mu.RUnlock()
		}
	}
	if s == nil {
		if b := a.brokenFor(key); b != nil {
			return Token{}, brokenError(key, b, UnionScopes(t.settings.Scopes, req.Scopes))
		}
		nl := &NeedsLoginError{Server: key.server, Account: key.account, Scopes: UnionScopes(t.settings.Scopes, req.Scopes), Reason: "no session"}
		if a.asked.firstSince(key, a.now().Truncate(loginNeededEvery)) {
			a.events.publish(Event{Kind: EventLoginNeeded, Server: key.server, Account: key.account, Message: nl.Reason})
		}
		return Token{}, nl
	}
	// At most one refresh grant per call, whatever the server answers: a
	// token that is still not fresh after it (a short or unknown lifetime,
	// a min_ttl longer than the server grants) is served while valid.
	tok, f, err := a.tokenOrFlight(s, req, req.RejectedToken, false)
	if err != nil && s.loginNeeded() {
		// A configured grant without a person signs in again by itself
		// (grants.go), at most every grantRetryAfter.
		if ran, gerr := a.autoGrant(ctx, t, key); ran {
			if gerr != nil {
				return Token{}, gerr
			}
			a.mu.RLock()
			s2 := a.sessions[key]
			a.mu.RUnlock()
			if s2 == nil { // locked meanwhile
				return Token{}, err
			}
			s = s2
			tok, f, err = a.tokenOrFlight(s, req, "", false)
		}
	}
	for f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
		// The token the caller reported is no longer current after a
		// refresh: do not refresh again for it. A failed refresh still lets
		// a valid token through. The only flight a settled call waits for
		// is the write of a refreshed record.
		t2, f2, err2 := a.tokenOrFlight(s, TokenRequest{Scopes: req.Scopes}, "", true)
		if f.err != nil && (f2 != nil || err2 != nil || (req.RejectedToken != "" && t2.AccessToken == req.RejectedToken)) {
			return Token{}, f.err // not the token the caller just saw rejected
		}
		tok, f, err = t2, f2, err2
	}
	return tok, err
}

// tokenOrFlight returns either a servable token, an error, or the refresh
// flight to wait for. After a refresh (settled) it serves any valid token
// and starts no further refresh grant.
func (a *Agent) tokenOrFlight(s *session, req TokenRequest, rejected string, settled bool) (Token, *flight, error) {
	now := a.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.rec
	if s.needsLogin {
		return Token{}, nil, &NeedsLoginError{Server: r.Server, Account: r.Account, Scopes: UnionScopes(r.Scopes, req.Scopes), Reason: s.lastErr}
	}
	if missing := missingScopes(r.Scopes, req.Scopes); len(missing) > 0 {
		return Token{}, nil, &NeedsLoginError{Server: r.Server, Account: r.Account, Scopes: UnionScopes(r.Scopes, req.Scopes),
			Reason: fmt.Sprintf("the session lacks scope %v; a step-up login is needed", missing)}
	}
	s.lastUsed = now
	forced := rejected != "" && subtle.ConstantTimeCompare([]byte(rejected), []byte(r.AccessToken)) == 1
	if forced {
		if err := s.rejectedLocked(now); err != nil {
			if r.DPoPKey != "" {
				err = a.dpop.refusedKeyBound(r.Server, err)
			}
			return Token{}, nil, err
		}
	}
	need := max(s.margin(*r), req.MinTTL)
	fresh := lastsFor(r.ExpiresAt, now, need)
	valid := lastsFor(r.ExpiresAt, now, 0)
	if settled && valid && !s.unpersisted {
		return s.tokenLocked(), nil, nil
	}
	if s.unpersisted {
		// Persisting happens in the refresh flight; fall through to start one.
		fresh = false
	}
	if fresh && !forced {
		return s.tokenLocked(), nil, nil
	}
	if !renewable(r) && !s.unpersisted {
		if valid && !forced {
			return s.tokenLocked(), nil, nil // as fresh as it gets
		}
		reason := "the access token expired and there is no refresh token"
		if forced {
			reason = "the server rejected the access token and there is no refresh token"
		}
		return Token{}, nil, &NeedsLoginError{Server: r.Server, Account: r.Account, Scopes: UnionScopes(r.Scopes, req.Scopes), Reason: reason}
	}
	if settled {
		if s.unpersisted {
			return Token{}, a.startRefreshLocked(s), nil // a write, not a grant
		}
		return Token{}, nil, fmt.Errorf("refresh of %s gave a token that has already expired", r.Server)
	}
	if s.refreshing == nil && now.Before(s.retryAt) && !forced && !s.unpersisted {
		// Backing off after transient failures: serve a still-valid token.
		if valid {
			return s.tokenLocked(), nil, nil
		}
		return Token{}, nil, fmt.Errorf("refresh of %s is failing (%s); retrying after %s", r.Server, s.lastErr, s.retryAt.Format(time.TimeOnly))
	}
	return Token{}, a.startRefreshLocked(s), nil
}

// renewable reports whether r's token can be renewed without a person:
// with its refresh token, or by running its grant again (grants.go).
func renewable(r *store.SessionRecord) bool { return r.RefreshToken != "" || r.Grant.Mode != "" }

func (s *session) tokenLocked() Token {
	r := &s.rec
	tt := r.TokenType
	if tt == "" {
		tt = "Bearer"
	}
	if r.DPoPKey != "" {
		tt = TokenTypeDPoP
	} else if tt == TokenTypeDPoP {
		tt = TokenTypeBearer // no key to prove with: never hand out "DPoP" without one
	}
	// Scopes is shared: records are replaced, never modified in place, and
	// callers of Token must not modify it.
	return Token{AccessToken: r.AccessToken, TokenType: tt, ExpiresAt: r.ExpiresAt, Scopes: r.Scopes, Server: r.Server, Account: r.Account}
}

// startRefreshLocked returns the refresh in flight for s, starting one if
// none is: N concurrent callers cause exactly one refresh request.
func (a *Agent) startRefreshLocked(s *session) *flight {
	if s.refreshing != nil {
		return s.refreshing
	}
	f := &flight{done: make(chan struct{})}
	s.refreshing = f
	snapshot := s.rec
	unpersisted := s.unpersisted
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(a.bg, refreshTimeout)
		defer cancel()
		var err error
		if unpersisted {
			err = a.refresher.persist(ctx, s, snapshot)
		} else {
			err = a.refresher.refresh(ctx, s, snapshot)
		}
		s.mu.Lock()
		s.refreshing = nil
		f.err = err
		s.mu.Unlock()
		close(f.done)
		a.events.publish(Event{Kind: EventSessionChanged, Server: snapshot.Server, Account: snapshot.Account, Session: ptr(a.sessionInfo(s))})
	}()
	a.events.publish(Event{Kind: EventSessionChanged, Server: snapshot.Server, Account: snapshot.Account, Session: &SessionInfo{Server: snapshot.Server, Account: snapshot.Account, State: StateRefreshing}})
	return f
}

func ptr[T any](v T) *T { return &v }

// refresher is the room that renews one session's tokens: the
// refresh_token grant, or the session's grant run again (grants.go); the
// renewed record written to the store before its tokens are served; the
// outcome applied to the session (backoff, needs_login). It never touches
// the session table: startRefreshLocked runs it, at most once per session
// at a time.
type refresher struct {
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	names   *resolver
	regs    *registrations
	http    *outbound
	dpop    *dpopState
	idps    *idpSignIns
	publish func(Event)
	audit   func(AuditRecord) // into the audit log (the policy's)
}

// refresh runs one refresh_token grant for the record r and applies its
// outcome to s.
func (rf *refresher) refresh(ctx context.Context, s *session, r store.SessionRecord) error {
	if r.Grant.Mode != "" {
		return rf.regrant(ctx, s, r) // no refresh token: the grant again (grants.go)
	}
	t, err := rf.names.resolve(r.Server)
	if err != nil {
		t = target{url: r.Server}
	}
	client, err := rf.regs.forSession(ctx, t, r)
	if err != nil {
		if errors.Is(err, errClientGone) {
			return rf.failed(s, r, fmt.Errorf("refresh %s: %w", r.Server, err), false)
		}
		return rf.failed(s, r, fmt.Errorf("refresh %s: %w", r.Server, err), true)
	}
	as := &oauth.AuthServer{Issuer: r.Issuer, TokenEndpoint: r.TokenEndpoint, RevocationEndpoint: r.RevocationEndpoint}
	ts, err := oauth.Refresh(ctx, rf.http.client(t), as, client, r.Resource, r.RefreshToken, r.Scopes,
		oauth.WithAudience(rf.names.audience(t, r.Issuer, r.Resource)), rf.dpop.option(s.key.Load()))
	if err != nil {
		if !oauth.EndsGrant(err) {
			// Nothing was rejected (network, 5xx, a page that is not an
			// OAuth answer, another OAuth error): keep the session, serve a
			// still-valid token, try again with backoff.
			return rf.failed(s, r, fmt.Errorf("refresh %s: %w", r.Server, err), true)
		}
		// invalid_grant and friends: someone else may have refreshed (an
		// older agent, a restored backup): re-read the store before giving
		// up on the grant.
		if stored, lerr := store.LoadSession(ctx, rf.store, r.Server, r.Account); lerr == nil &&
			stored.RefreshToken != "" && stored.RefreshToken != r.RefreshToken {
			s.mu.Lock()
			s.failures, s.retryAt, s.lastErr = 0, time.Time{}, ""
			s.adoptLocked(stored)
			s.mu.Unlock()
			rf.log.Info("refresh token was rotated elsewhere; adopted the stored one", "server", r.Server)
			return nil
		}
		return rf.failed(s, r, fmt.Errorf("refresh %s: %w", r.Server, err), false)
	}
	return rf.renewed(ctx, s, r, r, client, ts)
}

// renewed makes ts, the answer of a refresh or of a grant run again
// for the record r, the session's tokens (next is r with whatever the
// grant changed), then writes them to the store.
func (rf *refresher) renewed(ctx context.Context, s *session, r, next store.SessionRecord, client *oauth.Client, ts *oauth.TokenSet) error {
	next = refreshedRecord(next, client, ts, rf.now)
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		ts.Wipe()
		rf.log.Info("a refresh ended after logout; its tokens were dropped", "server", r.Server, "account", r.Account)
		return nil
	}
	// Keep the rotated refresh token in memory even if the write below fails:
	// the old one is already spent.
	s.unpersisted = true
	s.failures, s.retryAt, s.lastErr = 0, time.Time{}, ""
	if !next.ExpiresAt.IsZero() && !lastsFor(next.ExpiresAt, next.ObtainedAt, s.margin(next)+time.Second) {
		// A token that expires at once: back off as after a failure, or
		// the refresh loop would ask again and again.
		s.failures = 1
		s.retryAt = next.ObtainedAt.Add(minBackoff)
		s.lastErr = "the authorization server issued an access token that has already expired"
	}
	s.adoptLocked(next)
	s.mu.Unlock()
	var expiresIn any = "unknown"
	if !next.ExpiresAt.IsZero() {
		expiresIn = next.ExpiresAt.Sub(rf.now()).Round(time.Second)
	}
	rf.log.Info("token refreshed", "server", r.Server, "account", r.Account, "expires_in", expiresIn)
	rf.audit(AuditRecord{Event: AuditRefresh, Server: r.Server, Account: r.Account, Scopes: next.Scopes, ExpiresAt: next.ExpiresAt})
	err := rf.persist(ctx, s, next)
	ts.Wipe() // the session holds its own copies
	return err
}

// refreshedRecord is r after the refresh grant ts, made with client, on
// the agent's clock now. Its tokens are ts's (not copies): the caller wipes
// ts only after the session took its own.
func refreshedRecord(r store.SessionRecord, client *oauth.Client, ts *oauth.TokenSet, now func() time.Time) store.SessionRecord {
	next := r
	key := next.ClientSecret
	recordClient(&next, client) // a record from before clients were recorded gets its client
	if client.Key != nil {
		next.ClientSecret = key // the private_key_jwt key stays with the session
	}
	next.AccessToken = ts.AccessToken
	if ts.TokenType != "" {
		next.TokenType = ts.TokenType
	}
	if !strings.EqualFold(next.TokenType, TokenTypeDPoP) {
		next.DPoPKey = "" // the AS answered a bearer token: nothing to prove any more
	}
	if ts.RefreshToken != "" {
		next.RefreshToken = ts.RefreshToken
	}
	next.ExpiresAt = onOurClock(now, ts.ExpiresAt)
	next.ObtainedAt = now()
	if len(ts.Scopes) > 0 {
		next.Scopes = ts.Scopes
	}
	return next
}

// persist writes r (a refreshed record) before its tokens may be served.
func (rf *refresher) persist(ctx context.Context, s *session, r store.SessionRecord) error {
	if err := store.PutSession(ctx, rf.store, r); err != nil {
		rf.log.Error("could not persist refreshed tokens; will retry", "server", r.Server, "err", err)
		return fmt.Errorf("persist refreshed session %s: %w", r.Server, storeErr(err))
	}
	s.mu.Lock()
	if s.rec.RefreshToken == r.RefreshToken && s.rec.AccessToken == r.AccessToken {
		s.unpersisted = false
		s.renewHotLocked()
	}
	s.mu.Unlock()
	return nil
}

func (rf *refresher) failed(s *session, r store.SessionRecord, err error, transient bool) error {
	s.mu.Lock()
	if transient {
		s.failures++
		backoff := min(maxBackoff, minBackoff<<min(s.failures-1, 10))
		s.retryAt = rf.now().Add(backoff)
		s.lastErr = err.Error()
		s.mu.Unlock()
		rf.log.Warn("refresh failed; credentials kept, will retry", "server", r.Server, "err", err, "retry_in", backoff)
		return err
	}
	s.needsLogin = true
	s.renewHotLocked()
	var te *oauth.TokenError
	switch {
	case errors.Is(err, errClientGone):
		s.lastErr = err.Error()
	case oauth.IsInvalidClient(err):
		s.lastErr = fmt.Sprintf("the authorization server no longer accepts client %s that this session was issued to; log in again", r.ClientID)
	default:
		s.lastErr = "the authorization server rejected the refresh token; log in again"
	}
	if errors.As(err, &te) && te.Code != "" {
		s.lastErr += " (" + te.Code + ")"
	}
	reason := s.lastErr
	s.mu.Unlock()
	if oauth.IsInvalidClient(err) {
		if note := rf.regs.forgetRejected(r); note != "" {
			reason += "; " + note
			s.mu.Lock()
			s.lastErr = reason
			s.mu.Unlock()
		}
	}
	rf.log.Warn("session needs login", "server", r.Server, "account", r.Account, "err", err)
	rf.publish(Event{Kind: EventLoginNeeded, Server: r.Server, Account: r.Account, Message: reason})
	return &NeedsLoginError{Server: r.Server, Account: r.Account, Scopes: r.Scopes, Reason: reason}
}

// wakeup is the refresh scheduler's doorbell: loop runs due (refreshDue)
// when the time due last returned has passed, or when nudged (a session
// was added or read back).
type wakeup chan struct{}

// loop refreshes active sessions ahead of expiry, so a caller rarely waits
// for a refresh, until ctx ends.
func (w wakeup) loop(ctx context.Context, due func() time.Duration) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := due()
		timer.Reset(max(next, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-w:
		}
	}
}

// refreshDue starts the refreshes that are due and returns how long until
// the next one is.
func (a *Agent) refreshDue() time.Duration {
	now := a.now()
	next := time.Hour
	a.mu.RLock()
	ss := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		ss = append(ss, s)
	}
	a.mu.RUnlock()
	for _, s := range ss {
		s.mu.Lock()
		r := s.rec
		active := now.Sub(s.lastUsedLocked()) < activeWindow || now.Sub(r.ObtainedAt) < activeWindow
		// A token whose lifetime is unknown is refreshed only when a
		// resource server rejects it (or a caller's min_ttl asks).
		unknown := r.ExpiresAt.IsZero() && s.retryAt.IsZero()
		if s.needsLogin || !renewable(&r) || !active || s.refreshing != nil || (unknown && !s.unpersisted) {
			s.mu.Unlock()
			continue
		}
		due := r.ExpiresAt.Add(-s.margin(r))
		if s.retryAt.After(due) {
			due = s.retryAt
		}
		if !due.After(now) || s.unpersisted {
			a.startRefreshLocked(s)
		} else if d := due.Sub(now); d < next {
			next = d
		}
		s.mu.Unlock()
	}
	return next
}

func (w wakeup) nudge() {
	select {
	case w <- struct{}{}:
	default:
	}
}

func missingScopes(have, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// UnionScopes returns a ∪ b in first-seen order (the scopes a step-up
// login asks for: SEP-2350).
func UnionScopes(a, b []string) []string { return oauth.UnionScopes(a, b) }

// onOurClock moves an expiry that package oauth computed on the wall clock
// onto the agent's clock now (Config.Now), keeping the remaining lifetime.
func onOurClock(now func() time.Time, t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return now().Add(time.Until(t))
}

// HasScopes reports whether have holds every scope in want.
func HasScopes(have, want []string) bool { return len(missingScopes(have, want)) == 0 }

// loginNeededEvery is how often a caller asking for a server without a
// session is announced: a client polling in a loop must not flood the event
// stream (and empty every bridge's token cache) on each call.
const loginNeededEvery = 10 * time.Second

// announced records when a caller without a session was last announced
// (login.needed), per window. Its lock guards only the map.
type announced struct {
	mu sync.Mutex
	m  map[sessionKey]time.Time
}

// firstSince reports whether key has not been announced in the window
// that starts at window, and records that it now has.
func (n *announced) firstSince(key sessionKey, window time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m[key] == window {
		return false
	}
	if n.m == nil || len(n.m) >= maxResolved {
		n.m = make(map[sessionKey]time.Time)
	}
	n.m[key] = window
	return true
}

// hotToken returns s's current token, without taking its lock, when it can
// serve req as is: fresh (before its refresh margin), valid for MinTTL
// more, with every scope asked for, and not reported rejected. It marks s
// used.
func (s *session) hotToken(req TokenRequest, clock func() time.Time) (Token, bool) {
	h := s.hot.Load()
	if h == nil || req.RejectedToken != "" {
		return Token{}, false
	}
	now := clock()
	if now.Before(h.staleAt) && lastsFor(h.tok.ExpiresAt, now, req.MinTTL) && HasScopes(h.tok.Scopes, req.Scopes) {
		s.used.Store(now.UnixNano())
		return h.tok, true
	}
	return Token{}, false
}
