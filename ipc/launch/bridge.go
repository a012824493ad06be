package launch

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"encoding/json"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxMessage caps one JSON-RPC message in either direction (64 MiB).
const MaxMessage = 64 << 20

// MaxDepth is how deeply a message the bridge or the proxy reads may nest
// before they treat it as opaque bytes (see ipc.CheckDepth): MCP messages
// carry JSON Schemas, so far more than the agent's protocol needs.
const MaxDepth = 512

// decodable reports whether msg nests shallowly enough to decode.
func decodable(msg []byte) bool { return ipc.CheckDepth(msg, MaxDepth) == nil }

// DefaultLoginGrace is how long a request other than initialize waits for a
// login in progress before it is answered with an error telling the user to
// sign in.
const DefaultLoginGrace = 10 * time.Second

// CodeLoginRequired is the JSON-RPC error code the bridge answers requests
// with while the server needs a login (in the implementation-defined server
// error range of JSON-RPC 2.0).
const CodeLoginRequired = -32001

// BridgeConfig configures Bridge. Client, Server, In and Out are required.
type BridgeConfig struct {
	// Client talks to the agent.
	Client *ipc.Client
	// Server is a configured name or a URL; Account selects a session.
	Server, Account string
	// In carries the host's messages (stdin), Out the server's (stdout):
	// newline-delimited JSON-RPC, as the MCP stdio transport defines.
	In  io.Reader
	Out io.Writer
	// Status receives one-line progress for the user ("mcpkey bridge: …");
	// hosts show a stdio server's stderr in their MCP logs. nil discards.
	Status io.Writer
	// LoginWait bounds a login the bridge starts; 0 means the agent's
	// login_wait setting (default agent.DefaultLoginWait). initialize
	// waits for the login that long.
	LoginWait time.Duration
	// LoginGrace is how long other requests wait for a login in progress
	// before they are answered with an error saying what the user must do;
	// 0 means DefaultLoginGrace.
	LoginGrace time.Duration
	// Base sends the HTTP requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Logger receives debug logs (never message contents or tokens); nil
	// discards.
	Logger *slog.Logger
}

// Bridge relays MCP messages between a host on cfg.In/cfg.Out and the
// remote server cfg.Server until In ends (the host closed stdin) or ctx
// ends, then ends the remote session and returns nil.
//
// Every message goes through unread except for the few facts the HTTP
// transport itself needs: request ids (to match responses and resume
// streams), the initialize result's protocol version (for the
// MCP-Protocol-Version header) and the initialized notification (which
// opens the GET stream). Methods the bridge does not know, from any
// protocol version, are relayed like the others.
//
// The remote side is Streamable HTTP; when the server answers initialize
// with 400, 404 or 405 the bridge falls back to the 2024-11-05 HTTP+SSE
// transport (go-sdk's mcp.SSEClientTransport).
//
// Hand-written rather than go-sdk's StreamableClientTransport: used outside
// an mcp.Client its connection never learns the negotiated version nor
// opens the GET stream (both are driven by the unexported
// clientConnection.sessionUpdated hook), it decodes and re-encodes every
// message (numeric ids above 2^53 change; a 10 MB result pays two extra
// passes), and its Write blocks until the response headers arrive. The host
// side reads lines itself for the same reasons (mcp.IOTransport decodes and
// splits batches).
func Bridge(ctx context.Context, cfg BridgeConfig) error {
	if cfg.Client == nil || cfg.Server == "" || cfg.In == nil || cfg.Out == nil {
		return errors.New("bridge: Client, Server, In and Out are required")
	}
	t, err := resolve(ctx, cfg.Client, cfg.Server)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := newBridge(cfg, t)
	tokens := newTokenCache(cfg.Client)
	rt, err := t.transport(cfg.Client, cfg.Account, cfg.Base, tokens, func(lctx context.Context, scopes []string) error {
		defer tokens.invalidate()
		return b.login(ctx, lctx, scopes)
	})
	if err != nil {
		return err
	}
	if len(t.headers) == 0 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			tokens.watch(ctx)
		}()
	}
	b.http = &http.Client{Transport: rt}
	b.statusf("relaying stdio to %s", t.sc.URL)
	err = b.run(ctx, cancel)
	b.close()
	return err
}

type bridge struct {
	cfg    BridgeConfig
	t      *target
	url    string
	http   *http.Client
	log    *slog.Logger
	status io.Writer
	wait   time.Duration // login wait
	grace  time.Duration

	outMu sync.Mutex // serialises writes to cfg.Out
	smu   sync.Mutex // serialises writes to status

	// mu guards sessionID, version, initID, listening and legacy.
	mu        sync.Mutex
	sessionID string
	version   string
	initID    string // id of the initialize request in flight
	listening bool
	legacy    mcp.Connection

	gate *gate

	wg sync.WaitGroup // request and listener goroutines
}

func newBridge(cfg BridgeConfig, t *target) *bridge {
	b := &bridge{cfg: cfg, t: t, url: t.sc.URL, log: cfg.Logger, status: cfg.Status,
		wait: cfg.LoginWait, grace: cfg.LoginGrace}
	b.log = cmp.Or(b.log, slog.New(slog.DiscardHandler))
	b.status = cmp.Or(b.status, io.Discard)
	b.wait = cmp.Or(b.wait, t.sc.LoginWait)
	b.wait = cmp.Or(b.wait, agent.DefaultLoginWait)
	b.grace = cmp.Or(b.grace, DefaultLoginGrace)
	b.gate = &gate{client: cfg.Client, t: t, account: cfg.Account, wait: b.wait, statusf: b.statusf}
	return b
}

func (b *bridge) statusf(format string, a ...any) {
	b.smu.Lock()
	defer b.smu.Unlock()
	fmt.Fprintf(b.status, "mcpkey bridge: "+format+"\n", a...)
}

// run reads the host's messages until In ends or ctx ends.
//
// The reading goroutine dispatches each message itself: a request starts
// its own goroutine at once (so a long call never holds up a cancellation),
// notifications and responses go, in order, to one sequencer. No hop
// through another goroutine lies between stdin and the POST.
func (b *bridge) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	readErr := make(chan error, 1)
	seq := make(chan []byte, 64)
	seqDone := make(chan struct{})
	go func() {
		defer close(seqDone)
		for {
			select {
			case line, ok := <-seq:
				if !ok {
					return
				}
				b.send(ctx, line, peek(line))
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		spawnMu sync.Mutex // orders spawn's wg.Add before the final Wait
		closing bool
	)
	spawn := func(f func()) bool {
		spawnMu.Lock()
		defer spawnMu.Unlock()
		if closing {
			return false
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			f()
		}()
		return true
	}
	go func() {
		br := bufio.NewReaderSize(b.cfg.In, 64<<10)
		for {
			line, err := readLine(br, MaxMessage)
			if len(bytes.TrimSpace(line)) > 0 {
				p := peek(line)
				if p.call() || p.batch {
					if !spawn(func() { b.send(ctx, line, p) }) {
						return
					}
				} else {
					select {
					case seq <- line:
					case <-ctx.Done():
						return
					}
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	defer func() {
		cancel(nil)
		// The reader may stay blocked on In (ctx ended, stdin open); it
		// spawns nothing once closing is set.
		spawnMu.Lock()
		closing = true
		spawnMu.Unlock()
		b.wg.Wait()
	}()
	for {
		select {
		case err := <-readErr:
			// The reader is done: let the notifications before EOF go out
			// (bounded).
			close(seq)
			select {
			case <-seqDone:
			case <-time.After(5 * time.Second):
			}
			if errors.Is(err, io.EOF) {
				b.statusf("the host closed stdin; ending the session")
				return nil
			}
			if errors.Is(err, errLineTooLong) {
				return fmt.Errorf("message from the host over %d bytes", MaxMessage)
			}
			return fmt.Errorf("read stdin: %w", err)
		case <-ctx.Done():
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return nil
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line (without its newline), at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max+1 {
			// Skip the rest of the line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			err = cmp.Or(err, errLineTooLong)
			return nil, err
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

// peeked is what the bridge reads of a message.
type peeked struct {
	id     string // raw JSON id, "" when absent or null
	method string
	batch  bool
}

func (p peeked) call() bool { return p.id != "" && p.method != "" }

func peek(msg []byte) peeked {
	msg = bytes.TrimSpace(msg)
	if len(msg) > 0 && msg[0] == '[' {
		return peeked{batch: true}
	}
	if !decodable(msg) {
		return peeked{}
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	json.Unmarshal(msg, &m)
	id := string(bytes.TrimSpace(m.ID))
	if id == "null" {
		id = ""
	}
	return peeked{id: id, method: m.Method}
}

// emit writes one message to the host, on one line.
func (b *bridge) emit(msg []byte) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 {
		return
	}
	if bytes.IndexByte(msg, '\n') >= 0 && decodable(msg) {
		var c bytes.Buffer
		if json.Compact(&c, msg) == nil {
			msg = c.Bytes()
		}
	}
	b.noteResponse(msg)
	b.outMu.Lock()
	defer b.outMu.Unlock()
	b.cfg.Out.Write(append(msg[:len(msg):len(msg)], '\n'))
}

// noteResponse records the protocol version from the initialize result.
func (b *bridge) noteResponse(msg []byte) {
	b.mu.Lock()
	initID := b.initID
	b.mu.Unlock()
	if initID == "" || bytes.HasPrefix(msg, []byte("[")) {
		return
	}
	if p := peek(msg); p.method != "" || p.id != initID {
		return
	}
	var r struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	json.Unmarshal(msg, &r)
	b.mu.Lock()
	b.initID = ""
	if r.Result.ProtocolVersion != "" {
		b.version = r.Result.ProtocolVersion
	}
	b.mu.Unlock()
}

// replyError answers the host's request id with a JSON-RPC error.
func (b *bridge) replyError(id string, code int, message string, data any) {
	if id == "" {
		b.statusf("%s", message)
		return
	}
	e := map[string]any{"code": code, "message": message}
	if data != nil {
		e["data"] = data
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "error": e})
	b.emit(body)
}

// send forwards one host message.
func (b *bridge) send(ctx context.Context, line []byte, p peeked) {
	if conn := b.legacyConn(); conn != nil {
		b.sendLegacy(ctx, conn, line, p)
		return
	}
	if err := b.awaitLogin(ctx, p); err != nil {
		b.fail(p, err)
		return
	}
	if p.method == "initialize" {
		b.mu.Lock()
		b.initID = p.id
		b.mu.Unlock()
	}
	bctx := ctx // the bridge's, for the GET stream
	ctx, cancel := context.WithCancel(withLoginWait(ctx, b.waitFor(p)))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(line))
	if err != nil {
		b.fail(p, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	sent := b.setHeaders(req)
	resp, err := b.http.Do(req)
	if err != nil {
		b.fail(p, err)
		return
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && resp.StatusCode < 300 {
		b.mu.Lock()
		b.sessionID = cmp.Or(b.sessionID, sid)
		b.mu.Unlock()
	}
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent:
		if p.method == "notifications/initialized" {
			b.startListening(bctx)
		}
		return
	case resp.StatusCode >= 300:
		b.httpError(bctx, line, p, resp, sent) // bctx: a fallback connection outlives this request
		return
	}
	switch mediaType(resp.Header.Get("Content-Type")) {
	case "text/event-stream":
		b.relayStream(ctx, resp, p, cancel)
	case "application/json":
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMessage+1))
		if err != nil || len(body) > MaxMessage {
			b.fail(p, fmt.Errorf("read response: %w", cmp.Or(err, errLineTooLong)))
			return
		}
		b.emitBody(body)
	default:
		if p.call() {
			b.replyError(p.id, jsonrpc.CodeInternalError, fmt.Sprintf("mcpkey bridge: %s answered with content type %q", b.t.display(), resp.Header.Get("Content-Type")), nil)
		}
	}
	if p.method == "notifications/initialized" {
		b.startListening(bctx)
	}
}

// emitBody emits a JSON body: one message or a batch.
func (b *bridge) emitBody(body []byte) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' && decodable(body) {
		var msgs []json.RawMessage
		if json.Unmarshal(body, &msgs) == nil {
			for _, m := range msgs {
				b.emit(m)
			}
			return
		}
	}
	b.emit(body)
}

// setHeaders adds the session and protocol version headers; it reports
// whether a session id was sent.
func (b *bridge) setHeaders(req *http.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.version != "" {
		req.Header.Set("Mcp-Protocol-Version", b.version)
	}
	if b.sessionID != "" {
		req.Header.Set("Mcp-Session-Id", b.sessionID)
		return true
	}
	return false
}

// httpError handles an error status to a POST.
func (b *bridge) httpError(ctx context.Context, line []byte, p peeked, resp *http.Response, sentSession bool) {
	code := resp.StatusCode
	if p.method == "initialize" && !sentSession && (code == 400 || code == 404 || code == 405) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if b.fallback(ctx, line, p) {
			return
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		b.fail(p, &agent.NeedsLoginError{Server: b.t.display(), Reason: fmt.Sprintf("the server answered %d", code)})
		return
	case code == http.StatusNotFound && sentSession:
		b.mu.Lock()
		b.sessionID, b.listening = "", false
		b.mu.Unlock()
		b.statusf("%s ended the MCP session (404); the host must reconnect", b.t.display())
		b.replyError(p.id, jsonrpc.CodeInternalError, "mcpkey bridge: the server ended the MCP session; reconnect to start a new one", nil)
		return
	}
	// A JSON-RPC error in the body is the server's answer: relay it for
	// this request.
	var m struct {
		Error json.RawMessage `json:"error"`
	}
	if p.call() && decodable(body) && json.Unmarshal(body, &m) == nil && len(m.Error) > 0 && m.Error[0] == '{' {
		out, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(p.id), "error": m.Error})
		b.emit(out)
		return
	}
	msg := fmt.Sprintf("mcpkey bridge: %s answered HTTP %d", b.t.display(), code)
	if !p.call() {
		b.statusf("%s answered HTTP %d to %s", b.t.display(), code, cmp.Or(p.method, "a response"))
		return
	}
	b.replyError(p.id, jsonrpc.CodeInternalError, msg, nil)
}

// relayStream emits the messages of a POST's event stream and resumes it
// with Last-Event-ID (GET) when it breaks before the response arrived.
//
// After the response the stream is read on to its end (the server closes
// it, as it should), so that the HTTP connection goes back to the pool: a
// body closed early costs a new TCP connection for the next POST. A server
// that keeps the stream open is cut off after drainWait.
func (b *bridge) relayStream(ctx context.Context, resp *http.Response, p peeked, cancel context.CancelFunc) {
	var drain *time.Timer
	onResponse := func() {
		if drain == nil {
			drain = time.AfterFunc(drainWait, cancel)
		}
	}
	defer func() {
		if drain != nil {
			drain.Stop()
		}
	}()
	got, lastID, retry := b.readEvents(ctx, resp.Body, p.id, onResponse)
	for attempt := 0; !got && lastID != "" && p.call() && ctx.Err() == nil && attempt < 5; attempt++ {
		if !sleep(ctx, max(retry, time.Duration(attempt)*500*time.Millisecond)) {
			return
		}
		r, err := b.get(ctx, lastID)
		if err != nil || r.StatusCode != http.StatusOK || mediaType(r.Header.Get("Content-Type")) != "text/event-stream" {
			if r != nil {
				r.Body.Close()
			}
			continue
		}
		var id string
		got, id, retry = b.readEvents(ctx, r.Body, p.id, onResponse)
		r.Body.Close()
		if id != "" {
			lastID, attempt = id, -1
		}
	}
	if !got && p.call() && ctx.Err() == nil {
		b.replyError(p.id, jsonrpc.CodeInternalError, "mcpkey bridge: the server closed the stream without a response", nil)
	}
}

// drainWait bounds how long a POST's event stream stays open after the
// response to its request arrived.
const drainWait = 2 * time.Second

// readEvents emits a stream's messages until it ends; it reports whether
// the response to callID came (calling onResponse then), the last event
// id, and the server's retry hint.
func (b *bridge) readEvents(ctx context.Context, body io.Reader, callID string, onResponse func()) (got bool, lastID string, retry time.Duration) {
	readSSE(body, MaxMessage, func(ev sseEvent) bool {
		if ev.hasID {
			lastID = ev.ID
		}
		if ev.Retry > 0 {
			retry = ev.Retry
		}
		if len(ev.Data) == 0 || (ev.Name != "" && ev.Name != "message") {
			return ctx.Err() == nil
		}
		b.emit(ev.Data)
		if callID != "" && !got {
			if q := peek(ev.Data); q.method == "" && q.id == callID {
				got = true
				onResponse()
			}
		}
		return ctx.Err() == nil
	})
	return got, lastID, retry
}

// get opens a GET event stream, resuming after lastID when set.
func (b *bridge) get(ctx context.Context, lastID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(withLoginWait(ctx, b.wait), http.MethodGet, b.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	b.setHeaders(req)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return b.http.Do(req)
}

// startListening opens the GET stream for server-initiated messages, once.
func (b *bridge) startListening(ctx context.Context) {
	b.mu.Lock()
	if b.listening || b.version >= "2026-07-28" {
		b.mu.Unlock()
		return
	}
	b.listening = true
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.listen(ctx)
	}()
}

// listen keeps the GET stream open, reconnecting with Last-Event-ID and
// backoff, until ctx ends or the server says it offers none.
func (b *bridge) listen(ctx context.Context) {
	var lastID string
	backoff := time.Second
	for ctx.Err() == nil {
		resp, err := b.get(ctx, lastID)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Debug("GET stream failed", "err", err)
		} else {
			ct := mediaType(resp.Header.Get("Content-Type"))
			if resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
				resp.Body.Close()
				// 405: the server offers no GET stream; other answers are
				// tolerated the same way (go-sdk#393).
				b.log.Debug("no GET stream", "status", resp.StatusCode, "content_type", ct)
				return
			}
			_, id, retry := b.readEvents(ctx, resp.Body, "", nil)
			resp.Body.Close()
			if id != "" {
				lastID, backoff = id, time.Second
			}
			if retry > 0 {
				backoff = retry
			}
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// close ends the remote session: DELETE for Streamable HTTP, closing the
// stream for HTTP+SSE.
func (b *bridge) close() {
	b.mu.Lock()
	sid, legacy := b.sessionID, b.legacy
	b.mu.Unlock()
	if legacy != nil {
		legacy.Close()
		return
	}
	if sid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(withLoginWait(ctx, 0), http.MethodDelete, b.url, nil)
	if err != nil {
		return
	}
	b.setHeaders(req)
	if resp, err := b.http.Do(req); err == nil {
		resp.Body.Close()
	}
}

// ---- legacy HTTP+SSE (2024-11-05) ----

func (b *bridge) legacyConn() mcp.Connection {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.legacy
}

// fallback connects with the 2024-11-05 HTTP+SSE transport and resends the
// initialize request there. It reports whether that worked.
func (b *bridge) fallback(ctx context.Context, line []byte, p peeked) bool {
	st := &mcp.SSEClientTransport{Endpoint: b.url, HTTPClient: b.http, MaxEventSize: MaxMessage}
	conn, err := st.Connect(withLoginWait(ctx, b.wait))
	if err != nil {
		b.log.Debug("HTTP+SSE fallback failed", "err", err)
		return false
	}
	b.mu.Lock()
	b.legacy = conn
	b.mu.Unlock()
	b.statusf("%s does not speak Streamable HTTP; using the 2024-11-05 HTTP+SSE transport", b.t.display())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			m, err := conn.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					b.statusf("the server closed the HTTP+SSE stream: %v", err)
				}
				return
			}
			data, err := jsonrpc.EncodeMessage(m)
			if err == nil {
				b.emit(data)
			}
		}
	}()
	b.sendLegacy(ctx, conn, line, p)
	return true
}

func (b *bridge) sendLegacy(ctx context.Context, conn mcp.Connection, line []byte, p peeked) {
	if err := b.awaitLogin(ctx, p); err != nil {
		b.fail(p, err)
		return
	}
	m, err := jsonrpc.DecodeMessage(line)
	if err != nil {
		b.replyError(p.id, jsonrpc.CodeParseError, "mcpkey bridge: invalid JSON-RPC message", nil)
		return
	}
	if err := conn.Write(withLoginWait(ctx, b.waitFor(p)), m); err != nil {
		b.fail(p, err)
	}
}

// ---- login ----

// waitFor is how long message p waits for a login: initialize, responses
// and notifications wait the full login wait (the host can do nothing
// without the first; the others have nobody to tell); other requests only
// the grace period, then get an error saying what to do.
func (b *bridge) waitFor(p peeked) time.Duration {
	if p.method == "initialize" || !p.call() {
		return b.wait
	}
	return b.grace
}

// login is the AuthTransport's Login for the bridge.
func (b *bridge) login(bctx, ctx context.Context, scopes []string) error {
	return b.gate.login(bctx, ctx, scopes)
}

// awaitLogin holds message p while a login runs, up to waitFor(p); it
// returns errLoginPending if the login is still running then.
func (b *bridge) awaitLogin(ctx context.Context, p peeked) error {
	return b.gate.await(ctx, b.waitFor(p))
}

// fail answers request p (or reports a failed notification) with an error
// that says what the user can do about it.
func (b *bridge) fail(p peeked, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	name := b.t.display()
	var nl *agent.NeedsLoginError
	switch {
	case errors.Is(err, errLoginPending), errors.As(err, &nl), errors.Is(err, agent.ErrNeedsLogin):
		msg, data := b.gate.loginError()
		b.replyError(p.id, CodeLoginRequired, msg, data)
	default:
		b.replyError(p.id, jsonrpc.CodeInternalError, fmt.Sprintf("mcpkey bridge: %s: %v", name, err), nil)
	}
}
