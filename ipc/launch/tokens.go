package launch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// tokenMaxAge bounds how long a launcher reuses a token without asking the
// agent: the agent still sees an active launcher at least this often (for
// lock_after_idle, approvals and its audit log).
const tokenMaxAge = time.Minute

// tokenCache lets a launcher reuse the access token the agent last gave it,
// so that a message costs no token.get round trip. The agent remains the
// only refresher; the cache never asks for a new token on its own:
//
//   - a RejectedToken (the server answered 401) always goes to the agent;
//   - a key-bound (DPoP) token is never cached: its proof is for one
//     request only;
//   - a token is reused for at most half its remaining lifetime and at most
//     tokenMaxAge, and only for the same scopes;
//   - any agent event (lock, session changed or removed, refresh, login,
//     config reload) empties it, and so does a login the launcher runs;
//   - it is used only while the launcher is subscribed to the agent's
//     events: without them (a restricted socket, a lost connection) every
//     request asks the agent, as before.
//
// The token lives only in this process's memory, as it does in any HTTP
// client.
type tokenCache struct {
	client *ipc.Client
	now    func() time.Time

	// mu guards the fields below.
	mu       sync.Mutex
	watching bool
	gen      uint64 // bumped by every invalidation
	tok      agent.Token
	scopes   []string // the request scopes tok answered
	account  string
	until    time.Time
}

func newTokenCache(c *ipc.Client) *tokenCache {
	return &tokenCache{client: c, now: time.Now}
}

// Token is an AuthTransport Token.
func (c *tokenCache) Token(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
	c.mu.Lock()
	if req.RejectedToken == "" && c.watching && c.tok.AccessToken != "" && c.account == req.Account &&
		slices.Equal(c.scopes, req.Scopes) && c.now().Before(c.until) {
		tok := c.tok
		c.mu.Unlock()
		return tok, nil
	}
	gen := c.gen
	c.mu.Unlock()
	tok, err := c.client.Token(ctx, req)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.clearLocked()
		return tok, err
	}
	// An event that arrived while we asked may concern this very token. A
	// key-bound token is never reused: each request needs the agent's
	// fresh proof (RFC 9449).
	if c.watching && gen == c.gen && !tok.KeyBound() {
		c.tok, c.scopes, c.account = tok, slices.Clone(req.Scopes), req.Account
		c.until = now.Add(tokenMaxAge)
		if !tok.ExpiresAt.IsZero() { // zero: no lifetime given, kept until rejected or an event
			c.until = now.Add(min(tokenMaxAge, tok.ExpiresAt.Sub(now)/2))
		}
	}
	return tok, nil
}

// invalidate empties the cache.
func (c *tokenCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

func (c *tokenCache) clearLocked() {
	c.tok, c.scopes, c.until = agent.Token{}, nil, time.Time{}
	c.gen++
}

// watch subscribes to the agent's events and empties the cache on each,
// re-subscribing with backoff after a lost connection, until ctx ends or
// the agent refuses the subscription (a restricted socket).
// The cache is used only while subscribed.
func (c *tokenCache) watch(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		ch, err := c.client.Watch(ctx)
		var refused *ipc.Error
		if errors.As(err, &refused) {
			return // the agent answered: this socket serves no events
		}
		if err == nil {
			c.mu.Lock()
			c.watching = true
			c.clearLocked()
			c.mu.Unlock()
			backoff = time.Second
			for range ch {
				c.invalidate()
			}
			c.mu.Lock()
			c.watching = false
			c.clearLocked()
			c.mu.Unlock()
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}
