package oauth

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/assets"
	"github.com/mcpkey/mcpkey/internal/tcppeer"
)

// ErrCallbackClosed is returned by Wait and Deliver once the callback server
// is closed or its wait is over.
var ErrCallbackClosed = errors.New("callback listener closed")

// CallbackServer is the loopback redirect listener of one login (RFC 8252
// §7.3): bound to 127.0.0.1 only, alive only for the flow, it accepts exactly
// one valid authorization response. Requests to another path or Host, and
// responses whose state is not the flow's, get a 400 page and are ignored.
// The query (code, state) is never logged.
type CallbackServer struct {
	ln   net.Listener
	srv  *http.Server
	path string
	host string // "127.0.0.1:PORT", the only Host header accepted

	reqs chan delivery // to the running Wait
	over chan struct{} // closed when a Wait ended the flow
	done chan struct{} // closed by Close

	overOnce, closeOnce sync.Once
	waiting             sync.Mutex // held by the one running Wait

	launch atomic.Pointer[launchLink] // set by Launch
}

// launchLink is the one-time address the browser is opened at.
type launchLink struct {
	path string // "/login/<random>"
	to   string // the authorization URL
	used atomic.Bool
}

// delivery is one authorization response handed to Wait.
type delivery struct {
	q     url.Values
	reply chan error // buffered; Wait answers every delivery once
}

// ListenCallback binds 127.0.0.1:port (0 = an ephemeral port) and serves
// path ("" = "/callback"). A fixed port that is taken is a clear error.
func ListenCallback(ctx context.Context, port int, path string) (*CallbackServer, error) {
	path = cmp.Or(path, "/callback")
	if path[0] != '/' {
		return nil, fmt.Errorf("callback path %q must start with /", path)
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("callback port %d out of range", port)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if port != 0 {
			return nil, fmt.Errorf("listen for the login callback on 127.0.0.1:%d (is the port taken?): %w", port, err)
		}
		return nil, fmt.Errorf("listen for the login callback: %w", err)
	}
	cs := &CallbackServer{
		ln:   ln,
		path: path,
		host: ln.Addr().String(),
		reqs: make(chan delivery),
		over: make(chan struct{}),
		done: make(chan struct{}),
	}
	cs.srv = &http.Server{
		Handler:           cs,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // net/http would print connection errors to stderr
	}
	go func() { _ = cs.srv.Serve(ln) }()
	return cs, nil
}

// RedirectURI is http://127.0.0.1:PORT/PATH.
func (cs *CallbackServer) RedirectURI() string { return "http://" + cs.host + cs.path }

// Launch returns a one-time address on this listener that redirects (302)
// to authURL, to open in the browser instead of authURL itself: a
// browser's argv is readable by every user of the machine, and authURL
// carries the flow's state, which is what proves a callback belongs to the
// flow. The address is http://127.0.0.1:PORT/login/<256 random bits>; it
// answers once, and only to a connection from this process's own user
// where the system can tell (Linux); later requests get 410, another
// user's 403. A listener has one launch address.
func (cs *CallbackServer) Launch(authURL string) (string, error) {
	if err := checkEndpointURL("authorization URL", authURL); err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	secret, err := randomToken(32)
	if err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	l := &launchLink{path: "/login/" + secret, to: authURL}
	if !cs.launch.CompareAndSwap(nil, l) {
		return "", errors.New("launch: this listener already has a launch address")
	}
	return "http://" + cs.host + l.path, nil
}

// Wait returns the code of the first authorization response that validate
// accepts. validate is normally Flow.ValidateCallback. A response it rejects
// with ErrStateMismatch is answered with a 400 page and ignored; any other
// error ends the wait with that error (and the browser shows it). Wait
// returns ErrCallbackClosed after Close and ctx.Err() when ctx ends. Only one
// Wait ends the flow; later calls return ErrCallbackClosed.
func (cs *CallbackServer) Wait(ctx context.Context, validate func(url.Values) (string, error)) (string, error) {
	if !cs.waiting.TryLock() {
		return "", errors.New("callback: another wait is running")
	}
	defer cs.waiting.Unlock()
	select {
	case <-cs.over:
		return "", ErrCallbackClosed
	case <-cs.done:
		return "", ErrCallbackClosed
	default:
	}
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-cs.done:
			return "", ErrCallbackClosed
		case <-cs.over:
			return "", ErrCallbackClosed
		case d := <-cs.reqs:
			code, err := validate(d.q)
			if errors.Is(err, ErrStateMismatch) {
				d.reply <- err
				continue
			}
			cs.overOnce.Do(func() { close(cs.over) })
			d.reply <- err
			return code, err
		}
	}
}

// Deliver hands a pasted redirect URL (headless --no-browser login) to the
// running Wait, as if the browser had reached the listener. The URL must be
// this listener's redirect URI plus the query. It returns Wait's verdict:
// nil when it ended the flow with a code, ErrStateMismatch when it was not
// for this login (the wait goes on), or the error that ended the flow.
func (cs *CallbackServer) Deliver(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return errors.New("pasted text is not a URL")
	}
	if u.Scheme != "http" || u.Host != cs.host || u.Path != cs.path {
		return fmt.Errorf("pasted URL is not this login's redirect %s", cs.RedirectURI())
	}
	return cs.deliver(ctx, u.Query())
}

func (cs *CallbackServer) deliver(ctx context.Context, q url.Values) error {
	d := delivery{q: q, reply: make(chan error, 1)}
	select {
	case cs.reqs <- d:
	case <-ctx.Done():
		return ctx.Err()
	case <-cs.done:
		return ErrCallbackClosed
	case <-cs.over:
		return ErrCallbackClosed
	}
	return <-d.reply // Wait answers every delivery it takes
}

// closeGrace bounds how long pages being written may take after Close.
const closeGrace = 2 * time.Second

// Close stops the listener at once and ends a pending Wait. Pages being
// written (the error page of the response that ended the login, above
// all) are let through: the server shuts down gracefully in the
// background, for at most closeGrace, before it drops what is left. Close
// does not wait for that: a browser's idle speculative connection would
// otherwise hold up the end of every login.
func (cs *CallbackServer) Close() error {
	var err error
	cs.closeOnce.Do(func() {
		close(cs.done)
		// Serve may not have taken the listener yet; close it ourselves.
		if lerr := cs.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) {
			err = lerr
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
			defer cancel()
			if cs.srv.Shutdown(ctx) != nil {
				_ = cs.srv.Close()
			}
		}()
	})
	return err
}

// ServeHTTP answers the browser. Only GET path on Host 127.0.0.1:PORT counts.
func (cs *CallbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	switch {
	case r.Host != cs.host: // DNS rebinding or a stray request
		errorPage(w, http.StatusBadRequest, "This request was not addressed to the mcpkey login listener.")
		return
	case r.Method != http.MethodGet:
		errorPage(w, http.StatusMethodNotAllowed, "Only the sign-in redirect (GET) is accepted here.")
		return
	}
	l := cs.launch.Load()
	isLaunch := l != nil && subtle.ConstantTimeCompare([]byte(r.URL.Path), []byte(l.path)) == 1
	switch {
	case r.URL.Path != cs.path && !isLaunch:
		errorPage(w, http.StatusNotFound, "Nothing here: mcpkey only waits for its sign-in redirect.")
		return
	case !sameUser(r):
		errorPage(w, http.StatusForbidden, "This sign-in belongs to another user of this computer.")
		return
	case isLaunch:
		if !l.used.CompareAndSwap(false, true) {
			errorPage(w, http.StatusGone, "This sign-in link was already used. If that was not you, cancel the login (Ctrl-C) and run mcpkey login again.")
			return
		}
		h.Set("Location", l.to)
		w.WriteHeader(http.StatusFound)
		return
	}
	err := cs.deliver(r.Context(), r.URL.Query())
	switch {
	case err == nil:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(assets.CallbackHTML)
	case errors.Is(err, ErrStateMismatch):
		errorPage(w, http.StatusBadRequest, "This sign-in response does not belong to the mcpkey login in progress, so it was ignored.")
	case errors.Is(err, ErrCallbackClosed):
		errorPage(w, http.StatusGone, "This mcpkey login is already over.")
	case r.Context().Err() != nil:
	default:
		errorPage(w, http.StatusBadRequest, sanitizeRemote(err.Error(), 2*maxErrDescLen))
	}
}

// sameUser reports whether r's connection was opened by this process's
// user. Where the system cannot tell (no /proc/net/tcp), it answers true:
// the state parameter still proves a callback, and the launch address is
// then as good as the argv it replaces (see the README's threat model).
func sameUser(r *http.Request) bool {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if la == nil {
		return false
	}
	local, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return false
	}
	p, err := tcppeer.Lookup(remote, local)
	if errors.Is(err, errors.ErrUnsupported) {
		return true // no way to tell here; see the README's threat model
	}
	return err == nil && p.UID == os.Geteuid()
}

func errorPage(w http.ResponseWriter, status int, msg string) {
	var buf bytes.Buffer
	if err := assets.RenderCallbackError(&buf, msg); err != nil {
		http.Error(w, msg, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
