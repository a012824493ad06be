package browser

import (
	"context"
	"sync"
)

// Stub is an Opener for tests: it checks URLs like Open, records them and
// runs OnOpen (if set) instead of a browser. Use s.Open as the Opener.
type Stub struct {
	// OnOpen, if set, is called with each accepted URL; its error is
	// returned from Open. It runs on the caller's goroutine: a stub that
	// follows the URL to a callback listener should do so in a goroutine.
	OnOpen func(ctx context.Context, url string) error

	mu   sync.Mutex // guards urls and envs
	urls []string
	envs []Env
}

// Open records url after the same URL check the real Open makes.
func (s *Stub) Open(ctx context.Context, url string) error {
	if err := CheckURL(url); err != nil {
		return err
	}
	s.mu.Lock()
	s.urls = append(s.urls, url)
	e, _ := EnvFrom(ctx)
	s.envs = append(s.envs, e)
	s.mu.Unlock()
	if s.OnOpen != nil {
		return s.OnOpen(ctx, url)
	}
	return nil
}

// URLs returns the URLs opened so far, oldest first.
func (s *Stub) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.urls...)
}

// Envs returns the caller environment (WithEnv) each Open saw, oldest
// first; the zero Env where none was attached.
func (s *Stub) Envs() []Env {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Env(nil), s.envs...)
}

var _ Opener = (&Stub{}).Open
var _ Opener = Open
