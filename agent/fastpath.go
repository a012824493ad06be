package agent

import "context"

// CachedToken answers req without waiting for anything: ok is true only
// when Token would hand out this same token at once, that is when the
// caller is admitted without an approval to wait for (restricted socket,
// lock, deny rules, confirm: the decisions admit makes, shared through
// admitQuick) and the session's token is fresh, has MinTTL to spare and
// every scope asked for. It audits an issued token as Token does. When ok
// is false nothing was decided or written: the caller falls back to Token,
// which refuses, waits, refreshes or answers as usual.
func (a *Agent) CachedToken(ctx context.Context, req TokenRequest) (Token, bool) {
	if req.RejectedToken != "" {
		return Token{}, false
	}
	t, err := a.resolve(req.Server)
	if err != nil {
		return Token{}, false
	}
	key := sessionKey{t.url, a.accountFor(t, req.Account)}
	if !a.admitQuick(ctx, "token.get", t, key.account).admitted {
		return Token{}, false
	}
	a.mu.RLock()
	s := a.sessions[key]
	a.mu.RUnlock()
	if s == nil {
		return Token{}, false
	}
	tok, ok := a.hotToken(s, req)
	if ok {
		a.auditIssued(ctx, tok)
	}
	return tok, ok
}

// hotToken returns s's current token, without taking its lock, when it can
// serve req as is: fresh (before its refresh margin), valid for MinTTL
// more, with every scope asked for, and not reported rejected. It marks s
// used.
func (a *Agent) hotToken(s *session, req TokenRequest) (Token, bool) {
	h := s.hot.Load()
	if h == nil || req.RejectedToken != "" {
		return Token{}, false
	}
	now := a.now()
	if now.Before(h.staleAt) && lastsFor(h.tok.ExpiresAt, now, req.MinTTL) && HasScopes(h.tok.Scopes, req.Scopes) {
		s.used.Store(now.UnixNano())
		return h.tok, true
	}
	return Token{}, false
}
