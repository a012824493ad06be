package agent

import (
	"crypto/sha256"
	"time"
)

// No login loops. A resource server that rejects every token the
// authorization server issues (most often because the token's audience is
// not the server, as with Ory Hydra without resource_as_audience) would
// otherwise send every 401 handler (probe, bridge, proxy, Client.Transport)
// round refresh → login → refresh → login. The agent keeps, per session, a
// level of rejections answered in a row: a token a resource server rejects
// while it is fresh, when it was issued in answer to the previous rejection,
// raises the level; any other rejected token starts again at one.
//
//  1. a refresh (no browser; a login when there is no refresh token);
//  2. needs_login: the one extra sign-in;
//  3. ErrTokenRejected, with a sentence that names the likely cause, and
//     never another login: the level stays there, so a session left with a
//     rejected token never opens a browser on its own again. A login the
//     user starts lowers it to two.
const (
	rejectRefresh = 1
	rejectLogin   = 2
	rejectGiveUp  = 3
	// freshTokenAge: a token rejected within this long of being issued (and
	// within the first half of its lifetime) counts as freshly issued.
	freshTokenAge = time.Minute
	// answerWindow: a token issued this soon after a rejection answers it
	// (a login may take the user a few minutes).
	answerWindow = 10 * time.Minute
)

// freshLocked reports whether the session's current token was issued
// moments ago.
func (s *session) freshLocked(now time.Time) bool {
	r := &s.rec
	if r.ObtainedAt.IsZero() {
		return false
	}
	window := freshTokenAge
	if life := r.ExpiresAt.Sub(r.ObtainedAt); life > 0 {
		window = min(window, life/2)
	}
	return now.Sub(r.ObtainedAt) < window
}

// rejectedLocked records that a resource server rejected the session's
// current token and says what to do: an error to answer with (a
// *NeedsLoginError for the one extra sign-in, or a *TokenRejectedError), or
// nil to refresh as usual.
func (s *session) rejectedLocked(now time.Time) error {
	r := &s.rec
	sum := sha256.Sum256([]byte(r.AccessToken))
	switch {
	case s.rejectLevel >= rejectGiveUp:
	case sum == s.lastRejected:
		// The same token again (another caller, or a retry): the same answer.
	default:
		answered := !s.lastRejectAt.IsZero() && !r.ObtainedAt.Before(s.lastRejectAt) &&
			r.ObtainedAt.Sub(s.lastRejectAt) < answerWindow && s.freshLocked(now)
		if !answered {
			s.rejectLevel = 0
		}
		s.rejectLevel++
		s.lastRejectAt, s.lastRejected = now, sum
		if s.rejectLevel == rejectRefresh && r.RefreshToken == "" {
			s.rejectLevel = rejectLogin
		}
	}
	switch s.rejectLevel {
	case rejectRefresh:
		return nil
	case rejectLogin:
		return &NeedsLoginError{Server: r.Server, Account: r.Account, Scopes: r.Scopes,
			Reason: "the server rejected a freshly issued token (its audience may not match); one more sign-in may help"}
	}
	return &TokenRejectedError{Server: r.Server}
}

// inheritRejects carries the rejection level from a session's previous
// record to the one a login just made: the extra sign-in must not start
// over. After the agent gave up, a new login (the user's) starts at the
// second level: if its token is rejected too, the answer is the error at
// once, not another browser window.
func (s *session) inheritRejects(old *session) {
	if old == nil {
		return
	}
	old.mu.Lock()
	level, at, last := old.rejectLevel, old.lastRejectAt, old.lastRejected
	old.mu.Unlock()
	if level >= rejectGiveUp {
		at = s.rec.ObtainedAt // this login answers the rejection outstanding
	}
	s.rejectLevel, s.lastRejectAt, s.lastRejected = min(level, rejectLogin), at, last
}
