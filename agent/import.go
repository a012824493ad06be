package agent

import (
	"context"
	"fmt"

	"github.com/mcpkey/mcpkey/agent/oauth"
	"github.com/mcpkey/mcpkey/agent/store"
)

// Import adopts a session another tool obtained and kept in a plain file
// (mcpkey import mcp-remote), with the client its tokens were issued to.
//
// It discovers req.Server's authorization server as a login does (the
// issuer, token and revocation endpoints are recorded from discovery, never
// taken from the file), refuses a client registered with another
// authorization server, and runs one refresh with that client: only a
// refresh token that works is kept, and it is the refreshed tokens that
// are stored, as a login's result. A refresh that fails keeps nothing; the
// caller's files are the only copy and are left alone. A server that
// already has a usable session for the account is refused (invalid
// request): the import never replaces a session; a session that needs a
// login is replaced. Once the refresh is sent, the import finishes (bounded
// by the refresh timeout) even if the caller leaves: the other tool's copy
// of the refresh token may already be spent.
func (a *Agent) Import(ctx context.Context, req ImportRequest) (SessionInfo, error) {
	t, err := a.names.resolve(req.Server)
	if err != nil {
		return SessionInfo{}, err
	}
	key := sessionKey{t.url, t.account(req.Account)}
	if req.RefreshToken == "" {
		return SessionInfo{}, fmt.Errorf("%w: import %s: no refresh token", ErrInvalidRequest, t.url)
	}
	if req.Client.ClientID == "" {
		return SessionInfo{}, fmt.Errorf("%w: import %s: no client id", ErrInvalidRequest, t.url)
	}
	if err := a.admit(ctx, "session.import", t, key.account, req.Scopes); err != nil {
		return SessionInfo{}, err
	}
	if err := a.loadFor(ctx, key); err != nil {
		return SessionInfo{}, fmt.Errorf("import %s: read the stored session: %w", t.url, err)
	}
	a.mu.RLock()
	existed := a.sessions[key] != nil
	a.mu.RUnlock()
	if a.usable(key) {
		who := ""
		if key.account != "" {
			who = " (account " + key.account + ")"
		}
		return SessionInfo{}, fmt.Errorf("%w: mcpkey already has a session for %s%s", ErrInvalidRequest, t.url, who)
	}
	d, err := discover(ctx, a.http.client(t), t, a.log)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("import %s: %w", t.url, err)
	}
	as := d.AS
	if req.Client.Issuer != "" && req.Client.Issuer != as.Issuer {
		return SessionInfo{}, fmt.Errorf("%w: import %s: the client was registered with %s, but the server now names the authorization server %s",
			ErrInvalidRequest, t.url, req.Client.Issuer, as.Issuer)
	}
	client := &oauth.Client{Issuer: as.Issuer, ClientID: req.Client.ClientID, ClientSecret: req.Client.ClientSecret,
		TokenEndpointAuthMethod: req.Client.TokenEndpointAuthMethod, Source: oauth.SourceDCR}
	if client.TokenEndpointAuthMethod == "" {
		client.TokenEndpointAuthMethod = "none"
		if client.ClientSecret != "" {
			client.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2's default
		}
	}
	rec := store.SessionRecord{
		Server: key.server, Account: key.account, Issuer: as.Issuer,
		TokenType: req.TokenType, AccessToken: req.AccessToken, RefreshToken: req.RefreshToken,
		ExpiresAt: req.ExpiresAt, ObtainedAt: a.now(), Scopes: req.Scopes,
		Resource: d.Resource, TokenEndpoint: as.TokenEndpoint, RevocationEndpoint: as.RevocationEndpoint,
	}
	// From the refresh on, the caller leaving (Ctrl-C) must not lose the
	// rotated refresh token: the one in the other tool's file is spent.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	ts, err := oauth.Refresh(ctx, a.http.client(t), as, client, rec.Resource, rec.RefreshToken, rec.Scopes,
		oauth.WithAudience(a.names.audience(t, as.Issuer, rec.Resource)))
	if err != nil {
		return SessionInfo{}, fmt.Errorf("import %s: the refresh token does not work: %w", t.url, err)
	}
	defer ts.Wipe() // after the session took its own copies of rec's tokens
	rec = refreshedRecord(rec, client, ts, a.now)
	if a.usable(key) {
		// A login finished while this import refreshed: keep that one.
		return SessionInfo{}, fmt.Errorf("%w: a login to %s finished during the import; kept that session", ErrInvalidRequest, t.url)
	}
	if err := store.PutSession(ctx, a.cfg.Store, rec); err != nil {
		if !existed {
			// A new session written in part: take the orphans back out.
			_ = store.DeleteSession(a.bg, a.cfg.Store, key.server, key.account)
		}
		return SessionInfo{}, fmt.Errorf("import %s: save session: %w", t.url, storeErr(err))
	}
	info := a.adoptStored(key, rec, rec.ObtainedAt)
	a.log.Info("session imported", "server", key.server, "account", key.account, "issuer", as.Issuer, "from", req.From)
	a.pol.Audit(a.bg, AuditRecord{Event: AuditImport, Server: key.server, Account: key.account, Scopes: rec.Scopes, ExpiresAt: rec.ExpiresAt, Reason: req.From})
	return info, nil
}

// usable reports whether key has a session that serves tokens (one that
// needs a login does not).
func (a *Agent) usable(key sessionKey) bool {
	a.mu.RLock()
	s := a.sessions[key]
	a.mu.RUnlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.needsLogin && !s.removed
}
