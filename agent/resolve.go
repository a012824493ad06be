package agent

import (
	"fmt"
	"sync"
)

// target is a resolved server reference.
type target struct {
	url      string         // canonical MCP endpoint URL: the session key
	settings ServerSettings // zero when not configured
}

// account is the account a request for t means: account, or when that is
// "" the server's configured one.
func (t target) account(account string) string {
	if account == "" {
		return t.settings.Account
	}
	return account
}

// maxResolved bounds the resolve cache (callers may name any URL).
const maxResolved = 256

// resolver is the agent's room for naming servers: it turns a configured
// name or a URL into a target, and caches the answers until the settings
// change (reset): token.get resolves on every call.
type resolver struct {
	settings func() *Settings // the settings in force
	mu       sync.RWMutex     // guards cache
	cache    map[string]target
}

// audience is the audience parameter for t's logins and refreshes at
// issuer: the resource when resource_as_audience is set for the server or
// the issuer, else "" (none sent).
func (r *resolver) audience(t target, issuer, resource string) string {
	if r.settings().ResourceAsAudience(t.settings, issuer) {
		return resource
	}
	return ""
}

// resolve turns a configured name or a URL into a target.
func (r *resolver) resolve(ref string) (target, error) {
	r.mu.RLock()
	t, ok := r.cache[ref]
	r.mu.RUnlock()
	if ok {
		return t, nil
	}
	t, err := r.resolveSlow(ref)
	if err == nil {
		r.mu.Lock()
		if r.cache == nil || len(r.cache) >= maxResolved {
			r.cache = make(map[string]target)
		}
		r.cache[ref] = t
		r.mu.Unlock()
	}
	return t, err
}

// reset forgets the cached answers (the settings changed).
func (r *resolver) reset() {
	r.mu.Lock()
	clear(r.cache)
	r.mu.Unlock()
}

func (r *resolver) resolveSlow(ref string) (target, error) {
	if ref == "" {
		return target{}, fmt.Errorf("%w: no server given", ErrInvalidRequest)
	}
	if ss, ok := r.settings().Server(ref); ok {
		u, err := CanonicalServerURL(ss.URL)
		if err != nil {
			return target{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		return target{url: u, settings: ss}, nil
	}
	u, err := CanonicalServerURL(ref)
	if err != nil {
		return target{}, fmt.Errorf("%w: %q is neither a configured server nor a URL (%v)", ErrNotFound, redactURL(ref), err)
	}
	return target{url: u}, nil
}
