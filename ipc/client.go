package ipc

import (
	"bytes"
	"cmp"
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
// (one at a time, wsem; a write once started is never aborted) and wait; a
// caller that stops waiting drops its reply and sends rpc.cancel, so the
// agent stops working for it.
type clientConn struct {
	c      net.Conn
	lc     *LineConn // read by the reader goroutine only
	nextID atomic.Uint64
	wsem   chan struct{} // the write turn: one writer at a time
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
		wsem: make(chan struct{}, 1),
		lc:   NewLineConn(nc, LineConnOptions{MaxFrame: 16 * DefaultMaxFrame})}
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
		// Only what routes the message: a reply's result and error are
		// decoded once, by its caller (decodeReply).
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
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
		if ctx.Err() != nil {
			return ctx.Err() // nothing went out, or the connection failed anyway
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

// sendCancel tells the agent the caller stopped waiting for id. When
// another write is under way it is sent from a goroutine, so the caller who
// gave up returns at once.
func (cc *clientConn) sendCancel(id uint64) {
	cancel := []byte(`{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":` + strconv.FormatUint(id, 10) + "}}\n")
	select {
	case cc.wsem <- struct{}{}:
		cc.writeHeld(cancel)
	default:
		go cc.write(context.Background(), cancel)
	}
}

// writeTimeout bounds one write: only an agent that stopped reading (hung,
// or its machine suspended mid-write) hits it, and then the connection is
// failed.
const writeTimeout = 30 * time.Second

// write sends b whole, after the writes before it. A caller whose ctx ends
// while it waits for its turn returns ctx.Err() having sent nothing; once
// its write has started it is never aborted (half a message would break
// the framing, and gorilla's WebSocket fails for good on any write error):
// it completes, and the caller's cancellation is an rpc.cancel after it.
// A write error fails the connection.
func (cc *clientConn) write(ctx context.Context, b []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case cc.wsem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-cc.done:
		return 0, errConnLost
	}
	return cc.writeHeld(b)
}

// writeHeld writes b with the write turn (wsem) held, and releases it.
func (cc *clientConn) writeHeld(b []byte) (int, error) {
	defer func() { <-cc.wsem }()
	cc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := cc.c.Write(b)
	if err != nil {
		cc.fail(fmt.Errorf("%w: %w", errConnLost, err))
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

// call runs m on the shared connection and returns its result. Idempotent
// methods are retried once on a fresh connection when a reused one turns
// out to be dead (the agent restarted).
func (m rpc[P, R]) call(ctx context.Context, c *Client, params P, progress func(api.Event)) (R, error) {
	var r R
	decode := func(line []byte) error { return decodeReply(string(m), line, &r) }
	for attempt := 0; ; attempt++ {
		cc, fresh, err := c.conn(ctx)
		if err != nil {
			return r, err
		}
		err = cc.do(ctx, string(m), m.params(params), decode, progress)
		var re errRetryable
		if !errors.As(err, &re) {
			return r, err
		}
		c.drop(cc)
		if row, _ := LookupMethod(string(m)); fresh || attempt > 0 || !(row.Idempotent || re.unsent) {
			return r, re.err
		}
	}
}

// on runs m on cc only: no retry on another connection.
func (m rpc[P, R]) on(ctx context.Context, cc *clientConn, params P) (R, error) {
	var r R
	err := cc.do(ctx, string(m), m.params(params), func(line []byte) error { return decodeReply(string(m), line, &r) }, nil)
	return r, err
}

// params is what goes on the wire as p: nothing for a method without params.
func (m rpc[P, R]) params(p P) any {
	if _, isNone := any(p).(none); isNone {
		return nil
	}
	return p
}

// Hello checks that the agent speaks this package's protocol version and
// returns what it serves.
func (c *Client) Hello(ctx context.Context) (HelloResult, error) {
	name := cmp.Or(c.Name, "mcpkey-go")
	return rpcHello.call(ctx, c, HelloParams{Client: name, ProtocolVersion: ProtocolVersion}, nil)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	return rpcStatus.call(ctx, c, none{}, nil)
}

// Sessions lists the agent's sessions (no secrets).
func (c *Client) Sessions(ctx context.Context) ([]api.SessionInfo, error) {
	r, err := rpcSessionsList.call(ctx, c, none{}, nil)
	return r.Sessions, err
}

// Token asks the agent for an access token for req.Server. Errors wrap the
// agent sentinels: errors.Is(err, api.ErrNeedsLogin), errors.As(err,
// new(*api.NeedsLoginError)).
func (c *Client) Token(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	p := TokenParams{Server: req.Server, Account: req.Account, Scopes: req.Scopes,
		RejectedToken: req.RejectedToken, DPoPMethod: req.DPoPMethod, DPoPURL: req.DPoPURL, DPoPNonce: req.DPoPNonce}
	if req.MinTTL > 0 {
		p.MinTTLSeconds = int64((req.MinTTL + time.Second - 1) / time.Second)
	}
	return rpcTokenGet.call(ctx, c, p, nil)
}

// Logout removes a session (and revokes it at the authorization server
// unless req.KeepRemote).
func (c *Client) Logout(ctx context.Context, req api.LogoutRequest) (api.LogoutResult, error) {
	return rpcSessionLogout.call(ctx, c, req, nil)
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
	switch {
	case req.NoBrowser:
		req.Env = api.BrowserEnv{}
	case req.Env.IsZero():
		req.Env = callerEnv(os.Getenv)
	}
	return rpcSessionLogin.call(ctx, c, req, progress)
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
	_, err := rpcSessionComplete.call(ctx, c, CompleteParams{URL: redirectURL}, nil)
	return err
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
	_, err = rpcEventsSubscribe.on(ctx, cc, none{})
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

// Import hands the agent a session another tool kept in a plain file
// (mcpkey import mcp-remote). The agent discovers the server's
// authorization server, refreshes once to prove the refresh token works,
// and stores the session as a login's result; a session whose refresh
// fails is not kept. The tokens travel only over the agent's socket.
func (c *Client) Import(ctx context.Context, req api.ImportRequest) (api.SessionInfo, error) {
	return rpcSessionImport.call(ctx, c, req, nil)
}

// SetSecret stores a static secret (an API key) in the agent's store. The
// value travels only over the agent's socket.
func (c *Client) SetSecret(ctx context.Context, name string, value []byte) error {
	_, err := rpcSecretSet.call(ctx, c, SecretSetParams{Name: name, Value: string(value)}, nil)
	return err
}

// Secret returns a stored static secret; errors.Is(err, api.ErrNotFound)
// when there is none.
func (c *Client) Secret(ctx context.Context, name string) ([]byte, error) {
	r, err := rpcSecretGet.call(ctx, c, SecretParams{Name: name}, nil)
	if err != nil {
		return nil, err
	}
	return []byte(r.Value), nil
}

// Secrets lists the stored static secrets' names.
func (c *Client) Secrets(ctx context.Context) ([]string, error) {
	r, err := rpcSecretList.call(ctx, c, none{}, nil)
	return r.Names, err
}

// DeleteSecret removes a stored static secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	_, err := rpcSecretDelete.call(ctx, c, SecretParams{Name: name}, nil)
	return err
}

// ResolveServer returns a server's launch configuration (URL, header and
// env references, login wait) from the agent's config.
func (c *Client) ResolveServer(ctx context.Context, server string) (api.ServerConfig, error) {
	r, err := rpcServerResolve.call(ctx, c, ResolveParams{Server: server}, nil)
	if err != nil {
		return api.ServerConfig{}, err
	}
	sc := r.ServerConfig
	sc.LoginWait = time.Duration(r.LoginWaitSeconds) * time.Second
	return sc, nil
}

// Approvals lists the approvals waiting for an answer.
func (c *Client) Approvals(ctx context.Context) ([]api.Approval, error) {
	r, err := rpcApprovalsList.call(ctx, c, none{}, nil)
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
	return rpcApprovalAnswer.call(ctx, c, ans, nil)
}

// Lock locks the agent; with a passphrase, Unlock will require it.
func (c *Client) Lock(ctx context.Context, passphrase string) error {
	_, err := rpcLock.call(ctx, c, LockParams{Passphrase: passphrase}, nil)
	return err
}

// Unlock unlocks the agent. A wrong passphrase answers api.ErrDenied after
// a growing delay.
func (c *Client) Unlock(ctx context.Context, passphrase string) error {
	_, err := rpcUnlock.call(ctx, c, LockParams{Passphrase: passphrase}, nil)
	return err
}

// AddSocket asks the agent for a restricted socket serving token.get for
// servers only; path "" lets the agent pick one, ttl 0 keeps it while the
// agent runs.
func (c *Client) AddSocket(ctx context.Context, servers []string, path string, ttl time.Duration) (RestrictedSocket, error) {
	p := SocketAddParams{Servers: servers, Path: path}
	if ttl > 0 {
		p.TTL = ttl.String()
	}
	return rpcSocketAdd.call(ctx, c, p, nil)
}

// Sockets lists the agent's restricted sockets.
func (c *Client) Sockets(ctx context.Context) ([]RestrictedSocket, error) {
	r, err := rpcSocketList.call(ctx, c, none{}, nil)
	return r.Sockets, err
}

// RemoveSocket closes the restricted socket at path.
func (c *Client) RemoveSocket(ctx context.Context, path string) error {
	_, err := rpcSocketRemove.call(ctx, c, SocketRemoveParams{Path: path}, nil)
	return err
}
