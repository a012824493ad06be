package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	json "github.com/segmentio/encoding/json"
)

// ServerOptions configures a Server. The zero value is ready to use.
type ServerOptions struct {
	// Logger receives connection and request logs (never params or
	// results); nil discards.
	Logger *slog.Logger
	// AgentVersion is reported by agent.hello; "" reports "devel".
	AgentVersion string
	// MaxFrame caps one incoming message in bytes; 0 means DefaultMaxFrame.
	MaxFrame int
	// FrameTimeout bounds how long a message may take to arrive once its
	// first byte has (a half line that stalls); 0 means 30 s, <0 no limit.
	// Idle connections between messages are never timed out.
	FrameTimeout time.Duration
	// WriteTimeout bounds each write to a connection; a client that stops
	// reading is disconnected after it. 0 means 10 s.
	WriteTimeout time.Duration
	// MaxInFlight bounds concurrent requests per connection; further
	// requests wait to be read. 0 means 32.
	MaxInFlight int
	// QueueSize bounds the replies and notifications waiting to be written
	// to one connection; a connection whose queue overflows is closed. 0
	// means 256.
	QueueSize int
	// CancelGrace bounds how long a closing connection waits for its
	// cancelled requests to return before it stops waiting (their replies
	// are dropped); 0 means 5 s.
	CancelGrace time.Duration
}

// Server serves the protocol described in the package documentation to
// connections, calling a Backend for every request.
type Server struct {
	b    Backend
	opts ServerOptions
	log  *slog.Logger

	// restrict is set on the Server of a restricted socket (restricted.go);
	// rs holds a main Server's restricted sockets.
	restrict *restriction
	rs       restrictedSet
}

// NewServer returns a Server calling b. opts is copied.
func NewServer(b Backend, opts ServerOptions) *Server {
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	opts.AgentVersion = cmp.Or(opts.AgentVersion, "devel")
	positiveOr(&opts.MaxFrame, ipc.DefaultMaxFrame)
	if opts.FrameTimeout == 0 {
		opts.FrameTimeout = 30 * time.Second
	} else if opts.FrameTimeout < 0 {
		opts.FrameTimeout = 0
	}
	positiveOr(&opts.WriteTimeout, 10*time.Second)
	positiveOr(&opts.MaxInFlight, 32)
	positiveOr(&opts.QueueSize, 256)
	positiveOr(&opts.CancelGrace, 5*time.Second)
	return &Server{b: b, opts: opts, log: opts.Logger}
}

// positiveOr sets *v to def unless *v is positive.
func positiveOr[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Serve accepts connections on ln until ctx ends, then closes ln, cancels
// in-flight requests, closes every connection and returns nil once all
// connection goroutines have finished. It returns an error only if ln fails
// for good before that.
//
// Unix-socket peers whose uid differs from this process's are closed at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		ln.Close()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			// EMFILE and friends: back off, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveNetConn(ctx, c)
		}()
	}
}

func (s *Server) serveNetConn(ctx context.Context, c net.Conn) {
	uid, pid, err := ipc.PeerCred(c)
	if err != nil {
		s.log.Warn("refused connection: cannot read peer credentials", "err", err)
		c.Close()
		return
	}
	if uid != os.Getuid() {
		s.log.Warn("refused connection from another user", "uid", uid, "pid", pid)
		c.Close()
		return
	}
	caller := agent.Caller{Transport: "unix", UID: uid, PID: pid, Exe: ipc.PeerExe(pid)}
	lc := ipc.NewLineConn(c, ipc.LineConnOptions{MaxFrame: s.opts.MaxFrame, FrameTimeout: s.opts.FrameTimeout,
		WriteTimeout: s.opts.WriteTimeout})
	s.ServeConn(ctx, lc, caller)
}

// ServeConn serves one connection until the peer closes it, a protocol
// violation ends it, or ctx ends. It attaches caller (agent.WithCaller) to
// every request's context and closes mc before it returns. Any transport
// that yields whole messages (the Unix socket's LineConn, a WebSocket) can
// use it; the transport authenticates the peer before calling it.
func (s *Server) ServeConn(ctx context.Context, mc ipc.MessageConn, caller agent.Caller) error {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{
		s: s, mc: mc, caller: caller, ctx: ctx, cancel: cancel,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		quit:     make(chan struct{}),
		sem:      make(chan struct{}, s.opts.MaxInFlight),
		inflight: make(map[string]context.CancelFunc),
	}
	log := s.log.With("transport", caller.Transport, "pid", caller.PID)
	log.Debug("connection opened", "exe", caller.Exe)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	stop := context.AfterFunc(ctx, c.close)

	var err error
	for {
		var msg []byte
		msg, err = mc.ReadMessage()
		if err != nil {
			break
		}
		c.handle(msg)
	}
	if errors.Is(err, ipc.ErrFrameTooLarge) {
		c.reply(nil, nil, &ipc.Error{Code: ipc.CodeInvalidRequest,
			Message: fmt.Sprintf("message exceeds %d bytes", s.opts.MaxFrame),
			Data:    &ipc.ErrorData{Code: ipc.ErrCodeInvalidRequest}})
		log.Warn("closing connection: frame too large")
		close(c.quit) // write what is queued, then stop
		<-writerDone
	}
	stop()
	idle := make(chan struct{}) // closed once every request has returned
	go func() {
		c.wg.Wait()
		close(idle)
	}()
	if hc, ok := mc.(halfCloser); ok && errors.Is(err, io.EOF) && hc.PeerHalfClosed() {
		// The peer only stopped sending: answer what it asked, unless it
		// goes away completely or the server stops first (ctx ends either
		// way, and the requests still running are cancelled below).
		log.Debug("peer half-closed; finishing its requests")
		stopWatch := hc.WatchPeerClose(cancel)
		select {
		case <-idle:
			close(c.quit) // write what is queued, then stop
			<-writerDone
		case <-ctx.Done():
			log.Debug("half-closed peer gone or server stopping; cancelling its requests")
		}
		stopWatch()
	}
	cancel()
	c.close()
	select {
	case <-idle:
	default:
		// A backend call that ignores its cancelled context (a keyring
		// that hangs) must not pin this goroutine and, with it, Serve.
		t := time.NewTimer(s.opts.CancelGrace)
		select {
		case <-idle:
		case <-t.C:
			log.Warn("requests still running after cancellation; not waiting for them", "grace", s.opts.CancelGrace)
		}
		t.Stop()
	}
	<-writerDone
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil || c.isClosed() {
		log.Debug("connection closed")
		return nil
	}
	log.Info("connection closed", "err", err)
	return err
}

// halfCloser is a MessageConn whose peer can shut down only its sending
// side (LineConn on Linux).
type halfCloser interface {
	PeerHalfClosed() bool
	WatchPeerClose(gone func()) (stop func())
}

// conn is one served connection.
type conn struct {
	s      *Server
	mc     ipc.MessageConn
	caller agent.Caller
	ctx    context.Context // ends when the connection ends
	cancel context.CancelFunc

	done      chan struct{} // closed by close
	quit      chan struct{} // closed to make the writer drain and stop
	wake      chan struct{} // tells the writer that queue has work
	closeOnce sync.Once
	sem       chan struct{} // in-flight request slots
	wg        sync.WaitGroup

	// qmu guards queue and writing. At most one goroutine writes at a
	// time (writing); a reply finding the queue empty and nobody writing
	// is written by its own goroutine, saving a hand-off; everything else
	// waits in queue for the writer goroutine, in order.
	qmu     sync.Mutex
	queue   [][]byte
	writing bool

	// mu guards inflight and subscribed.
	mu         sync.Mutex
	inflight   map[string]context.CancelFunc // by raw request id
	subscribed bool
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancel()
		c.mc.Close()
	})
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// bufPool recycles reply buffers: a token.get reply is ~1.5 KB.
var bufPool = sync.Pool{New: func() any { return make([]byte, 0, 2048) }}

func getBuf() []byte { return bufPool.Get().([]byte)[:0] }

func putBuf(b []byte) {
	clear(b) // replies carry tokens: no copy waits in the pool or in freed memory
	if cap(b) <= 64<<10 {
		bufPool.Put(b[:0]) //nolint:staticcheck // a slice header is cheaper than the 2 KB it saves
	}
}

// writeAll writes msgs and flushes; on failure it closes the connection.
// The buffers go back to the pool (MessageConn.WriteMessage keeps no
// reference).
func (c *conn) writeAll(msgs [][]byte) bool {
	for i, m := range msgs {
		err := c.mc.WriteMessage(m)
		putBuf(m)
		if err != nil {
			for _, m := range msgs[i+1:] {
				putBuf(m)
			}
			c.close()
			return false
		}
	}
	if f, ok := c.mc.(ipc.Flusher); ok {
		if err := f.Flush(); err != nil {
			c.s.log.Warn("disconnecting client: write failed", "pid", c.caller.PID, "err", err)
			c.close()
			return false
		}
	}
	return true
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drainQueue writes queued messages until the queue is empty or another
// goroutine is writing.
func (c *conn) drainQueue() bool {
	for {
		c.qmu.Lock()
		if c.writing || len(c.queue) == 0 {
			c.qmu.Unlock()
			return true
		}
		batch := c.queue
		c.queue = nil
		c.writing = true
		c.qmu.Unlock()
		ok := c.writeAll(batch)
		c.qmu.Lock()
		c.writing = false
		c.qmu.Unlock()
		if !ok {
			return false
		}
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
			if !c.drainQueue() {
				return
			}
		case <-c.quit:
			c.drainQueue()
			return
		case <-c.done:
			return
		}
	}
}

// enqueue sends msg. A reply (direct) finding nothing queued is written by
// the calling goroutine; otherwise msg is queued for the writer goroutine.
// Notifications are never written directly: their senders (the agent's
// login and event goroutines) must not block on a client. A full queue
// closes the connection: a client that does not read never blocks the agent.
func (c *conn) enqueue(msg []byte, direct bool) {
	c.qmu.Lock()
	if c.isClosed() {
		c.qmu.Unlock()
		putBuf(msg)
		return
	}
	if direct && !c.writing && len(c.queue) == 0 {
		c.writing = true
		c.qmu.Unlock()
		c.writeAll([][]byte{msg})
		c.qmu.Lock()
		c.writing = false
		more := len(c.queue) > 0
		c.qmu.Unlock()
		if more {
			c.signal()
		}
		return
	}
	if len(c.queue) >= c.s.opts.QueueSize {
		c.qmu.Unlock()
		c.s.log.Warn("disconnecting client: outbound queue full", "pid", c.caller.PID)
		c.close()
		return
	}
	c.queue = append(c.queue, msg)
	idle := !c.writing
	c.qmu.Unlock()
	if idle {
		c.signal()
	}
}

// reply queues a response. id nil means null.
func (c *conn) reply(id json.RawMessage, result any, e *ipc.Error) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	var b []byte
	if e == nil {
		b = getBuf()
		b = append(b, `{"jsonrpc":"2.0","id":`...)
		b = append(b, id...)
		b = append(b, `,"result":`...)
		if r, err := json.Marshal(result); err != nil {
			c.s.log.Error("cannot encode result", "err", err)
			e = &ipc.Error{Code: ipc.CodeInternal, Message: "cannot encode result", Data: &ipc.ErrorData{Code: ipc.ErrCodeInternal}}
		} else {
			b = append(append(b, r...), '}')
			clear(r) // a token: only b, cleared once written, keeps it
		}
	}
	if e != nil {
		var err error
		b, err = json.Marshal(ipc.Response{JSONRPC: "2.0", ID: id, Error: e})
		if err != nil {
			return
		}
	}
	c.enqueue(b, true)
}

func (c *conn) notify(method string, params any) {
	b, err := json.Marshal(ipc.Notification{JSONRPC: "2.0", Method: method, Params: params})
	if err != nil {
		c.s.log.Error("cannot encode notification", "method", method, "err", err)
		return
	}
	c.enqueue(b, false)
}

func invalidRequest(msg string) *ipc.Error {
	return &ipc.Error{Code: ipc.CodeInvalidRequest, Message: msg, Data: &ipc.ErrorData{Code: ipc.ErrCodeInvalidRequest}}
}

// validID reports whether id is a JSON-RPC id: a string, a number or null.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return string(id) == "null"
}

// handle decodes one message and starts its handler.
func (c *conn) handle(line []byte) {
	if err := ipc.CheckDepth(line, ipc.MaxDepth); err != nil {
		c.reply(nil, nil, invalidRequest("message "+err.Error()))
		return
	}
	var m ipc.Message
	if err := json.Unmarshal(line, &m); err != nil {
		c.reply(nil, nil, &ipc.Error{Code: ipc.CodeParseError, Message: "parse error",
			Data: &ipc.ErrorData{Code: ipc.ErrCodeInvalidRequest}})
		return
	}
	isNotification := m.ID == nil
	if m.Method == "" && (m.Result != nil || m.Error != nil) {
		return // a response: the server never sends requests, ignore it
	}
	if !isNotification && !validID(m.ID) {
		c.reply(nil, nil, invalidRequest("invalid id"))
		return
	}
	if m.JSONRPC != "2.0" || m.Method == "" {
		if !isNotification {
			c.reply(m.ID, nil, invalidRequest(`not a JSON-RPC 2.0 request`))
		}
		return
	}
	if isNotification {
		if m.Method == ipc.MethodCancel {
			var p ipc.CancelParams
			if json.Unmarshal(m.Params, &p) == nil && len(p.ID) > 0 {
				c.mu.Lock()
				cancel := c.inflight[string(p.ID)]
				c.mu.Unlock()
				if cancel != nil {
					cancel()
				}
			}
		}
		return // unknown notifications are ignored
	}
	h := c.s.handler(m.Method)
	if h == nil {
		c.reply(m.ID, nil, &ipc.Error{Code: ipc.CodeMethodNotFound, Message: "method not found: " + truncate(m.Method, 64)})
		return
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	// The agent's policy judges every request by its caller and, on a
	// restricted socket, by the socket's servers.
	ctx := agent.WithCaller(c.ctx, c.caller)
	if r := c.s.restrict; r != nil {
		ctx = agent.WithRestriction(ctx, r.path, r.servers)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	key := string(m.ID)
	c.mu.Lock()
	if _, dup := c.inflight[key]; dup {
		c.mu.Unlock()
		cancel()
		<-c.sem
		c.reply(m.ID, nil, invalidRequest("duplicate request id"))
		return
	}
	c.inflight[key] = cancel
	c.mu.Unlock()
	c.wg.Add(1)
	go c.run(reqCtx, cancel, h, &m)
}

func (c *conn) run(ctx context.Context, cancel context.CancelFunc, h handler, m *ipc.Message) {
	defer c.wg.Done()
	defer func() { <-c.sem }()
	start := time.Now()
	var (
		result any
		after  func()
		err    error
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				// Never log params: they may hold secrets.
				c.s.log.Error("handler panic", "method", m.Method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				result, after, err = nil, nil, &ipc.Error{Code: ipc.CodeInternal, Message: "internal error",
					Data: &ipc.ErrorData{Code: ipc.ErrCodeInternal}}
			}
		}()
		result, after, err = h(ctx, c, m)
	}()
	cancelled := ctx.Err() != nil && c.ctx.Err() == nil
	// The id is free again once the reply is on its way.
	c.mu.Lock()
	delete(c.inflight, string(m.ID))
	c.mu.Unlock()
	cancel()
	if err != nil {
		e := ipc.ErrorFor(err)
		if cancelled && errors.Is(err, context.Canceled) {
			e = &ipc.Error{Code: ipc.CodeCancelled, Message: "request cancelled", Data: &ipc.ErrorData{Code: ipc.ErrCodeCancelled}}
		}
		if c.s.log.Enabled(c.ctx, slog.LevelDebug) {
			c.s.log.Debug("request failed", "method", m.Method, "pid", c.caller.PID, "code", e.Code, "dur", time.Since(start))
		}
		c.reply(m.ID, nil, e)
		return
	}
	if c.s.log.Enabled(c.ctx, slog.LevelDebug) {
		c.s.log.Debug("request", "method", m.Method, "pid", c.caller.PID, "dur", time.Since(start))
	}
	c.reply(m.ID, result, nil)
	if after != nil {
		after()
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
