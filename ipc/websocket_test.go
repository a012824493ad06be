package ipc_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// The protocol conformance tests (server_test.go) run over both transports.
var transports = []string{"unix", "websocket"}

func forEachTransport(t *testing.T, f func(t *testing.T, tr string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { f(t, tr) })
	}
}

// startServerOn serves b over transport tr until the test ends. The
// WebSocket server has no rate or connection limit here (the limit tests
// set their own): the conformance tests flood on purpose.
func startServerOn(t testing.TB, tr string, b server.Backend, opts server.ServerOptions) *testServer {
	t.Helper()
	if tr != "websocket" {
		return startServer(t, b, opts)
	}
	return startWSServer(t, b, opts, server.WebSocketOptions{MaxConns: 4096, RateLimit: -1})
}

// startWSServer serves b over a loopback WebSocket with wsOpts (Secret and
// Logger filled in) and writes agent.ws.json next to the returned path.
func startWSServer(t testing.TB, b server.Backend, opts server.ServerOptions, wsOpts server.WebSocketOptions) *testServer {
	t.Helper()
	path := filepath.Join(shortDir(t), "agent.sock") // never listened on: only its directory matters
	ln, err := ipc.ListenWebSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := ipc.NewWebSocketSecret()
	if err != nil {
		t.Fatal(err)
	}
	url := ipc.WebSocketURL(ln)
	if err := ipc.WriteWebSocketInfo(ipc.WebSocketInfoPath(path), ipc.WebSocketInfo{URL: url, Secret: secret, PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	wsOpts.Secret = secret
	if wsOpts.Logger == nil {
		wsOpts.Logger = opts.Logger
	}
	ws, err := server.NewWebSocketServer(server.NewServer(b, opts), wsOpts)
	if err != nil {
		t.Fatal(err)
	}
	stop := serveUntilStopped(t, func(ctx context.Context) error { return ws.Serve(ctx, ln) })
	return &testServer{path: path, logs: logs, stop: stop, transport: "websocket", url: url, secret: secret}
}

// rawWS is raw() for the WebSocket: a line-framed connection (DialWebSocket).
// Read deadlines would break a WebSocket for good, so the first readLine
// starts a goroutine that reads lines into r.lines; until then nothing
// reads (a client that never reads stays one).
func (s *testServer) rawWS(t testing.TB) *rawConn {
	t.Helper()
	c, err := ipc.DialWebSocket(context.Background(), s.url, s.secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: c, r: bufio.NewReaderSize(c, 1<<16), lines: make(chan []byte, 64), ws: true,
		done: make(chan struct{})}
	t.Cleanup(func() {
		close(r.done)
		c.Close()
	})
	return r
}

func (r *rawConn) startReader() {
	r.readerOnce.Do(func() {
		go func() {
			defer close(r.lines)
			for {
				line, err := r.r.ReadBytes('\n')
				if err != nil {
					return
				}
				select {
				case r.lines <- line:
				case <-r.done:
					return
				}
			}
		}()
	})
}

// readLine reads one line within d. A timeout is an error with Timeout().
func (r *rawConn) readLine(d time.Duration) ([]byte, error) {
	if !r.ws {
		r.c.SetReadDeadline(time.Now().Add(d))
		return r.r.ReadBytes('\n')
	}
	r.startReader()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case line, ok := <-r.lines:
		if !ok {
			return nil, io.EOF
		}
		return line, nil
	case <-t.C:
		return nil, os.ErrDeadlineExceeded
	}
}

// encode is msg as this transport puts it on the wire: a line, or a masked
// client text frame.
func (r *rawConn) encode(msg string) []byte {
	if !r.ws {
		return []byte(msg + "\n")
	}
	return wsFrame(websocket.TextMessage, []byte(msg))
}

// writeRaw writes b to the underlying stream, bypassing any framing.
func (r *rawConn) writeRaw(b []byte) {
	r.t.Helper()
	c := r.c
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	if _, err := c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// wsFrame is one final client frame with a zero mask key (XOR with zero:
// the payload is sent as is, which RFC 6455 allows).
func wsFrame(op int, payload []byte) []byte {
	b := []byte{0x80 | byte(op)}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// upgrade sends a WebSocket upgrade request with hdr (Host defaults to the
// listener's address) and returns the response.
func upgrade(t testing.TB, addr, path string, hdr [][2]string) *http.Response {
	t.Helper()
	resp, _ := upgradeConn(t, addr, path, hdr)
	return resp
}

// upgradeConn is upgrade that also returns the stream after the response.
func upgradeConn(t testing.TB, addr, path string, hdr [][2]string) (*http.Response, io.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", path)
	hasHost := false
	for _, h := range hdr {
		hasHost = hasHost || h[0] == "Host"
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if !hasHost {
		fmt.Fprintf(&b, "Host: %s\r\n", addr)
	}
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	return resp, br
}

func addrOf(s *testServer) string {
	return strings.TrimSuffix(strings.TrimPrefix(s.url, "ws://"), ipc.WebSocketPath)
}

const extOrigin = "chrome-extension://abcdefghijklmnop"

func TestWebSocketUpgradeChecks(t *testing.T) {
	s := startWSServer(t, &testBackend{}, server.ServerOptions{}, server.WebSocketOptions{AllowedOrigins: []string{extOrigin}})
	addr := addrOf(s)
	_, port, _ := net.SplitHostPort(addr)
	bearer := [2]string{"Authorization", "Bearer " + s.secret}
	wrongSecret := strings.Repeat("A", len(s.secret))
	cases := []struct {
		name   string
		path   string
		hdr    [][2]string
		status int
		proto  string // the Sec-WebSocket-Protocol answer on 101
	}{
		{"cli with secret", ipc.WebSocketPath, [][2]string{bearer}, 101, ""},
		{"host localhost", ipc.WebSocketPath, [][2]string{{"Host", "localhost:" + port}, bearer}, 101, ""},
		{"host ::1", ipc.WebSocketPath, [][2]string{{"Host", "[::1]:" + port}, bearer}, 101, ""},
		{"rebinding host", ipc.WebSocketPath, [][2]string{{"Host", "evil.test:" + port}, bearer}, 421, ""},
		{"dns rebinding pair", ipc.WebSocketPath, [][2]string{{"Host", "evil.test:" + port}, {"Origin", "http://evil.test:" + port}, bearer}, 421, ""},
		{"host without port", ipc.WebSocketPath, [][2]string{{"Host", "127.0.0.1"}, bearer}, 421, ""},
		{"host other port", ipc.WebSocketPath, [][2]string{{"Host", "127.0.0.1:1"}, bearer}, 421, ""},
		{"browser origin", ipc.WebSocketPath, [][2]string{{"Origin", "https://evil.test"}, bearer}, 403, ""},
		{"same-origin page", ipc.WebSocketPath, [][2]string{{"Origin", "http://127.0.0.1:" + port}, bearer}, 403, ""},
		{"file origin", ipc.WebSocketPath, [][2]string{{"Origin", "null"}, bearer}, 403, ""},
		{"empty origin", ipc.WebSocketPath, [][2]string{{"Origin", ""}, bearer}, 403, ""},
		{"origin prefix", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin + "x"}, bearer}, 403, ""},
		{"no secret", ipc.WebSocketPath, nil, 401, ""},
		{"wrong secret", ipc.WebSocketPath, [][2]string{{"Authorization", "Bearer " + wrongSecret}}, 401, ""},
		{"secret prefix", ipc.WebSocketPath, [][2]string{{"Authorization", "Bearer " + s.secret[:20]}}, 401, ""},
		{"basic scheme", ipc.WebSocketPath, [][2]string{{"Authorization", "Basic " + s.secret}}, 401, ""},
		{"secret in query", ipc.WebSocketPath + "?secret=" + s.secret, nil, 401, ""},
		{"subprotocol secret without origin", ipc.WebSocketPath, [][2]string{{"Sec-WebSocket-Protocol", "mcpkey.v1, mcpkey.secret." + s.secret}}, 401, ""},
		{"allowed origin no secret", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, {"Sec-WebSocket-Protocol", "mcpkey.v1"}}, 401, ""},
		{"allowed origin wrong secret", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, {"Sec-WebSocket-Protocol", "mcpkey.v1, mcpkey.secret." + wrongSecret}}, 401, ""},
		{"allowed origin secret without v1", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, {"Sec-WebSocket-Protocol", "mcpkey.secret." + s.secret}}, 401, ""},
		{"allowed origin subprotocol secret", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, {"Sec-WebSocket-Protocol", "mcpkey.v1, mcpkey.secret." + s.secret}}, 101, "mcpkey.v1"},
		{"allowed origin secret first", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, {"Sec-WebSocket-Protocol", "mcpkey.secret." + s.secret + ", mcpkey.v1"}}, 101, "mcpkey.v1"},
		{"allowed origin bearer", ipc.WebSocketPath, [][2]string{{"Origin", extOrigin}, bearer}, 101, ""},
		{"wrong path", "/v1/other", [][2]string{bearer}, 404, ""},
		{"root path", "/", [][2]string{bearer}, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := upgrade(t, addr, tc.path, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.proto {
				t.Errorf("Sec-WebSocket-Protocol = %q, want %q", got, tc.proto)
			}
			for k, vs := range resp.Header {
				for _, v := range vs {
					if strings.Contains(v, s.secret) {
						t.Errorf("response header %s echoes the secret", k)
					}
				}
			}
		})
	}
	logs := s.logs.String()
	if strings.Contains(logs, s.secret) || strings.Contains(logs, s.secret[:20]) || strings.Contains(logs, wrongSecret) {
		t.Error("an offered secret reached the log")
	}
	for _, want := range []string{"status=421", "status=403", "status=401", "status=404"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no refusal with %s logged", want)
		}
	}
}

func TestListenWebSocket(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.168.1.1:0", "example.com:0", "127.0.0.2:0", "localhost", "127.0.0.1:99999"} {
		if ln, err := ipc.ListenWebSocket(addr); err == nil {
			ln.Close()
			t.Errorf("ListenWebSocket(%q) succeeded", addr)
		}
	}
	for _, tc := range []struct{ addr, host string }{{"127.0.0.1:0", "127.0.0.1"}, {"localhost:0", "127.0.0.1"}, {"[::1]:0", "::1"}} {
		ln, err := ipc.ListenWebSocket(tc.addr)
		if err != nil {
			if tc.host == "::1" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatalf("ListenWebSocket(%q): %v", tc.addr, err)
		}
		if got := ln.Addr().(*net.TCPAddr).IP.String(); got != tc.host {
			t.Errorf("ListenWebSocket(%q) bound %s, want %s", tc.addr, got, tc.host)
		}
		if u := ipc.WebSocketURL(ln); !strings.HasPrefix(u, "ws://") || !strings.HasSuffix(u, "/v1/ws") {
			t.Errorf("URL = %q", u)
		}
		ln.Close()
	}
}

func TestWebSocketInfoFile(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, ipc.WebSocketInfoFile)
	secret, err := ipc.NewWebSocketSecret()
	if err != nil || len(secret) != 43 || strings.ContainsAny(secret, "+/=") {
		t.Fatalf("secret %d chars, %v", len(secret), err)
	}
	if other, _ := ipc.NewWebSocketSecret(); other == secret {
		t.Fatal("two secrets are equal")
	}
	want := ipc.WebSocketInfo{URL: "ws://127.0.0.1:1234/v1/ws", Secret: secret, PID: 42}
	if err := ipc.WriteWebSocketInfo(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	got, err := ipc.ReadWebSocketInfo(path)
	if err != nil || got != want {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if v := fmt.Sprint(slog.AnyValue(got).Resolve()); strings.Contains(v, secret) {
		t.Errorf("LogValue shows the secret: %s", v)
	}
	os.Chmod(path, 0o644)
	if _, err := ipc.ReadWebSocketInfo(path); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Errorf("a 0644 info file was accepted: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWebSocketClientAddressing(t *testing.T) {
	s := startServerOn(t, "websocket", &testBackend{}, server.ServerOptions{})
	ctx := context.Background()
	info := ipc.WebSocketInfoPath(s.path)

	t.Run("MCPKEY_SOCK ws URL with secret file", func(t *testing.T) {
		t.Setenv("MCPKEY_SOCK", s.url+"#"+info)
		c := &ipc.Client{}
		defer c.Close()
		tok, err := c.Token(ctx, agent.TokenRequest{Server: "a"})
		if err != nil || tok.AccessToken != "tok-a" {
			t.Fatalf("token = %+v, %v", tok, err)
		}
	})
	t.Run("ws URL without secret file", func(t *testing.T) {
		c := &ipc.Client{Path: s.url}
		_, err := c.Status(ctx)
		if err == nil || !strings.Contains(err.Error(), "#") {
			t.Fatalf("err = %v, want a hint about '#'", err)
		}
	})
	t.Run("WebSocket finds agent.ws.json", func(t *testing.T) {
		c := &ipc.Client{Path: s.path, WebSocket: true}
		defer c.Close()
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no agent.ws.json", func(t *testing.T) {
		c := &ipc.Client{Path: filepath.Join(shortDir(t), "agent.sock"), WebSocket: true}
		if _, err := c.Status(ctx); !errors.Is(err, ipc.ErrNoAgent) {
			t.Fatalf("err = %v, want ErrNoAgent", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, _ := net.Listen("tcp4", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, err := ipc.DialWebSocket(ctx, "ws://"+addr+"/v1/ws", s.secret); !errors.Is(err, ipc.ErrNoAgent) {
			t.Fatalf("err = %v, want ErrNoAgent", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		wrong := strings.Repeat("B", 43)
		_, err := ipc.DialWebSocket(ctx, s.url, wrong)
		if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("non-loopback URL", func(t *testing.T) {
		for _, u := range []string{"ws://example.com:80/v1/ws", "ws://10.0.0.1:1/v1/ws", "wss://127.0.0.1:1/v1/ws", "http://127.0.0.1:1/v1/ws"} {
			if _, err := ipc.DialWebSocket(ctx, u, s.secret); err == nil || errors.Is(err, ipc.ErrNoAgent) {
				t.Errorf("DialWebSocket(%q) = %v, want a refusal", u, err)
			}
		}
	})
}

// gorillaDial opens a WebSocket to s with its secret, bypassing the line
// adapter, for tests that look at frames and close codes.
func gorillaDial(t testing.TB, s *testServer) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + s.secret}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// readUntilClose reads messages until the connection fails and returns
// how many arrived and the error.
func readUntilClose(t testing.TB, ws *websocket.Conn) (int, error) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	n := 0
	for {
		_, _, err := ws.ReadMessage()
		if err != nil {
			return n, err
		}
		n++
	}
}

func wantClose(t testing.TB, err error, code int, text string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Text, text) {
		t.Fatalf("connection ended with %v, want close %d %q", err, code, text)
	}
}

const statusReq = `{"jsonrpc":"2.0","id":1,"method":"agent.status"}`

func TestWebSocketRateLimit(t *testing.T) {
	s := startWSServer(t, &testBackend{}, server.ServerOptions{}, server.WebSocketOptions{RateLimit: 5, RateBurst: 5})
	flooder := gorillaDial(t, s)
	for i := range 20 {
		if err := flooder.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"agent.status"}`, i)); err != nil {
			break // closed already
		}
	}
	n, err := readUntilClose(t, flooder)
	wantClose(t, err, websocket.ClosePolicyViolation, "rate limit")
	if n > 5 {
		t.Errorf("%d replies, more than the burst of 5", n)
	}
	// Another connection has its own bucket.
	other := gorillaDial(t, s)
	for range 3 {
		other.WriteMessage(websocket.TextMessage, []byte(statusReq))
		other.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := other.ReadMessage(); err != nil || !strings.Contains(string(msg), `"result"`) {
			t.Fatalf("other connection: %s, %v", msg, err)
		}
	}
}

func TestWebSocketMaxConns(t *testing.T) {
	s := startWSServer(t, &testBackend{}, server.ServerOptions{}, server.WebSocketOptions{MaxConns: 2})
	roundTrip := func(ws *websocket.Conn) error {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(statusReq)); err != nil {
			return err
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		return err
	}
	a, b := gorillaDial(t, s), gorillaDial(t, s)
	for _, ws := range []*websocket.Conn{a, b} {
		if err := roundTrip(ws); err != nil {
			t.Fatal(err)
		}
	}
	_, err := readUntilClose(t, gorillaDial(t, s))
	wantClose(t, err, websocket.CloseTryAgainLater, "too many connections")
	a.Close()
	waitFor(t, 10*time.Second, "a free slot", func() bool {
		ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + s.secret}})
		if err != nil {
			return false
		}
		defer ws.Close()
		return roundTrip(ws) == nil
	})
}

func TestWebSocketFrames(t *testing.T) {
	s := startWSServer(t, &testBackend{}, server.ServerOptions{MaxFrame: 4096}, server.WebSocketOptions{})
	t.Run("binary frame closes 1003", func(t *testing.T) {
		ws := gorillaDial(t, s)
		ws.WriteMessage(websocket.BinaryMessage, []byte(statusReq))
		n, err := readUntilClose(t, ws)
		wantClose(t, err, websocket.CloseUnsupportedData, "binary")
		if n != 0 {
			t.Errorf("%d replies to a binary frame", n)
		}
	})
	t.Run("oversize message: error reply, then close 1009", func(t *testing.T) {
		ws := gorillaDial(t, s)
		ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"`+strings.Repeat("a", 10000)+`"}}`))
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil || !strings.Contains(string(msg), "-32600") || !strings.Contains(string(msg), "4096") {
			t.Fatalf("reply = %s, %v", msg, err)
		}
		_, err = readUntilClose(t, ws)
		wantClose(t, err, websocket.CloseMessageTooBig, "4096")
	})
	t.Run("fragmented message is one message", func(t *testing.T) {
		ws := gorillaDial(t, s)
		w, _ := ws.NextWriter(websocket.TextMessage)
		for _, part := range []string{`{"jsonrpc":"2.0",`, `"id":7,`, `"method":"agent.status"}`} {
			w.Write([]byte(part))
			if f, ok := w.(interface{ Flush() error }); ok {
				f.Flush()
			}
		}
		w.Close()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil || !strings.Contains(string(msg), `"id":7,"result"`) {
			t.Fatalf("reply = %s, %v", msg, err)
		}
	})
}

func TestWebSocketKeepalive(t *testing.T) {
	idle := 300 * time.Millisecond
	s := startWSServer(t, &testBackend{}, server.ServerOptions{}, server.WebSocketOptions{PingInterval: 50 * time.Millisecond, IdleTimeout: idle})
	t.Run("a peer that never answers pings is closed", func(t *testing.T) {
		// A raw handshake, then silence: nothing reads the pings, so no pong.
		resp, stream := upgradeConn(t, addrOf(s), ipc.WebSocketPath, [][2]string{{"Authorization", "Bearer " + s.secret}})
		if resp.StatusCode != 101 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		start := time.Now()
		frames, err := io.ReadAll(stream) // pings, then the close frame and EOF
		if d := time.Since(start); d < idle*8/10 || d > 5*time.Second {
			t.Errorf("closed after %v (%v), want about %v", d, err, idle)
		}
		if len(frames) < 2 || frames[0] != 0x80|websocket.PingMessage {
			t.Errorf("no ping before the close: % x", frames[:min(len(frames), 8)])
		}
	})
	t.Run("a client that answers pings stays", func(t *testing.T) {
		c := s.client()
		defer c.Close()
		ctx := context.Background()
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(s.logs.String(), "websocket connection")
		<-time.After(4 * idle) // idle well past the timeout; pongs keep it open
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if after := strings.Count(s.logs.String(), "websocket connection"); after != before {
			t.Errorf("the client had to reconnect (%d connections, want %d)", after, before)
		}
	})
}

// TestWebSocketAbruptDrops: 1,000 connections opened and dropped without a
// close frame — before the handshake, right after it, and with a request
// in flight — leave no goroutine behind.
func TestWebSocketAbruptDrops(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	var inflight atomic.Int64
	b := &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		inflight.Add(1)
		defer inflight.Add(-1)
		<-ctx.Done()
		return agent.Token{}, ctx.Err()
	}}
	s := startWSServer(t, b, server.ServerOptions{}, server.WebSocketOptions{MaxConns: 2 * n})
	addr := addrOf(s)
	// Warm up once, so lazily started runtime goroutines count in the
	// baseline; wait until the server has finished with that connection.
	gorillaDial(t, s).Close()
	waitFor(t, 10*time.Second, "warm-up connection closed", func() bool { return contains(s.logs.String(), "connection closed") })
	base := runtime.NumGoroutine()

	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				switch i % 3 {
				case 0: // TCP only, dropped before any request
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						continue
					}
					c.Close()
				case 1: // upgraded, then dropped
					ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + s.secret}})
					if err != nil {
						errs <- err
						continue
					}
					ws.NetConn().Close()
				case 2: // a request in flight, then dropped
					ws, _, err := websocket.DefaultDialer.Dial(s.url, http.Header{"Authorization": {"Bearer " + s.secret}})
					if err != nil {
						errs <- err
						continue
					}
					ws.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"a"}}`))
					ws.NetConn().Close()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > base || inflight.Load() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after (%d requests in flight)\n%s", base, runtime.NumGoroutine(),
				inflight.Load(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	// And the server still serves.
	c := s.client()
	defer c.Close()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

const fuzzOrigin = "chrome-extension://fuzz"

// FuzzWebSocketUpgrade sends upgrade requests with arbitrary Host, Origin,
// Authorization and Sec-WebSocket-Protocol values ("$SECRET" stands for the
// real secret, so the corpus can come near it) to a real server: no input
// gets a 101 unless every check passes, every refusal has the status of the
// first failing check, and nothing panics.
func FuzzWebSocketUpgrade(f *testing.F) {
	s := startWSServer(f, &testBackend{}, server.ServerOptions{Logger: discardLogger()},
		server.WebSocketOptions{AllowedOrigins: []string{fuzzOrigin}, MaxConns: 1 << 16})
	addr := addrOf(s)
	_, port, _ := net.SplitHostPort(addr)
	for _, seed := range [][4]string{
		{"127.0.0.1:" + port, "", "Bearer $SECRET", ""},
		{"localhost:" + port, "", "bearer $SECRET", ""},
		{"[::1]:" + port, fuzzOrigin, "", "mcpkey.v1, mcpkey.secret.$SECRET"},
		{"evil.test:" + port, "http://evil.test:" + port, "Bearer $SECRET", ""},
		{"127.0.0.1:" + port, "https://evil.test", "Bearer $SECRET", ""},
		{"127.0.0.1:" + port, "null", "", "mcpkey.v1, mcpkey.secret.$SECRET"},
		{"127.0.0.1:" + port, "", "", "mcpkey.v1, mcpkey.secret.$SECRET"},
		{"127.0.0.1:" + port, fuzzOrigin, "Bearer $SECRETx", "mcpkey.secret.$SECRET"},
		{"127.0.0.1:" + port, "", "Bearer  $SECRET ", ""},
		{"127.0.0.1", "", "Bearer $SECRET", ""},
		{"", "", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, host, origin, auth, proto string) {
		for _, v := range []string{host, origin, auth, proto} {
			if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				t.Skip("control characters break the request framing, not the checks")
			}
		}
		auth = strings.ReplaceAll(auth, "$SECRET", s.secret)
		proto = strings.ReplaceAll(proto, "$SECRET", s.secret)
		var hdr [][2]string
		hdr = append(hdr, [2]string{"Host", host})
		if origin != "" {
			hdr = append(hdr, [2]string{"Origin", origin})
		}
		if auth != "" {
			hdr = append(hdr, [2]string{"Authorization", auth})
		}
		if proto != "" {
			hdr = append(hdr, [2]string{"Sec-WebSocket-Protocol", proto})
		}
		resp := upgrade(t, addr, ipc.WebSocketPath, hdr)
		want := expectedUpgrade(port, s.secret, trimOWS(host), trimOWS(origin), origin != "", trimOWS(auth), trimOWS(proto))
		got := resp.StatusCode
		switch {
		case got == 101 && want != 101:
			t.Fatalf("101 for host %q origin %q auth %q proto %q; want %d", host, origin, auth, proto, want)
		case want == 101 && got != 101:
			t.Fatalf("status %d for a request that passes every check", got)
		case got != want && got != http.StatusBadRequest:
			t.Fatalf("status %d, want %d (host %q origin %q)", got, want, host, origin)
		}
		if got == 101 && resp.Header.Get("Sec-WebSocket-Protocol") != "" && resp.Header.Get("Sec-WebSocket-Protocol") != "mcpkey.v1" {
			t.Fatalf("subprotocol answer %q", resp.Header.Get("Sec-WebSocket-Protocol"))
		}
	})
}

// trimOWS trims what net/http trims from header values.
func trimOWS(s string) string { return strings.Trim(s, " \t") }

// expectedUpgrade is the documented order of checks, written independently
// of the server: Host 421, Origin 403, secret 401, else 101.
func expectedUpgrade(port, secret, host, origin string, hasOrigin bool, auth, proto string) int {
	okHost := false
	for _, h := range []string{"127.0.0.1:", "localhost:", "[::1]:"} {
		okHost = okHost || strings.EqualFold(host, h+port)
	}
	if !okHost {
		return 421
	}
	if hasOrigin && origin != fuzzOrigin {
		return 403
	}
	if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(tok) == secret {
		return 101
	}
	if hasOrigin {
		var v1, sec bool
		for _, p := range strings.Split(proto, ",") {
			p = strings.TrimSpace(p)
			v1 = v1 || p == "mcpkey.v1"
			sec = sec || p == "mcpkey.secret."+secret
		}
		if v1 && sec {
			return 101
		}
	}
	return 401
}

// TestWebSocketInfoPerAgent: two agents with --ws on two sockets in one
// directory each publish their own file, and neither removes the other's;
// an agent never removes a file another agent wrote over its own.
func TestWebSocketInfoPerAgent(t *testing.T) {
	dir := shortDir(t)
	first, second := filepath.Join(dir, "agent.sock"), filepath.Join(dir, "work.sock")
	if p := ipc.WebSocketInfoPath(first); p != filepath.Join(dir, "agent.ws.json") {
		t.Errorf("info path for agent.sock = %s", p)
	}
	if ipc.WebSocketInfoPath(first) == ipc.WebSocketInfoPath(second) {
		t.Fatal("two sockets share one info file")
	}
	ln1, info1, err := ipc.PublishWebSocket("127.0.0.1:0", ipc.WebSocketInfoPath(first))
	if err != nil {
		t.Fatal(err)
	}
	defer ln1.Close()
	ln2, _, err := ipc.PublishWebSocket("127.0.0.1:0", ipc.WebSocketInfoPath(second))
	if err != nil {
		t.Fatal(err)
	}
	ln2.Close()
	if got, err := ipc.ReadWebSocketInfo(ipc.WebSocketInfoPath(first)); err != nil || got != info1 {
		t.Fatalf("the first agent's info after the second came and went: %+v, %v", got, err)
	}
	if _, err := os.Stat(ipc.WebSocketInfoPath(second)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the second agent left its info file: %v", err)
	}

	// Someone else's info replaced ours: closing leaves it.
	theirs := ipc.WebSocketInfo{URL: "ws://127.0.0.1:1/v1/ws", Secret: strings.Repeat("x", 43), PID: 1}
	if err := ipc.WriteWebSocketInfo(ipc.WebSocketInfoPath(first), theirs); err != nil {
		t.Fatal(err)
	}
	ln1.Close()
	if got, err := ipc.ReadWebSocketInfo(ipc.WebSocketInfoPath(first)); err != nil || got != theirs {
		t.Fatalf("another agent's info file after we closed: %+v, %v", got, err)
	}
}

// TestWebSocketHandshakeBounds: connections that never show the secret
// hold at most MaxHandshakes slots, each for at most HandshakeTimeout; a
// client with the secret that comes while they hold every slot waits in
// the backlog and is served once their time is up.
func TestWebSocketHandshakeBounds(t *testing.T) {
	const max, timeout = 4, 800 * time.Millisecond
	s := startWSServer(t, &testBackend{}, server.ServerOptions{}, server.WebSocketOptions{MaxHandshakes: max, HandshakeTimeout: timeout})
	addr := addrOf(s)
	var idle []net.Conn
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	start := time.Now()
	ws := gorillaDial(t, s) // waits for a slot
	waited := time.Since(start)
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(statusReq)); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("a client with the secret after the idle ones: %v", err)
	}
	if waited < timeout/2 {
		t.Errorf("the client with the secret was served after %v while %d idle connections held every slot for %v", waited, max, timeout)
	}
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("idle connection %d after %v: %v, want closed by the server", i, time.Since(start), err)
		}
	}
	// An upgraded connection outlives the handshake timeout.
	ws.SetReadDeadline(time.Now().Add(2 * timeout))
	var ne net.Error
	if _, _, err := ws.ReadMessage(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("upgraded connection after the handshake timeout: %v, want our own read deadline", err)
	}
}
