package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
)

// Close codes and reasons the WebSocket server sends (RFC 6455 §7.4.1).
const (
	closeUnsupported = websocket.CloseUnsupportedData // 1003: a binary frame
	closePolicy      = websocket.ClosePolicyViolation // 1008: rate limit
	closeTooBig      = websocket.CloseMessageTooBig   // 1009: over the frame cap
	closeTryAgain    = websocket.CloseTryAgainLater   // 1013: too many connections
)

var (
	errBinaryFrame = errors.New("binary frame refused")
	errRateLimited = errors.New("request rate limit exceeded")
)

// WebSocketOptions configures a WebSocketServer. Message size, frame and
// write timeouts come from the Server's ServerOptions, as on the socket.
type WebSocketOptions struct {
	// Secret is the base64url secret clients must present (required; from
	// NewWebSocketSecret).
	Secret string
	// AllowedOrigins are the Origin header values accepted, compared
	// exactly (e.g. "chrome-extension://abcdef"). A request with any other
	// Origin is refused; a request without one (a native client) passes.
	AllowedOrigins []string
	// Logger receives refusals and connection logs (never a secret); nil
	// discards.
	Logger *slog.Logger
	// MaxConns bounds concurrent WebSocket connections; the excess is
	// closed at once with 1013 "try again later". 0 means 64.
	MaxConns int
	// MaxHandshakes bounds connections accepted but not yet upgraded
	// (they have not shown the secret); the next ones wait in the
	// kernel's backlog until one ends. 0 means 32.
	MaxHandshakes int
	// HandshakeTimeout is how long a connection may take from accept to
	// upgrade; 0 means 5 s.
	HandshakeTimeout time.Duration
	// RateLimit is each connection's sustained request rate per second,
	// RateBurst its burst. A connection exceeding it is closed with 1008
	// "request rate limit exceeded". 0 means 100/s with a burst of 200;
	// a negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// PingInterval is how often the server pings an idle connection; 0
	// means 20 s.
	PingInterval time.Duration
	// IdleTimeout is how long a connection may stay silent (no message, no
	// pong) before it is closed; 0 means 60 s. It must exceed PingInterval.
	IdleTimeout time.Duration
	// Now is the clock for the rate limiter; nil means time.Now.
	Now func() time.Time
}

// WebSocketServer serves the protocol over a loopback WebSocket through a
// Server's dispatcher (Server.ServeConn), after checking every upgrade
// request as the package documentation describes.
type WebSocketServer struct {
	srv     *Server
	opts    WebSocketOptions
	log     *slog.Logger
	secret  []byte
	origins map[string]bool
	up      websocket.Upgrader
	slots   chan struct{} // one per open connection

	// port is the listener's port, set by Serve; the Host check needs it.
	port atomic.Int32

	// mu guards closed; wg counts running handlers (hijacked connections
	// are no longer tracked by http.Server).
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewWebSocketServer returns a WebSocketServer dispatching to srv, which may
// serve the Unix socket at the same time. opts is copied.
func NewWebSocketServer(srv *Server, opts WebSocketOptions) (*WebSocketServer, error) {
	if srv == nil {
		return nil, errors.New("websocket server: nil Server")
	}
	if len(opts.Secret) < 16 {
		return nil, errors.New("websocket server: secret missing or too short")
	}
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	positiveOr(&opts.MaxConns, 64)
	positiveOr(&opts.MaxHandshakes, 32)
	positiveOr(&opts.HandshakeTimeout, 5*time.Second)
	if opts.RateLimit == 0 {
		opts.RateLimit, opts.RateBurst = 100, 200
	}
	positiveOr(&opts.RateBurst, max(1, int(2*opts.RateLimit)))
	positiveOr(&opts.PingInterval, 20*time.Second)
	positiveOr(&opts.IdleTimeout, 60*time.Second)
	if opts.IdleTimeout <= opts.PingInterval {
		return nil, errors.New("websocket server: IdleTimeout must exceed PingInterval")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &WebSocketServer{
		srv: srv, opts: opts, log: opts.Logger,
		secret:  []byte(opts.Secret),
		origins: make(map[string]bool, len(opts.AllowedOrigins)),
		slots:   make(chan struct{}, opts.MaxConns),
	}
	for _, o := range opts.AllowedOrigins {
		w.origins[o] = true
	}
	w.up = websocket.Upgrader{
		HandshakeTimeout: opts.HandshakeTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Subprotocols:     []string{ipc.WebSocketSubprotocol},
		// Checked before Upgrade already; this agrees, so gorilla's
		// same-origin default (which DNS rebinding defeats) never applies.
		CheckOrigin: func(r *http.Request) bool { return w.checkOrigin(r) == nil },
		Error: func(rw http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(rw, http.StatusText(status), status)
		},
	}
	return w, nil
}

// Serve serves WebSocket connections on ln (from ListenWebSocket) until ctx
// ends, then closes every connection and returns nil once all have
// finished. Call it once per WebSocketServer.
//
// Before a connection has shown the secret it is bounded: another user's
// connection is closed at accept (Linux), at most MaxHandshakes may be
// pending, each for at most HandshakeTimeout (see guardListener).
func (w *WebSocketServer) Serve(ctx context.Context, ln net.Listener) error {
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("websocket serve: %s is not a TCP listener", ln.Addr())
	}
	w.port.Store(int32(tcp.Port))
	hs := &http.Server{
		Handler:           w,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: w.opts.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelDebug),
	}
	// One request per connection: a refused one ends it, and an upgraded
	// one is no longer HTTP.
	hs.SetKeepAlivesEnabled(false)
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	defer stop()
	err := hs.Serve(newGuardListener(ln, w.opts.MaxHandshakes, w.opts.HandshakeTimeout, w.log))
	hs.Close()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
	if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("websocket serve: %w", err)
}

// refusal is a failed upgrade check.
type refusal struct {
	status int
	reason string
}

func (w *WebSocketServer) checkHost(r *http.Request) *refusal {
	port := strconv.Itoa(int(w.port.Load()))
	for _, h := range [...]string{"127.0.0.1:", "localhost:", "[::1]:"} {
		if strings.EqualFold(r.Host, h+port) {
			return nil
		}
	}
	return &refusal{http.StatusMisdirectedRequest, "host not allowed"}
}

func (w *WebSocketServer) checkOrigin(r *http.Request) *refusal {
	vs, present := r.Header["Origin"]
	if !present {
		return nil // a native client; browsers always send Origin
	}
	if len(vs) != 1 || !w.origins[vs[0]] {
		return &refusal{http.StatusForbidden, "origin not allowed"}
	}
	return nil
}

// checkSecret accepts "Authorization: Bearer <secret>" or, for an allowed
// browser origin, the subprotocols mcpkey.v1 and mcpkey.secret.<secret>.
func (w *WebSocketServer) checkSecret(r *http.Request) *refusal {
	if vs := r.Header.Values("Authorization"); len(vs) == 1 {
		scheme, tok, ok := strings.Cut(vs[0], " ")
		if ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), w.secret) == 1 {
			return nil
		}
	}
	if _, browser := r.Header["Origin"]; browser {
		var v1, good bool
		for _, p := range websocket.Subprotocols(r) {
			if p == ipc.WebSocketSubprotocol {
				v1 = true
			} else if s, ok := strings.CutPrefix(p, ipc.WebSocketSecretPrefix); ok &&
				subtle.ConstantTimeCompare([]byte(s), w.secret) == 1 {
				good = true
			}
		}
		if v1 && good {
			return nil
		}
	}
	return &refusal{http.StatusUnauthorized, "missing or wrong secret"}
}

// ServeHTTP checks the upgrade request — Host (421), Origin (403), secret
// (401), path (404), in that order — upgrades it and serves the connection.
func (w *WebSocketServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		http.Error(rw, "agent shutting down", http.StatusServiceUnavailable)
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()

	ref := w.checkHost(r)
	if ref == nil {
		ref = w.checkOrigin(r)
	}
	if ref == nil {
		ref = w.checkSecret(r)
	}
	if ref == nil && r.URL.Path != ipc.WebSocketPath {
		ref = &refusal{http.StatusNotFound, "unknown path"}
	}
	if ref != nil {
		// Never log Authorization or Sec-WebSocket-Protocol: they may hold
		// a secret, right or wrong.
		w.log.Warn("refused websocket request", "status", ref.status, "reason", ref.reason,
			"host", truncate(r.Host, 80), "origin", truncate(r.Header.Get("Origin"), 80),
			"path", truncate(r.URL.Path, 80), "remote", r.RemoteAddr)
		rw.Header().Set("Connection", "close")
		http.Error(rw, ref.reason, ref.status)
		return
	}
	ws, err := w.up.Upgrade(rw, r, nil)
	if err != nil {
		w.log.Info("websocket upgrade failed", "err", err, "remote", r.RemoteAddr)
		return // the Upgrader answered
	}
	origin := r.Header.Get("Origin")
	select {
	case w.slots <- struct{}{}:
	default:
		w.log.Warn("refused websocket connection: too many connections", "max", w.opts.MaxConns, "remote", r.RemoteAddr)
		ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(closeTryAgain, "too many connections; try again later"),
			time.Now().Add(time.Second))
		ws.Close()
		return
	}
	defer func() { <-w.slots }()
	if pc, ok := ws.NetConn().(*pendingConn); ok {
		pc.admit()
	}
	mc := w.newConn(ws)
	// No SO_PEERCRED on a TCP connection: the caller is identified by the
	// secret it presented (reading it proves it runs as this user), and by
	// its process where /proc shows it, so deny rules and approvals judge
	// the program as on the Unix socket.
	// The process is looked up only when policy asks (FindPID).
	remote, local := ws.RemoteAddr(), ws.LocalAddr()
	caller := agent.Caller{Transport: "websocket", UID: os.Getuid(), Client: "ws",
		FindPID: func() int { return tcpPeerPID(remote, local) }}
	w.log.Debug("websocket connection", "origin", truncate(origin, 80), "remote", r.RemoteAddr)
	w.srv.ServeConn(r.Context(), mc, caller)
}

// wsConn is a MessageConn over a server-side WebSocket: one message per
// text frame, with the frame cap, timeouts, keepalive and rate limit.
type wsConn struct {
	ws           *websocket.Conn
	maxFrame     int
	frameTimeout time.Duration // a started message must complete within it (0 = no limit)
	idleTimeout  time.Duration
	writeTimeout time.Duration
	now          func() time.Time

	// Reader state, owned by the reader goroutine (the pong handler runs
	// there too).
	buf       []byte
	lr        io.LimitedReader
	inMessage bool
	limiter   *rate.Limiter // nil: no limit
	err       error         // sticky read error: gorilla panics on repeated reads of a failed conn

	done      chan struct{}
	closeOnce sync.Once
	// cmu guards closeCode and closeText, the close frame Close sends.
	cmu       sync.Mutex
	closeCode int
	closeText string
}

func (w *WebSocketServer) newConn(ws *websocket.Conn) *wsConn {
	so := w.srv.opts
	c := &wsConn{
		ws: ws, maxFrame: so.MaxFrame, frameTimeout: so.FrameTimeout, writeTimeout: so.WriteTimeout,
		idleTimeout: w.opts.IdleTimeout, now: w.opts.Now,
		buf:       make([]byte, 0, 4096),
		done:      make(chan struct{}),
		closeCode: websocket.CloseNormalClosure,
	}
	if w.opts.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(w.opts.RateLimit), w.opts.RateBurst)
	}
	ws.SetReadDeadline(time.Now().Add(c.idleTimeout))
	ws.SetPongHandler(func(string) error {
		if !c.inMessage {
			ws.SetReadDeadline(time.Now().Add(c.idleTimeout))
		}
		return nil
	})
	go c.keepalive(w.opts.PingInterval)
	return c
}

func (c *wsConn) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.writeTimeout)); err != nil {
				c.Close()
				return
			}
		}
	}
}

// setClose records the close frame Close will send.
func (c *wsConn) setClose(code int, text string) {
	c.cmu.Lock()
	c.closeCode, c.closeText = code, text
	c.cmu.Unlock()
}

// ReadMessage returns the next text message. A binary frame, a message over
// the cap or a request over the rate limit ends the connection.
func (c *wsConn) ReadMessage() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	msg, err := c.readMessage()
	if err != nil {
		c.err = err
	}
	return msg, err
}

func (c *wsConn) readMessage() ([]byte, error) {
	for {
		c.inMessage = false
		c.ws.SetReadDeadline(time.Now().Add(c.idleTimeout))
		typ, r, err := c.ws.NextReader()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
				return nil, io.EOF
			}
			return nil, err
		}
		c.inMessage = true
		if c.frameTimeout > 0 {
			c.ws.SetReadDeadline(time.Now().Add(c.frameTimeout))
		}
		if typ != websocket.TextMessage {
			c.setClose(closeUnsupported, "binary frames are not supported; send JSON text frames")
			return nil, errBinaryFrame
		}
		if c.limiter != nil && !c.limiter.AllowN(c.now(), 1) {
			c.setClose(closePolicy, errRateLimited.Error())
			return nil, errRateLimited
		}
		// Read at most maxFrame+1 bytes: enough to know it is too long.
		c.buf = c.buf[:0]
		c.lr = io.LimitedReader{R: r, N: int64(c.maxFrame) + 1}
		for {
			if len(c.buf) == cap(c.buf) {
				c.buf = append(c.buf, 0)[:len(c.buf)]
			}
			n, err := c.lr.Read(c.buf[len(c.buf):cap(c.buf)])
			c.buf = c.buf[:len(c.buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		if len(c.buf) > c.maxFrame {
			c.setClose(closeTooBig, fmt.Sprintf("message exceeds %d bytes", c.maxFrame))
			return nil, ipc.ErrFrameTooLarge
		}
		if cap(c.buf) > 64<<10 && len(c.buf) < 4096 {
			c.buf = make([]byte, 0, 4096) // don't pin a big message's buffer
		}
		if len(bytes.TrimSpace(c.buf)) == 0 {
			continue // like an empty line on the socket
		}
		return c.buf, nil
	}
}

// WriteMessage sends msg as one text frame.
func (c *wsConn) WriteMessage(msg []byte) error {
	if c.writeTimeout > 0 {
		c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

// Close sends the close frame (its code says why) and closes the socket.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cmu.Lock()
		code, text := c.closeCode, c.closeText
		c.cmu.Unlock()
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		c.ws.Close()
	})
	return nil
}
