package ipc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// DialWebSocket connects to the agent's WebSocket at rawURL (ws:// on
// 127.0.0.1, ::1 or localhost; anything else is refused, so the secret never
// leaves the machine) and authenticates with secret (Authorization: Bearer).
// The returned net.Conn carries the Unix socket's line framing: each line
// written is sent as one text frame, and each text frame read is returned
// followed by "\n", so the line-protocol client runs over it unchanged.
// When nothing listens at rawURL the error wraps ErrNoAgent.
func DialWebSocket(ctx context.Context, rawURL, secret string) (net.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "ws" || u.User != nil {
		return nil, fmt.Errorf("agent websocket %q: not a ws:// URL", rawURL)
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
	default:
		return nil, fmt.Errorf("agent websocket %q: the agent listens on loopback only", rawURL)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	// Proxy is nil: never send the secret through an HTTP proxy.
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + secret}})
	if err != nil {
		if resp != nil {
			// The agent's reason (e.g. "missing or wrong secret"); never the secret.
			return nil, fmt.Errorf("connect to agent on %s: %s", u.Redacted(), resp.Status)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on %s", ErrNoAgent, u.Redacted())
		}
		return nil, fmt.Errorf("connect to agent on %s: %w", u.Redacted(), err)
	}
	return &wsNetConn{ws: ws}, nil
}

// dialAgentWebSocket dials the agent's WebSocket named by addr, which is
// either "ws://HOST:PORT/v1/ws#/path/to/agent.ws.json" (the URL, and the
// file holding the secret after '#') or a socket path, whose sibling
// agent.ws.json gives both the URL and the secret.
func dialAgentWebSocket(ctx context.Context, addr string) (net.Conn, error) {
	if strings.HasPrefix(addr, "ws://") {
		u, file, ok := strings.Cut(addr, "#")
		if !ok || file == "" {
			return nil, fmt.Errorf("agent websocket %q: name the secret file after '#': ws://127.0.0.1:PORT%s#/path/to/%s", u, WebSocketPath, WebSocketInfoFile)
		}
		info, err := ReadWebSocketInfo(file)
		if err != nil {
			return nil, err
		}
		return DialWebSocket(ctx, u, info.Secret)
	}
	file := WebSocketInfoPath(addr)
	info, err := ReadWebSocketInfo(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w with a websocket: no %s (is the agent running with --ws?)", ErrNoAgent, file)
	}
	if err != nil {
		return nil, err
	}
	return DialWebSocket(ctx, info.URL, info.Secret)
}

// isWebSocketAddr reports whether a socket address ($MCPKEY_SOCK, Client.Path)
// names the agent's WebSocket.
func isWebSocketAddr(addr string) bool { return strings.HasPrefix(addr, "ws://") }

// wsNetConn adapts a client-side WebSocket to the line framing (see
// DialWebSocket).
type wsNetConn struct {
	ws *websocket.Conn

	// Reader state, used by one reader at a time.
	r    io.Reader // the current message, nil between messages
	rerr error     // sticky: gorilla panics on repeated reads of a failed conn

	closeOnce sync.Once
}

// Read returns message bytes, then "\n" at each message's end.
func (c *wsNetConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
					err = io.EOF
				}
				c.rerr = err
				return 0, err
			}
			if typ != websocket.TextMessage {
				c.rerr = errors.New("agent sent a binary frame")
				return 0, c.rerr
			}
			c.r = r
		}
		// Fill p with the rest of the message and its newline when it fits:
		// the line reader cannot use part of a message anyway.
		n := 0
		for n < len(p) {
			m, err := c.r.Read(p[n:])
			n += m
			if err == io.EOF {
				c.r = nil
				if n < len(p) {
					p[n] = '\n'
					return n + 1, nil
				}
				// p is full: the next Read owes the newline.
				c.r = eofReader{}
				return n, nil
			}
			if err != nil {
				c.rerr = err
				return n, err
			}
		}
		return n, nil
	}
}

// eofReader is a finished message whose newline is still owed.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Write sends each complete line of p as one text frame (the client writes
// whole lines).
func (c *wsNetConn) Write(p []byte) (int, error) {
	rest := p
	for len(rest) > 0 {
		line, tail, _ := bytes.Cut(rest, []byte{'\n'})
		rest = tail
		if len(line) == 0 {
			continue
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, line); err != nil {
			return len(p) - len(rest) - len(line), err
		}
	}
	return len(p), nil
}

// Close sends a normal close frame and closes the connection.
func (c *wsNetConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
		err = c.ws.Close()
	})
	return err
}

func (c *wsNetConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsNetConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// NetConn returns the underlying TCP connection (tests).
func (c *wsNetConn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *wsNetConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.ws.SetReadDeadline(t)
}

func (c *wsNetConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to later frames and to a write in progress.
func (c *wsNetConn) SetWriteDeadline(t time.Time) error {
	c.ws.SetWriteDeadline(t)
	return c.ws.NetConn().SetWriteDeadline(t)
}
