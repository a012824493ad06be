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
	if strings.ContainsAny(secret, "\r\n") {
		// It would end the header early; never echo it.
		return nil, fmt.Errorf("connect to agent on %s: the secret holds a line break", u.Redacted())
	}
	// No Proxy: the request carries the secret and goes to loopback only.
	d := websocket.Dialer{HandshakeTimeout: wsHandshakeTimeout}
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + secret}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		switch {
		case errors.Is(err, websocket.ErrBadHandshake) && resp != nil:
			// The agent's reason (e.g. "401 Unauthorized"); never the secret.
			return nil, fmt.Errorf("connect to agent on %s: %s", u.Redacted(), resp.Status)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w on %s", ErrNoAgent, u.Redacted())
		}
		return nil, fmt.Errorf("connect to agent on %s: %w", u.Redacted(), err)
	}
	ws.SetReadLimit(16 * DefaultMaxFrame)
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

// wsHandshakeTimeout bounds the HTTP upgrade.
const wsHandshakeTimeout = 10 * time.Second

// wsNetConn is a gorilla/websocket client connection seen as the Unix
// socket's line stream: each text frame read is returned followed by "\n",
// and each line written goes out as one text frame. gorilla answers the
// agent's pings while a goroutine reads.
//
// The gaps of gorilla's Conn it works around: it is not a net.Conn (this
// adapter is one, so the line client runs over either transport), a
// normal close reads as a *CloseError rather than io.EOF (mapped here), and
// any read or write error, a deadline included, is permanent. So the
// client reads from one goroutine without deadlines and never aborts a
// write with a deadline when a caller gives up (see clientConn.write);
// the only write deadline is the fixed one for a dead peer. As gorilla
// requires, writes (and SetWriteDeadline) come from one goroutine at a
// time, and reads from one.
type wsNetConn struct {
	ws *websocket.Conn
	r  io.Reader // the rest of the current frame, then "\n"
	w  []byte    // a line written in part
}

func (c *wsNetConn) Read(p []byte) (int, error) {
	for {
		if c.r != nil {
			n, err := c.r.Read(p)
			if err == io.EOF {
				c.r = nil
				err = nil
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		typ, r, err := c.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
				return 0, io.EOF // the agent closed (or restarted)
			}
			return 0, err
		}
		if typ != websocket.TextMessage {
			return 0, errors.New("websocket: binary frame from the agent")
		}
		c.r = io.MultiReader(r, strings.NewReader("\n"))
	}
}

func (c *wsNetConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		line, rest, whole := bytes.Cut(p, []byte{'\n'})
		if !whole {
			c.w = append(c.w, line...)
			return n + len(line), nil
		}
		if len(c.w) > 0 {
			line = append(c.w, line...)
			c.w = c.w[:0]
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, line); err != nil {
			return n, err
		}
		n += len(p) - len(rest)
		p = rest
	}
	return n, nil
}

// Close sends a normal close frame (best effort) and closes the connection.
func (c *wsNetConn) Close() error {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	return c.ws.Close()
}

func (c *wsNetConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsNetConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// NetConn returns the TCP connection under the WebSocket.
func (c *wsNetConn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *wsNetConn) SetDeadline(t time.Time) error {
	c.ws.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}
func (c *wsNetConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of the next writes; like them, it is
// called by one goroutine at a time (gorilla applies it per frame).
func (c *wsNetConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
