package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/ipc"
)

// restriction marks a Server that serves a restricted socket.
type restriction struct {
	path    string
	servers []string
}

// restrictedSet is the restricted sockets of a Server. The zero value
// serves none until EnableRestricted.
type restrictedSet struct {
	mu    sync.Mutex // guards the fields below
	ctx   context.Context
	dir   string
	socks map[string]*restrictedSock
}

type restrictedSock struct {
	info  ipc.RestrictedSocket
	stop  context.CancelFunc
	done  chan struct{}
	timer *time.Timer
}

// handler picks the handler for method from the protocol table: every
// method on a normal server; on a restricted one the methods the table marks
// Restricted (the agent's policy checks token.get against its servers: the
// request's context carries them), and a denied error for anything else,
// known or not.
func (s *Server) handler(method string) handler {
	m, ok := ipc.LookupMethod(method)
	switch {
	case !ok:
		if s.restrict != nil {
			return handleRefused
		}
		return nil
	case s.restrict == nil:
		return handlers[method]
	case !m.Restricted:
		return handleRefused
	case method == ipc.MethodHello:
		return handleRestrictedHello
	}
	return handlers[method]
}

func handleRestrictedHello(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	res, after, err := handleHello(ctx, c, m)
	if hr, ok := res.(ipc.HelloResult); ok {
		hr.Capabilities = helloCapabilities(func(m ipc.Method) bool { return m.Restricted })
		res = hr
	}
	return res, after, err
}

func handleRefused(ctx context.Context, c *conn, m *ipc.Message) (any, func(), error) {
	return nil, nil, &ipc.Error{Code: ipc.CodeDenied, Message: "not allowed on a restricted socket (only " + strings.Join(capabilities(func(m ipc.Method) bool { return m.Restricted }), " and ") + ")",
		Data: &ipc.ErrorData{Code: ipc.ErrCodeDenied}}
}

// EnableRestricted lets s serve restricted sockets until ctx ends, when
// they are closed and their files removed. dir is where AddRestricted puts
// a socket given no path (usually the agent socket's directory).
func (s *Server) EnableRestricted(ctx context.Context, dir string) {
	rs := &s.rs
	rs.mu.Lock()
	rs.ctx, rs.dir = ctx, dir
	if rs.socks == nil {
		rs.socks = make(map[string]*restrictedSock)
	}
	rs.mu.Unlock()
	context.AfterFunc(ctx, func() {
		for _, info := range s.RestrictedSockets() {
			s.RemoveRestricted(info.Path)
		}
	})
}

// AddRestricted opens a restricted socket for servers at path ("" picks a
// fresh name in the directory given to EnableRestricted), removed after ttl
// (0: when the agent stops). The socket is created as Listen creates the
// agent's: 0600 in a directory closed to others.
func (s *Server) AddRestricted(path string, servers []string, ttl time.Duration) (ipc.RestrictedSocket, error) {
	return s.addRestricted(ipc.RestrictedSocket{Path: path, Servers: servers}, ttl)
}

func (s *Server) addRestricted(info ipc.RestrictedSocket, ttl time.Duration) (ipc.RestrictedSocket, error) {
	rs := &s.rs
	if len(info.Servers) == 0 {
		return ipc.RestrictedSocket{}, fmt.Errorf("%w: a restricted socket needs at least one server", agent.ErrInvalidRequest)
	}
	if ttl < 0 {
		return ipc.RestrictedSocket{}, fmt.Errorf("%w: negative ttl", agent.ErrInvalidRequest)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.ctx == nil || rs.ctx.Err() != nil {
		return ipc.RestrictedSocket{}, errors.New("this agent serves no restricted sockets")
	}
	if info.Path == "" {
		var b [6]byte
		rand.Read(b[:])
		info.Path = filepath.Join(rs.dir, "restricted-"+hex.EncodeToString(b[:])+".sock")
	}
	if !filepath.IsAbs(info.Path) {
		return ipc.RestrictedSocket{}, fmt.Errorf("%w: the socket path must be absolute", agent.ErrInvalidRequest)
	}
	info.Path = filepath.Clean(info.Path)
	if _, dup := rs.socks[info.Path]; dup {
		return ipc.RestrictedSocket{}, fmt.Errorf("%w: a restricted socket already listens on %s", agent.ErrInvalidRequest, info.Path)
	}
	ln, err := ipc.Listen(info.Path)
	if err != nil {
		return ipc.RestrictedSocket{}, fmt.Errorf("restricted socket: %w", err)
	}
	info.Servers = slices.Clone(info.Servers)
	if ttl > 0 {
		info.ExpiresAt = time.Now().Add(ttl)
	}
	srv := &Server{b: s.b, opts: s.opts, log: s.log.With("restricted_socket", info.Path),
		restrict: &restriction{path: info.Path, servers: info.Servers}}
	ctx, stop := context.WithCancel(rs.ctx)
	rsock := &restrictedSock{info: info, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(rsock.done)
		if err := srv.Serve(ctx, ln); err != nil {
			s.log.Warn("restricted socket stopped", "path", info.Path, "err", err)
		}
	}()
	if ttl > 0 {
		rsock.timer = time.AfterFunc(ttl, func() {
			if s.RemoveRestricted(info.Path) == nil {
				s.log.Info("restricted socket expired", "path", info.Path)
			}
		})
	}
	rs.socks[info.Path] = rsock
	s.log.Info("restricted socket added", "path", info.Path, "servers", info.Servers, "ttl", ttl)
	return info, nil
}

// RemoveRestricted closes the restricted socket at path and removes its
// file, after its connections have ended.
func (s *Server) RemoveRestricted(path string) error {
	rs := &s.rs
	rs.mu.Lock()
	rsock := rs.socks[filepath.Clean(path)]
	delete(rs.socks, filepath.Clean(path))
	rs.mu.Unlock()
	if rsock == nil {
		return fmt.Errorf("%w: no restricted socket at %s", agent.ErrNotFound, path)
	}
	if rsock.timer != nil {
		rsock.timer.Stop()
	}
	rsock.stop()
	<-rsock.done
	return nil
}

// RestrictedSockets lists the restricted sockets, by path.
func (s *Server) RestrictedSockets() []ipc.RestrictedSocket {
	rs := &s.rs
	rs.mu.Lock()
	out := make([]ipc.RestrictedSocket, 0, len(rs.socks))
	for _, r := range rs.socks {
		out = append(out, r.info)
	}
	rs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// SyncRestricted makes the config's [[restricted_socket]] tables the set of
// config-declared sockets: new ones are opened, changed ones reopened,
// dropped ones closed. Sockets added through socket.add are left alone.
// Every table is tried; the errors are joined.
func (s *Server) SyncRestricted(specs []config.RestrictedSocketSettings) error {
	want := make(map[string]config.RestrictedSocketSettings, len(specs))
	for _, sp := range specs {
		want[filepath.Clean(sp.Path)] = sp
	}
	var errs []error
	for _, cur := range s.RestrictedSockets() {
		sp, ok := want[cur.Path]
		if !cur.FromConfig {
			delete(want, cur.Path)
			continue
		}
		if ok && slices.Equal(sp.Servers, cur.Servers) {
			delete(want, cur.Path)
			continue
		}
		s.RemoveRestricted(cur.Path)
	}
	for _, sp := range want {
		if _, err := s.addRestricted(ipc.RestrictedSocket{Path: sp.Path, Servers: sp.Servers, FromConfig: true}, sp.TTL); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
