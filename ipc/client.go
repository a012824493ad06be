package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/api"
)

// Client talks to the agent. The zero value dials DefaultSocketPath. A
// Client is safe for concurrent use: calls share one lazily dialled
// connection, multiplexed by request id, which is redialled after an error.
type Client struct {
	// Path is the agent's socket; "" means DefaultSocketPath(). A
	// "ws://HOST:PORT/v1/ws#/path/to/agent.ws.json" value dials the agent's
	// WebSocket instead, with the secret from the file after '#' (so
	// MCPKEY_SOCK can hold one too).
	Path string
	// WebSocket makes the client use the agent's WebSocket instead of its
	// socket: it reads the URL and secret from agent.ws.json next to Path
	// (or the default socket path) on every dial.
	WebSocket bool
	// Dial, if set, replaces dialling Path (tests, other transports).
	Dial func(ctx context.Context) (net.Conn, error)
	// Name is sent as agent.hello's client name; "" sends "mcpkey-go".
	Name string

	// mu guards cc.
	mu sync.Mutex
	cc *clientConn
}

// clientConn is one connection to the agent.
//
// Replies are read by the goroutine waiting for one, not handed over by a
// reader goroutine: on loopback TCP that hand-off (wake a parked goroutine,
// often on another thread) cost more than the agent's whole answer. One
// goroutine at a time holds the reader role (reading): the first caller
// to find it free reads until its own reply arrives, delivering any other
// reply it meets on the way. When it leaves while others still wait, a
// reader goroutine takes over until nobody waits (readFor). A connection
// left idle gets a reader goroutine too, until it is used again; a Watch
// connection keeps one for its whole life, for its events.
type clientConn struct {
	c      net.Conn
	lc     *LineConn // read by the holder of the reader role only
	nextID atomic.Uint64
	wmu    sync.Mutex // serialises writes to c
	done   chan struct{}

	// mu guards pending, err, reading and delivered.
	mu        sync.Mutex
	pending   map[uint64]*pendingCall
	err       error
	reading   bool
	delivered uint64 // replies delivered so far

	// idle starts a reader goroutine (readFor) on a connection nobody has
	// read for idleWatch, so the agent's pings get their pongs and a closed
	// connection is noticed; lastFree is when the reader role was last
	// given up, as time since epoch.
	idle     *time.Timer
	epoch    time.Time
	lastFree atomic.Int64

	// onEvent, if set, receives "event" notifications (Watch).
	onEvent func(api.Event)
}

type pendingCall struct {
	// decode decodes the response line into the caller's result; the
	// holder of the reader role runs it and sends its error on done.
	decode   func(line []byte) error
	done     chan error
	progress func(api.Event)
}

var errConnLost = errors.New("connection to agent lost")

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx)
	}
	path := c.Path
	if path == "" {
		p, err := DefaultSocketPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	if c.WebSocket || isWebSocketAddr(path) {
		return dialAgentWebSocket(ctx, path)
	}
	nc, err := Dial(ctx, path)
	if errors.Is(err, ErrNoAgent) && c.Path == "" && os.Getenv("MCPKEY_SOCK") == "" {
		// The default socket has no agent, but the user's agent may listen
		// elsewhere (started with --socket, or in an environment with
		// another XDG_RUNTIME_DIR or TMPDIR): its per-user lock says where.
		if sock, _, ok := RunningAgent(); ok && sock != path {
			return Dial(ctx, sock)
		}
	}
	return nc, err
}

// idleWatch is how long a connection goes unread before a reader goroutine
// takes it (see clientConn.idle): well under any keepalive timeout, and
// long enough that busy callers read their own replies.
const idleWatch = 100 * time.Millisecond

// newClientConn wraps nc. With onEvent set (Watch) a reader goroutine
// reads for the connection's whole life and calls onClose when it ends.
func newClientConn(nc net.Conn, onEvent func(api.Event), onClose func()) *clientConn {
	cc := &clientConn{c: nc, done: make(chan struct{}), pending: make(map[uint64]*pendingCall), onEvent: onEvent,
		lc: NewLineConn(nc, LineConnOptions{MaxFrame: 16 * DefaultMaxFrame}), epoch: time.Now()}
	if onEvent != nil {
		cc.reading = true
		go func() {
			if onClose != nil {
				defer onClose()
			}
			for cc.readOne() == nil {
			}
		}()
		return cc
	}
	cc.idle = time.AfterFunc(idleWatch, cc.watchIdle)
	return cc
}

// watchIdle runs when the idle timer fires: it starts a reader goroutine
// on a connection whose reader role has been free for idleWatch, and
// otherwise looks again later.
func (cc *clientConn) watchIdle() {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	wait := idleWatch
	if !cc.reading {
		wait -= time.Since(cc.epoch) - time.Duration(cc.lastFree.Load())
		if wait <= 0 {
			cc.reading = true
			cc.mu.Unlock()
			cc.readFor(true) // on this timer's goroutine
			return
		}
	}
	cc.mu.Unlock()
	cc.idle.Reset(wait)
}

// conn returns the shared connection, dialling if needed.
func (c *Client) conn(ctx context.Context) (cc *clientConn, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil {
		select {
		case <-c.cc.done:
			c.cc = nil
		default:
			return c.cc, false, nil
		}
	}
	nc, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// The dial gave up because ctx ended: say so in a way callers
			// can test (errors.Is(err, context.DeadlineExceeded)).
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return nil, false, err
	}
	c.cc = newClientConn(nc, nil, nil)
	return c.cc, true, nil
}

func (c *Client) drop(cc *clientConn) {
	c.mu.Lock()
	if c.cc == cc {
		c.cc = nil
	}
	c.mu.Unlock()
	cc.fail(errConnLost)
}

// Close closes the client's connection. The Client stays usable: the next
// call dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	cc := c.cc
	c.cc = nil
	c.mu.Unlock()
	if cc != nil {
		cc.fail(errors.New("client closed"))
	}
	return nil
}

func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
		close(cc.done)
	}
	cc.mu.Unlock()
	if cc.idle != nil {
		cc.idle.Stop()
	}
	cc.c.Close()
}

const responsePrefix = `{"jsonrpc":"2.0","id":`

// responseID returns N when line starts with {"jsonrpc":"2.0","id":N, .
func responseID(line []byte) (uint64, bool) {
	if !bytes.HasPrefix(line, []byte(responsePrefix)) {
		return 0, false
	}
	rest := line[len(responsePrefix):]
	i := 0
	for i < len(rest) && i < 20 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != ',' {
		return 0, false
	}
	id, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	return id, err == nil
}

// deliver decodes a response line for the call waiting for id, in the
// reading goroutine, so the line needs no copy.
func (cc *clientConn) deliver(id uint64, line []byte) {
	cc.mu.Lock()
	cl := cc.pending[id]
	delete(cc.pending, id)
	if cl != nil {
		cc.delivered++
	}
	cc.mu.Unlock()
	if cl != nil {
		cl.done <- cl.decode(line)
	}
}

// readOne reads one message and delivers it: a reply to its caller, a
// login.progress to its call, an event to onEvent. Only the holder of the
// reader role calls it. A read error is returned as is (a deadline set by
// lead interrupts a read without losing what was read so far); a
// malformed message fails the connection.
func (cc *clientConn) readOne() error {
	line, err := cc.lc.ReadMessage()
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
		}
		return err
	}
	// Fast path: the agent writes every response as
	// {"jsonrpc":"2.0","id":N,... ; route it by N without parsing the
	// rest, which the caller decodes once, straight into its result.
	if id, ok := responseID(line); ok {
		cc.deliver(id, line)
		return nil
	}
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		err = fmt.Errorf("%w: bad message from agent: %w", errConnLost, err)
		cc.fail(err)
		return err
	}
	switch m.Method {
	case "":
		if id, err := strconv.ParseUint(string(m.ID), 10, 64); err == nil {
			cc.deliver(id, line)
		} // else not one of ours (an error for an unparsable line has id null)
	case NotifyLoginProgress:
		var p ProgressParams
		if json.Unmarshal(m.Params, &p) != nil {
			return nil
		}
		id, err := strconv.ParseUint(string(p.ID), 10, 64)
		if err != nil {
			return nil
		}
		cc.mu.Lock()
		cl := cc.pending[id]
		cc.mu.Unlock()
		if cl != nil && cl.progress != nil {
			cl.progress(p.Event)
		}
	case NotifyEvent:
		var p EventParams
		if cc.onEvent != nil && json.Unmarshal(m.Params, &p) == nil {
			cc.onEvent(p.Event)
		}
	}
	return nil
}

// lead reads, holding the reader role, until cl (the caller's call, id)
// has its reply, ctx ends or the connection fails, then gives up the role.
// ctx ending interrupts a blocked read with a read deadline in the past;
// the LineConn keeps what it had read, so the next reader goes on from
// there.
func (cc *clientConn) lead(ctx context.Context, id uint64, cl *pendingCall) error {
	var (
		stop  func() bool
		fired chan struct{}
	)
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			cc.c.SetReadDeadline(time.Unix(1, 0))
			close(fired)
		})
	}
	var err error
	for spurious := 0; ; {
		select {
		case err := <-cl.done:
			cc.release(stop, fired)
			return err
		default:
		}
		err = cc.readOne()
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				break
			}
			// A deadline left from an earlier, finished call: clear it.
			if spurious++; spurious > 3 {
				cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
				break
			}
			cc.c.SetReadDeadline(time.Time{})
			continue
		}
		break // readOne failed the connection
	}
	// No reply for id: stop waiting for it (nobody else delivers while
	// this goroutine holds the role, so it is still pending).
	cc.mu.Lock()
	delete(cc.pending, id)
	cerr := cc.err
	cc.mu.Unlock()
	cc.release(stop, fired)
	if ctx.Err() != nil {
		cc.sendCancel(id)
		return ctx.Err()
	}
	return errRetryable{err: cerr}
}

// release gives up the reader role after lead: it first clears a read
// deadline ctx may have set (the next reader must not inherit it), and
// hands the role to a reader goroutine while other calls wait.
func (cc *clientConn) release(stop func() bool, fired chan struct{}) {
	if stop != nil && !stop() {
		<-fired
		cc.c.SetReadDeadline(time.Time{})
	}
	cc.mu.Lock()
	if len(cc.pending) == 0 || cc.err != nil {
		cc.free()
		cc.mu.Unlock()
		return
	}
	cc.mu.Unlock()
	go cc.readFor(false)
}

// free gives up the reader role; cc.mu is held.
func (cc *clientConn) free() {
	cc.reading = false
	cc.lastFree.Store(int64(time.Since(cc.epoch)))
}

// readFor holds the reader role until no call waits: for an idle
// connection (idle), until a call has had its reply and no other waits.
// (It sets no read deadline, and release clears any before handing the
// role over, so a deadline error here is a broken connection.)
func (cc *clientConn) readFor(idle bool) {
	cc.mu.Lock()
	start := cc.delivered
	cc.mu.Unlock()
	for {
		cc.mu.Lock()
		if cc.err != nil || len(cc.pending) == 0 && (!idle || cc.delivered != start) {
			cc.free()
			closed := cc.err != nil
			cc.mu.Unlock()
			if idle && !closed {
				cc.idle.Reset(idleWatch)
			}
			return
		}
		cc.mu.Unlock()
		if err := cc.readOne(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
			}
			cc.mu.Lock()
			cc.free()
			cc.mu.Unlock()
			return
		}
	}
}

// errRetryable marks a failure on a reused connection before any reply:
// the agent may have restarted, so one retry on a fresh connection is safe
// for idempotent methods, and for any method when the request was not
// sent (unsent).
type errRetryable struct {
	err    error
	unsent bool
}

func (e errRetryable) Error() string { return e.err.Error() }
func (e errRetryable) Unwrap() error { return e.err }

// do sends one request on cc and waits for its reply, which decode
// consumes.
func (cc *clientConn) do(ctx context.Context, method string, params any, decode func([]byte) error, progress func(api.Event)) error {
	id := cc.nextID.Add(1)
	b := make([]byte, 0, 256)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"`...)
	b = append(b, method...)
	b = append(b, '"')
	if params != nil {
		b = append(b, `,"params":`...)
		p, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("%s: encode params: %w", method, err)
		}
		b = append(b, p...)
	}
	b = append(b, '}', '\n')

	cl := &pendingCall{decode: decode, done: make(chan error, 1), progress: progress}
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return errRetryable{err: err, unsent: true}
	}
	cc.pending[id] = cl
	leader := !cc.reading
	cc.reading = true
	cc.mu.Unlock()

	// abandon stops waiting for id. If a reader already took the call it
	// is decoding into the caller's result right now: wait for that to end.
	abandon := func() {
		cc.mu.Lock()
		_, waiting := cc.pending[id]
		delete(cc.pending, id)
		cc.mu.Unlock()
		if !waiting {
			<-cl.done
		}
	}
	if n, err := cc.write(ctx, b); err != nil {
		abandon()
		if leader {
			cc.release(nil, nil)
		}
		if n == 0 && ctx.Err() != nil && (errors.Is(err, ctx.Err()) || errors.Is(err, os.ErrDeadlineExceeded)) {
			return ctx.Err() // nothing went out: the connection is intact
		}
		cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errRetryable{err: fmt.Errorf("%w: %w", errConnLost, err), unsent: n == 0}
	}
	if leader {
		return cc.lead(ctx, id, cl)
	}
	select {
	case err := <-cl.done:
		return err
	case <-cc.done:
		cc.mu.Lock()
		_, waiting := cc.pending[id]
		delete(cc.pending, id)
		err := cc.err
		cc.mu.Unlock()
		if !waiting {
			return <-cl.done // the reply made it
		}
		return errRetryable{err: err}
	case <-ctx.Done():
		abandon()
		cc.sendCancel(id)
		return ctx.Err()
	}
}

// sendCancel tells the agent the caller stopped waiting for id.
func (cc *clientConn) sendCancel(id uint64) {
	cancel := `{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":` + strconv.FormatUint(id, 10) + "}}\n"
	wctx, stop := context.WithTimeout(context.Background(), time.Second)
	_, err := cc.write(wctx, []byte(cancel))
	stop()
	if err != nil {
		// The agent was not told (or got half a line): closing the
		// connection cancels the call there instead.
		cc.fail(fmt.Errorf("%w: send rpc.cancel: %w", errConnLost, err))
	}
}

// write sends b whole and returns how many bytes went out. When ctx ends
// first the write is aborted by a write deadline in the past; if any byte
// went out the framing is broken and the caller must fail the connection.
func (cc *clientConn) write(ctx context.Context, b []byte) (int, error) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if ctx.Done() == nil {
		return cc.c.Write(b)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		cc.c.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := cc.c.Write(b)
	if !stop() {
		// ctx ended during the write or just after it: the deadline in
		// the past is set, or about to be. Left there it would fail every
		// later write on this connection, the rpc.cancel for this very
		// call first, so the agent would never hear of the cancellation.
		<-fired
		cc.c.SetWriteDeadline(time.Time{})
	}
	return n, err
}

// decodeReply decodes a response line into result (a pointer, or nil to
// discard it) in one pass, or returns its error.
func decodeReply[T any](method string, line []byte, result *T) error {
	env := struct {
		Error  *Error `json:"error"`
		Result *T     `json:"result"`
	}{Result: result}
	if err := json.Unmarshal(line, &env); err != nil {
		return fmt.Errorf("%s: decode result: %w", method, err)
	}
	if env.Error != nil {
		return clientError(env.Error)
	}
	return nil
}

// call runs method on the shared connection and decodes the result into
// result. Idempotent methods are retried once on a fresh connection when a
// reused one turns out to be dead (the agent restarted).
func call[T any](ctx context.Context, c *Client, method string, params any, result *T, progress func(api.Event)) error {
	return callDecode(ctx, c, method, params, func(line []byte) error { return decodeReply(method, line, result) }, progress)
}

// callDecode is call with the reply line decoded by decode.
func callDecode(ctx context.Context, c *Client, method string, params any, decode func([]byte) error, progress func(api.Event)) error {
	for attempt := 0; ; attempt++ {
		cc, fresh, err := c.conn(ctx)
		if err != nil {
			return err
		}
		err = cc.do(ctx, method, params, decode, progress)
		var re errRetryable
		if !errors.As(err, &re) {
			return err
		}
		c.drop(cc)
		if m, _ := LookupMethod(method); fresh || attempt > 0 || !(m.Idempotent || re.unsent) {
			return re.err
		}
	}
}

// Hello checks that the agent speaks this package's protocol version and
// returns what it serves.
func (c *Client) Hello(ctx context.Context) (HelloResult, error) {
	name := c.Name
	if name == "" {
		name = "mcpkey-go"
	}
	var r HelloResult
	err := call(ctx, c, MethodHello, HelloParams{Client: name, ProtocolVersion: ProtocolVersion}, &r, nil)
	return r, err
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var r api.Status
	err := call(ctx, c, MethodStatus, nil, &r, nil)
	return r, err
}

// Sessions lists the agent's sessions (no secrets).
func (c *Client) Sessions(ctx context.Context) ([]api.SessionInfo, error) {
	var r SessionsResult
	err := call(ctx, c, MethodSessionsList, nil, &r, nil)
	return r.Sessions, err
}

// Token asks the agent for an access token for req.Server. Errors wrap the
// agent sentinels: errors.Is(err, api.ErrNeedsLogin), errors.As(err,
// new(*api.NeedsLoginError)).
func (c *Client) Token(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	var r api.Token
	p := &TokenParams{Server: req.Server, Account: req.Account, Scopes: req.Scopes,
		RejectedToken: req.RejectedToken}
	if req.MinTTL > 0 {
		p.MinTTLSeconds = int64((req.MinTTL + time.Second - 1) / time.Second)
	}
	err := call(ctx, c, MethodTokenGet, p, &r, nil)
	return r, err
}

// Logout removes a session (and revokes it at the authorization server
// unless req.KeepRemote).
func (c *Client) Logout(ctx context.Context, req api.LogoutRequest) (api.LogoutResult, error) {
	var r api.LogoutResult
	err := call(ctx, c, MethodSessionLogout, LogoutParams{Server: req.Server, Account: req.Account,
		KeepRemote: req.KeepRemote, ForgetClient: req.ForgetClient}, &r, nil)
	return r, err
}

// Login runs (or joins) a login and returns the new session. progress, if
// not nil, is called with each login.progress event, from the goroutine
// reading the connection (which may be another call's): it must not block
// for long. When ctx ends the agent is
// told to cancel (rpc.cancel) and Login returns ctx.Err().
//
// It sends req.Env, or when that is empty this process's $BROWSER, $DISPLAY
// and $WAYLAND_DISPLAY, so the browser opens where the caller is (the agent
// uses them only from its main socket).
func (c *Client) Login(ctx context.Context, req api.LoginRequest, progress func(api.Event)) (api.SessionInfo, error) {
	var r api.SessionInfo
	env := req.Env
	if env.IsZero() {
		env = callerEnv(os.Getenv)
	}
	p := LoginParams{Server: req.Server, Account: req.Account,
		Scopes: req.Scopes, NoBrowser: req.NoBrowser, ClientID: req.ClientID, ClientSecret: req.ClientSecret,
		ClientMetadataURL: req.ClientMetadataURL}
	if !env.IsZero() && !req.NoBrowser {
		p.Env = &CallerEnv{Browser: env.Browser, Display: env.Display, WaylandDisplay: env.WaylandDisplay}
	}
	err := call(ctx, c, MethodSessionLogin, p, &r, progress)
	return r, err
}

// callerEnv reads this process's browser environment. Relative entries of
// $BROWSER ("./open-url") are made absolute here: the agent runs in
// another directory.
func callerEnv(getenv func(string) string) api.BrowserEnv {
	e := api.BrowserEnv{Browser: getenv("BROWSER"), Display: getenv("DISPLAY"), WaylandDisplay: getenv("WAYLAND_DISPLAY")}
	if e.Browser != "" {
		progs := filepath.SplitList(e.Browser)
		for i, p := range progs {
			if strings.ContainsRune(p, filepath.Separator) && !filepath.IsAbs(p) {
				if abs, err := filepath.Abs(p); err == nil {
					progs[i] = abs
				}
			}
		}
		e.Browser = strings.Join(progs, string(filepath.ListSeparator))
	}
	return e
}

// CompleteLogin hands a pasted redirect URL to the headless login it belongs
// to.
func (c *Client) CompleteLogin(ctx context.Context, redirectURL string) error {
	var r struct{}
	return call(ctx, c, MethodSessionComplete, CompleteParams{URL: redirectURL}, &r, nil)
}

// Watch subscribes to the agent's events on a connection of its own. The
// channel is closed when ctx ends or the connection is lost (the agent also
// drops subscribers that fall too far behind).
func (c *Client) Watch(ctx context.Context) (<-chan api.Event, error) {
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan api.Event, 64)
	cc := newClientConn(nc, func(ev api.Event) {
		select {
		case ch <- ev:
		case <-ctx.Done():
		}
	}, func() { close(ch) })
	var r SubscribeResult
	err = cc.do(ctx, MethodEventsSubscribe, nil, func(line []byte) error {
		return decodeReply(MethodEventsSubscribe, line, &r)
	}, nil)
	if err != nil {
		cc.fail(errors.New("watch failed"))
		var re errRetryable
		if errors.As(err, &re) {
			err = re.err
		}
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	context.AfterFunc(ctx, func() { cc.fail(ctx.Err()) })
	return ch, nil
}

// SetSecret stores a static secret (an API key) in the agent's store. The
// value travels only over the agent's socket.
func (c *Client) SetSecret(ctx context.Context, name string, value []byte) error {
	var r struct{}
	return call(ctx, c, MethodSecretSet, SecretSetParams{Name: name, Value: string(value)}, &r, nil)
}

// Secret returns a stored static secret; errors.Is(err, api.ErrNotFound)
// when there is none.
func (c *Client) Secret(ctx context.Context, name string) ([]byte, error) {
	var r SecretValue
	if err := call(ctx, c, MethodSecretGet, SecretParams{Name: name}, &r, nil); err != nil {
		return nil, err
	}
	return []byte(r.Value), nil
}

// Secrets lists the stored static secrets' names.
func (c *Client) Secrets(ctx context.Context) ([]string, error) {
	var r SecretListResult
	err := call(ctx, c, MethodSecretList, nil, &r, nil)
	return r.Names, err
}

// DeleteSecret removes a stored static secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	var r struct{}
	return call(ctx, c, MethodSecretDelete, SecretParams{Name: name}, &r, nil)
}

// ResolveServer returns a server's launch configuration (URL, header and
// env references, login wait) from the agent's config.
func (c *Client) ResolveServer(ctx context.Context, server string) (api.ServerConfig, error) {
	var r ResolveResult
	if err := call(ctx, c, MethodServerResolve, ResolveParams{Server: server}, &r, nil); err != nil {
		return api.ServerConfig{}, err
	}
	sc := r.ServerConfig
	sc.LoginWait = time.Duration(r.LoginWaitSeconds) * time.Second
	return sc, nil
}

// Approvals lists the approvals waiting for an answer.
func (c *Client) Approvals(ctx context.Context) ([]api.Approval, error) {
	var r ApprovalsResult
	err := call(ctx, c, MethodApprovalsList, struct{}{}, &r, nil)
	return r.Approvals, err
}

// AnswerApproval answers approval id (see agent.Agent.AnswerApproval).
func (c *Client) AnswerApproval(ctx context.Context, id int, d api.Decision, remember bool) error {
	r, err := c.Answer(ctx, api.Answer{ID: id, Decision: d, Remember: remember})
	if err == nil && r.ConfirmInTerminal {
		return fmt.Errorf("%w: approval %d: confirm with the code shown in your terminal (mcpkey approve does)", api.ErrDenied, id)
	}
	return err
}

// Answer sends one answer to an approval (approval.answer). An allow from
// a terminal answers ConfirmInTerminal first: the agent wrote the request
// and a code to the terminal, and the answer must be sent again with it.
func (c *Client) Answer(ctx context.Context, ans api.Answer) (api.AnswerResult, error) {
	var r api.AnswerResult
	err := call(ctx, c, MethodApprovalAnswer, ans, &r, nil)
	return r, err
}

// Lock locks the agent; with a passphrase, Unlock will require it.
func (c *Client) Lock(ctx context.Context, passphrase string) error {
	var r struct{}
	return call(ctx, c, MethodLock, LockParams{Passphrase: passphrase}, &r, nil)
}

// Unlock unlocks the agent. A wrong passphrase answers api.ErrDenied after
// a growing delay.
func (c *Client) Unlock(ctx context.Context, passphrase string) error {
	var r struct{}
	return call(ctx, c, MethodUnlock, LockParams{Passphrase: passphrase}, &r, nil)
}

// AddSocket asks the agent for a restricted socket serving token.get for
// servers only; path "" lets the agent pick one, ttl 0 keeps it while the
// agent runs.
func (c *Client) AddSocket(ctx context.Context, servers []string, path string, ttl time.Duration) (RestrictedSocket, error) {
	p := SocketAddParams{Servers: servers, Path: path}
	if ttl > 0 {
		p.TTL = ttl.String()
	}
	var r RestrictedSocket
	err := call(ctx, c, MethodSocketAdd, p, &r, nil)
	return r, err
}

// Sockets lists the agent's restricted sockets.
func (c *Client) Sockets(ctx context.Context) ([]RestrictedSocket, error) {
	var r SocketsResult
	err := call(ctx, c, MethodSocketList, struct{}{}, &r, nil)
	return r.Sockets, err
}

// RemoveSocket closes the restricted socket at path.
func (c *Client) RemoveSocket(ctx context.Context, path string) error {
	var r struct{}
	return call(ctx, c, MethodSocketRemove, SocketRemoveParams{Path: path}, &r, nil)
}
