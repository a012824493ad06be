package agent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/agent/internal/wipe"
	"github.com/mcpkey/mcpkey/agent/store"
)

// Cold start (issue 12 §9): the agent answers on its socket before it has
// read a single session. New (and Unlock) only list the stored sessions'
// ids, one Keys call; a background loader then reads them one by one, and
// a request for a session not read yet reads that session at once (or
// waits for the loader, which is already on it), never for the others.
// With the file backend a session costs about 10 ms (three items, each a
// key derivation), so 1,000 sessions took 10 s before the socket answered.

// pendingLoad is a stored session listed but not read yet.
type pendingLoad struct {
	id      string
	claimed atomic.Bool   // set by whoever reads it
	done    chan struct{} // closed once it is read (or given up on)
	err     error         // why it could not be read (the store failed); set before done closes
	lastErr string        // why the read before this one failed ("" for the first)
}

// brokenSession is a stored session whose items cannot be read (garbage,
// zero bytes, a directory in an item's place). It is listed, named, and
// removed by logout; the other sessions are served as usual.
type brokenSession struct {
	id              string
	server, account string // "" when the meta item itself is unreadable
	err             string // names the item, never its content
}

func (b *brokenSession) info(backend string) SessionInfo {
	return SessionInfo{
		Server: b.server, Account: b.account, ID: b.id, State: StateBroken, StoreBackend: backend,
		Error: "the stored session cannot be read (" + b.err + "); `mcpkey logout " + b.name() + "` removes it",
	}
}

// name is how logout can name b: its server, or its id.
func (b *brokenSession) name() string {
	if b.server == "" {
		return b.id
	}
	if b.account != "" {
		return b.server + " --account " + b.account
	}
	return b.server
}

// loadHead is how long beginLoad waits for the background loader before
// it returns: a small store is read whole before the socket opens (as
// before), a large or slow one never delays it by more than this.
const loadHead = 20 * time.Millisecond

// beginLoad lists the stored sessions and starts reading them in the
// background; it returns once they are read or after loadHead, whichever
// comes first. It returns how many sessions are stored.
func (a *Agent) beginLoad(ctx context.Context) (int, error) {
	ids, err := store.SessionIDs(ctx, a.cfg.Store)
	if err != nil {
		return 0, err
	}
	pending := make(map[string]*pendingLoad, len(ids))
	order := make([]*pendingLoad, 0, len(ids))
	for _, id := range ids {
		p := &pendingLoad{id: id, done: make(chan struct{})}
		pending[id] = p
		order = append(order, p)
	}
	loaded := make(chan struct{})
	a.mu.Lock()
	a.pending, a.broken, a.loaded = pending, make(map[string]*brokenSession), loaded
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(loaded)
		for _, p := range order {
			if a.bg.Err() != nil {
				return
			}
			a.load(p)
			<-p.done // a request may have claimed it: one read at a time
		}
		a.mu.RLock()
		n, broken := len(a.sessions), len(a.broken)
		a.mu.RUnlock()
		a.log.Info("sessions loaded", "sessions", n, "broken", broken)
	}()
	head := time.NewTimer(loadHead)
	defer head.Stop()
	select {
	case <-loaded:
	case <-head.C:
	case <-ctx.Done():
	}
	return len(ids), nil
}

// load reads p's session unless someone else already does.
func (a *Agent) load(p *pendingLoad) {
	if !p.claimed.CompareAndSwap(false, true) {
		return
	}
	defer close(p.done)
	a.mu.RLock()
	current := a.pending[p.id] == p
	a.mu.RUnlock()
	if !current { // locked meanwhile, or replaced by a login
		return
	}
	rec, err := store.LoadSessionByID(a.bg, a.cfg.Store, p.id)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[p.id] != p {
		return
	}
	delete(a.pending, p.id)
	key := sessionKey{rec.Server, rec.Account}
	switch {
	case err == nil:
		if a.sessions[key] == nil {
			a.sessions[key] = newLoadedSession(rec, &a.marginCap)
		} else { // a login meanwhile wrote a newer one: drop what was read
			wipe.String(rec.AccessToken)
			wipe.String(rec.RefreshToken)
		}
	case errors.Is(err, store.ErrCorrupt):
		a.broken[p.id] = &brokenSession{id: p.id, server: rec.Server, account: rec.Account, err: err.Error()}
		a.log.Warn("stored session is broken; serving the others", "id", p.id, "server", rec.Server, "err", err)
	case a.bg.Err() != nil: // closing
	default:
		// The store failed, not the item: read it again when asked.
		p.err = storeErr(err)
		a.pending[p.id] = &pendingLoad{id: p.id, done: make(chan struct{}), lastErr: p.err.Error()}
		a.log.Warn("stored session could not be read; will retry when asked", "id", p.id, "err", err)
	}
}

// loadFor makes sure the stored session for key, if any, has been read:
// it reads it now when the background loader has not come to it, or waits
// for the loader. Only that session is waited for.
func (a *Agent) loadFor(ctx context.Context, key sessionKey) error {
	id := store.SessionID(key.server, key.account)
	a.mu.RLock()
	p := a.pending[id]
	a.mu.RUnlock()
	if p == nil {
		return nil
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.load(p) // returns at once when the loader has it
	}()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allLoaded waits until the background loader is through.
func (a *Agent) allLoaded(ctx context.Context) error {
	a.mu.RLock()
	loaded := a.loaded
	a.mu.RUnlock()
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// brokenFor returns the broken session stored for key, if any.
func (a *Agent) brokenFor(key sessionKey) *brokenSession {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.broken[store.SessionID(key.server, key.account)]
}

// brokenError is Token's answer for a broken session: a login replaces
// its items, logout removes them.
func brokenError(key sessionKey, b *brokenSession, scopes []string) error {
	return &NeedsLoginError{Server: key.server, Account: key.account, Scopes: scopes,
		Reason: "the stored session cannot be read (" + b.err + "); sign in again, or `mcpkey logout " + b.name() + "` removes it"}
}

// logoutBroken removes a broken session's items.
func (a *Agent) logoutBroken(ctx context.Context, b *brokenSession) (LogoutResult, error) {
	if err := store.DeleteSessionByID(context.WithoutCancel(ctx), a.cfg.Store, b.id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return LogoutResult{}, fmt.Errorf("logout %s: %w", b.name(), storeErr(err))
	}
	a.mu.Lock()
	delete(a.broken, b.id)
	a.mu.Unlock()
	a.events.publish(Event{Kind: EventSessionRemoved, Server: b.server, Account: b.account})
	a.pol.Audit(ctx, AuditRecord{Event: AuditLogout, Server: b.server, Account: b.account})
	a.log.Info("removed a broken session", "id", b.id, "server", b.server)
	return LogoutResult{Server: b.server, Account: b.account, RevokeError: "the stored session could not be read, so there was nothing to revoke"}, nil
}

// brokenByID returns the broken session whose id is ref, if any.
func (a *Agent) brokenByID(ref string) *brokenSession {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.broken[ref]
}
