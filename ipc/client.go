package ipc

import (
	"bytes"
	"context"
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
	json "github.com/segmentio/encoding/json"
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

// clientConn is one connection to the agent, shaped like
// x/crypto/ssh/agent's client: one reader goroutine per connection reads
// every message, hands each reply to the call waiting for its id, login
// progress to its call and events to onEvent. Callers write their request
// (one at a time, wmu) and wait; a caller that stops waiting sends
// rpc.cancel, so the agent stops working for it.
type clientConn struct {
	c      net.Conn
	lc     *LineConn // read by the reader goroutine only
	nextID atomic.Uint64
	wmu    sync.Mutex // serialises writes to c
	done   chan struct{}

	// mu guards pending and err.
	mu      sync.Mutex
	pending map[uint64]*pendingCall
	err     error

	// onEvent, if set, receives "event" notifications (Watch).
	onEvent func(api.Event)
}

type pendingCall struct {
	reply    chan []byte // the response line, a copy; buffered
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

// newClientConn wraps nc and starts its reader goroutine, which calls
// onClose (if set) when the connection ends.
func newClientConn(nc net.Conn, onEvent func(api.Event), onClose func()) *clientConn {
	cc := &clientConn{c: nc, done: make(chan struct{}), pending: make(map[uint64]*pendingCall), onEvent: onEvent,
		lc: NewLineConn(nc, LineConnOptions{MaxFrame: 16 * DefaultMaxFrame})}
	go func() {
		if onClose != nil {
			defer onClose()
		}
		cc.readLoop()
	}()
	return cc
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
	cc.c.Close()
}

// readLoop reads messages until the connection fails: a reply goes to the
// call waiting for its id, a login.progress to its call, an event to
// onEvent. A malformed message fails the connection.
func (cc *clientConn) readLoop() {
	for {
		line, err := cc.lc.ReadMessage()
		if err != nil {
			cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
			return
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			cc.fail(fmt.Errorf("%w: bad message from agent: %w", errConnLost, err))
			return
		}
		switch m.Method {
		case "":
			id, err := strconv.ParseUint(string(m.ID), 10, 64)
			if err != nil {
				continue // not one of ours (an error for an unparsable line has id null)
			}
			cc.mu.Lock()
			cl := cc.pending[id]
			delete(cc.pending, id)
			cc.mu.Unlock()
			if cl != nil {
				cl.reply <- bytes.Clone(line)
			}
		case NotifyLoginProgress:
			var p ProgressParams
			if json.Unmarshal(m.Params, &p) != nil {
				continue
			}
			id, err := strconv.ParseUint(string(p.ID), 10, 64)
			if err != nil {
				continue
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

	cl := &pendingCall{reply: make(chan []byte, 1), progress: progress}
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return errRetryable{err: err, unsent: true}
	}
	cc.pending[id] = cl
	cc.mu.Unlock()

	// forget stops waiting for id; false when the reply is already in.
	forget := func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		_, waiting := cc.pending[id]
		delete(cc.pending, id)
		return waiting
	}
	if n, err := cc.write(ctx, b); err != nil {
		forget()
		if n == 0 && ctx.Err() != nil && (errors.Is(err, ctx.Err()) || errors.Is(err, os.ErrDeadlineExceeded)) {
			return ctx.Err() // nothing went out: the connection is intact
		}
		cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errRetryable{err: fmt.Errorf("%w: %w", errConnLost, err), unsent: n == 0}
	}
	select {
	case line := <-cl.reply:
		return decode(line)
	case <-cc.done:
		if !forget() {
			return decode(<-cl.reply) // the reply made it
		}
		cc.mu.Lock()
		err := cc.err
		cc.mu.Unlock()
		return errRetryable{err: err}
	case <-ctx.Done():
		if !forget() {
			return decode(<-cl.reply)
		}
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
		KeepRemote: req.KeepRemote, ForgetClient: req.ForgetClient, ForgetIdP: req.ForgetIdP}, &r, nil)
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
	if !req.Grant.IsZero() {
		p.Grant = &req.Grant
	}
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
