package ipc

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
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
	c, err := dialWS(ctx, u, secret)
	if err != nil {
		var refused *wsRefusedError
		switch {
		case errors.As(err, &refused):
			// The agent's reason (e.g. "401 Unauthorized"); never the secret.
			return nil, fmt.Errorf("connect to agent on %s: %s", u.Redacted(), refused.status)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w on %s", ErrNoAgent, u.Redacted())
		}
		return nil, fmt.Errorf("connect to agent on %s: %w", u.Redacted(), err)
	}
	return c, nil
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

// The client side of RFC 6455 below is hand-written; the server side
// (websocket.go) uses gorilla/websocket.
//
// The gap: ipc.Client reads replies on the goroutine that waits for one, and
// a caller whose context ends while it is blocked reading gets out by a read
// deadline in the past; later another goroutine reads on, and must continue
// exactly where the interrupted read stopped (mid-header, mid-payload,
// between frames). Any read error, a timeout included, is permanent on a
// gorilla/websocket Conn (and it panics after repeated reads of a failed
// conn), so it cannot serve that client. wsClientConn is a resumable state
// machine over its own buffer instead: an error from the TCP conn is
// returned with the state intact and is not sticky.

const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA

	wsCloseNormal    = 1000
	wsCloseGoingAway = 1001
	wsCloseNoStatus  = 1005 // never on the wire: a close frame without a code

	wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	// wsHandshakeTimeout bounds the HTTP upgrade.
	wsHandshakeTimeout = 10 * time.Second
	// wsReadBuffer holds frame headers, control frames and small messages;
	// larger payloads stream through it (or straight into the caller's p).
	wsReadBuffer = 4096
	// wsKeepWriteBuffer is the largest write buffer kept between writes.
	wsKeepWriteBuffer = 64 << 10
)

// errWSProtocol is wrapped by the (sticky) errors for frames that break
// RFC 6455.
var errWSProtocol = errors.New("websocket protocol error")

// wsRefusedError is a handshake answered with a status other than 101.
type wsRefusedError struct{ status string }

func (e *wsRefusedError) Error() string { return "handshake refused: " + e.status }

// dialWS dials u (no proxy, ever) and performs the opening handshake,
// bounded by ctx and wsHandshakeTimeout.
func dialWS(ctx context.Context, u *url.URL, secret string) (*wsClientConn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	c, err := handshakeWS(ctx, nc, u, secret)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshakeWS sends the upgrade request over nc and checks the answer.
func handshakeWS(ctx context.Context, nc net.Conn, u *url.URL, secret string) (*wsClientConn, error) {
	hctx, cancel := context.WithTimeout(ctx, wsHandshakeTimeout)
	defer cancel()
	if dl, ok := hctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// A cancelled ctx interrupts a blocked read or write.
	stop := context.AfterFunc(hctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	c, err := upgradeWS(nc, u, secret)
	if !stop() || hctx.Err() != nil {
		return nil, hctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return c, nil
}

func upgradeWS(nc net.Conn, u *url.URL, secret string) (*wsClientConn, error) {
	var key [16]byte
	crand.Read(key[:]) // never fails: since Go 1.24 it crashes the program instead
	wsKey := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\n" +
		"Authorization: Bearer " + secret + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, wsReadBuffer)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("read handshake response: %w", err)
	}
	resp.Body.Close() // 101 has no body; a refusal's is not needed
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, &wsRefusedError{status: resp.Status}
	}
	sum := sha1.Sum([]byte(wsKey + wsAcceptGUID))
	switch {
	case !headerHasToken(resp.Header, "Upgrade", "websocket"):
		return nil, errors.New("handshake: no Upgrade: websocket in the response")
	case !headerHasToken(resp.Header, "Connection", "upgrade"):
		return nil, errors.New("handshake: no Connection: Upgrade in the response")
	case resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return nil, errors.New("handshake: wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, errors.New("handshake: the agent chose an extension that was not offered")
	}
	c := newWSClientConn(nc)
	// Frames that came with the response are the start of the stream.
	rest, _ := br.Peek(br.Buffered())
	c.w = copy(c.buf, rest)
	return c, nil
}

// headerHasToken reports whether header name of h lists token (a
// comma-separated list, case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsClientConn is a client-side WebSocket adapted to the line framing (see
// DialWebSocket).
type wsClientConn struct {
	c net.Conn

	// Reader state, used by one reader at a time. buf[r:w] holds bytes read
	// from c and not yet consumed.
	buf  []byte
	r, w int
	// remaining counts the payload bytes of the current data frame not yet
	// delivered; fin is that frame's FIN bit.
	remaining int64
	fin       bool
	// inMsg is true from a text frame without FIN to the final continuation.
	inMsg bool
	// nl is true when a message has ended and its "\n" is still owed.
	nl bool
	// rerr is sticky: a protocol error, or the end of the stream after a
	// close frame (io.EOF for a normal close).
	rerr error

	// wmu serialises frame writes (Write, and the reader's pongs and
	// close reply) and guards wbuf, rng and closeSent.
	wmu  sync.Mutex
	wbuf []byte
	// rng draws the mask keys. ChaCha8 is a cryptographically strong
	// generator, seeded from crypto/rand, so keys are unpredictable as RFC
	// 6455 §5.3 asks.
	rng       *rand.ChaCha8
	closeSent bool

	closeOnce sync.Once
}

func newWSClientConn(nc net.Conn) *wsClientConn {
	var seed [32]byte
	crand.Read(seed[:]) // never fails (see upgradeWS)
	return &wsClientConn{c: nc, buf: make([]byte, wsReadBuffer), rng: rand.NewChaCha8(seed)}
}

// Read returns message bytes, then "\n" at each message's end: as many as fit
// in p, without blocking for more once it has some. An error from the TCP
// conn (a deadline included) leaves the state intact, and the next Read
// resumes where this one stopped; io.EOF inside a frame or message reads as
// io.ErrUnexpectedEOF. A close frame with 1000 or 1001 reads as io.EOF.
func (c *wsClientConn) Read(p []byte) (int, error) {
	if c.rerr != nil {
		return 0, c.rerr
	}
	n := 0
	for n < len(p) {
		switch {
		case c.nl:
			p[n] = '\n'
			n++
			c.nl = false
		case c.remaining > 0:
			if c.r == c.w {
				if n > 0 {
					return n, nil
				}
				if c.remaining >= int64(len(c.buf)) && len(p) >= len(c.buf) {
					// A large payload: read it straight into p.
					k, err := c.c.Read(p[:min(int64(len(p)), c.remaining)])
					c.remaining -= int64(k)
					n += k
					if c.remaining == 0 {
						c.endFrame()
					}
					if err != nil && k == 0 {
						return 0, c.tcpErr(err)
					}
					continue
				}
				if err := c.fill(); err != nil {
					return 0, err
				}
				continue
			}
			k := copy(p[n:int(min(int64(len(p)), int64(n)+c.remaining))], c.buf[c.r:c.w])
			c.r += k
			n += k
			c.remaining -= int64(k)
			if c.remaining == 0 {
				c.endFrame()
			}
		default:
			ok, err := c.nextFrame()
			if err != nil {
				c.rerr = err
				if n > 0 {
					return n, nil
				}
				return 0, err
			}
			if !ok {
				if n > 0 {
					return n, nil
				}
				if err := c.fill(); err != nil {
					return 0, err
				}
			}
		}
	}
	return n, nil
}

// endFrame is called when a data frame's payload is all delivered.
func (c *wsClientConn) endFrame() {
	if c.fin {
		c.inMsg = false
		c.nl = true
	}
}

// fill reads once from c into buf, after moving the unconsumed bytes to its
// start (fewer than a control frame's 127 when fill is called).
func (c *wsClientConn) fill() error {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	k, err := c.c.Read(c.buf[c.w:])
	c.w += k
	if k > 0 || err == nil {
		return nil // an error comes back on the next Read
	}
	return c.tcpErr(err)
}

// tcpErr is err from a Read on c, with io.EOF inside a frame or message
// turned into io.ErrUnexpectedEOF.
func (c *wsClientConn) tcpErr(err error) error {
	if err == io.EOF && (c.w > c.r || c.remaining > 0 || c.inMsg) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextFrame consumes the next frame header, or a whole control frame, once
// all its bytes are buffered; it reports false when more bytes are needed.
func (c *wsClientConn) nextFrame() (bool, error) {
	b := c.buf[c.r:c.w]
	if len(b) < 2 {
		return false, nil
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0f
	switch {
	case b[0]&0x70 != 0:
		return false, fmt.Errorf("%w: reserved bits set in a frame from the agent", errWSProtocol)
	case b[1]&0x80 != 0:
		return false, fmt.Errorf("%w: masked frame from the agent", errWSProtocol)
	}
	hlen, length := 2, int64(b[1]&0x7f)
	switch length {
	case 126:
		hlen = 4
	case 127:
		hlen = 10
	}
	if len(b) < hlen {
		return false, nil
	}
	switch hlen {
	case 4:
		length = int64(binary.BigEndian.Uint16(b[2:]))
	case 10:
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			return false, fmt.Errorf("%w: frame length with the top bit set", errWSProtocol)
		}
		length = int64(v)
	}
	switch op {
	case wsOpText, wsOpContinuation:
		if op == wsOpText && c.inMsg {
			return false, fmt.Errorf("%w: a new message inside a fragmented one", errWSProtocol)
		}
		if op == wsOpContinuation && !c.inMsg {
			return false, fmt.Errorf("%w: continuation frame without a message", errWSProtocol)
		}
		c.r += hlen
		c.inMsg = true
		c.remaining, c.fin = length, fin
		if length == 0 {
			c.endFrame()
		}
		return true, nil
	case wsOpBinary:
		return false, errors.New("agent sent a binary frame")
	case wsOpClose, wsOpPing, wsOpPong:
		if !fin {
			return false, fmt.Errorf("%w: fragmented control frame", errWSProtocol)
		}
		if length > 125 {
			return false, fmt.Errorf("%w: control frame of %d bytes", errWSProtocol, length)
		}
		if len(b) < hlen+int(length) {
			return false, nil
		}
		payload := b[hlen : hlen+int(length)]
		c.r += hlen + int(length)
		switch op {
		case wsOpPing:
			// An error shows on the next write or read.
			c.writeControl(wsOpPong, payload)
		case wsOpClose:
			return false, c.closeReceived(payload)
		}
		return true, nil
	}
	return false, fmt.Errorf("%w: unknown opcode %#x", errWSProtocol, op)
}

// closeReceived answers a close frame and returns what Read reports from now
// on: io.EOF for a normal close.
func (c *wsClientConn) closeReceived(payload []byte) error {
	code := wsCloseNoStatus
	switch {
	case len(payload) == 1:
		return fmt.Errorf("%w: close frame of 1 byte", errWSProtocol)
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
	}
	c.wmu.Lock()
	if !c.closeSent {
		c.closeSent = true
		var echo []byte
		if code != wsCloseNoStatus {
			echo = payload[:2]
		}
		c.writeFrameLocked(wsOpClose, echo)
	}
	c.wmu.Unlock()
	if code == wsCloseNormal || code == wsCloseGoingAway {
		return io.EOF
	}
	if len(payload) > 2 {
		return fmt.Errorf("agent closed the websocket: %d %q", code, payload[2:])
	}
	return fmt.Errorf("agent closed the websocket: %d", code)
}

// errWSCloseSent is returned by Write after a close frame went out.
var errWSCloseSent = fmt.Errorf("agent websocket: %w", net.ErrClosed)

// Write sends each complete line of p as one text frame (the client writes
// whole lines), all of them in one write to the TCP conn.
func (c *wsClientConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return 0, errWSCloseSent
	}
	buf := c.wbuf[:0]
	for rest := p; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(line) > 0 {
			buf = c.appendFrameLocked(buf, wsOpText, line)
		}
	}
	if len(buf) == 0 {
		return len(p), nil
	}
	_, err := c.c.Write(buf)
	if cap(buf) <= wsKeepWriteBuffer {
		c.wbuf = buf
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeControl sends one control frame.
func (c *wsClientConn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errWSCloseSent
	}
	return c.writeFrameLocked(op, payload)
}

func (c *wsClientConn) writeFrameLocked(op byte, payload []byte) error {
	c.wbuf = c.appendFrameLocked(c.wbuf[:0], op, payload)
	_, err := c.c.Write(c.wbuf)
	return err
}

// appendFrameLocked appends one final, masked frame.
func (c *wsClientConn) appendFrameLocked(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	key := uint32(c.rng.Uint64())
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	maskWS(dst[start:], payload, key)
	return dst
}

// maskWS sets dst to src XOR the mask key, whose bytes on the wire are key
// in little-endian order; 8 bytes at a time.
func maskWS(dst, src []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:])^k8)
	}
	for ; i < len(src); i++ {
		dst[i] = src[i] ^ byte(key>>(8*(i&3)))
	}
}

// Close sends a normal close frame (bounded by a short write deadline) and
// closes the connection; it makes a blocked Read or Write return.
func (c *wsClientConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		// The deadline also ends a Write stuck on a peer that stopped
		// reading, which holds wmu.
		c.c.SetWriteDeadline(time.Now().Add(time.Second))
		c.wmu.Lock()
		if !c.closeSent {
			c.closeSent = true
			var code [2]byte
			binary.BigEndian.PutUint16(code[:], wsCloseNormal)
			c.writeFrameLocked(wsOpClose, code[:])
		}
		c.wmu.Unlock()
		err = c.c.Close()
	})
	return err
}

func (c *wsClientConn) LocalAddr() net.Addr  { return c.c.LocalAddr() }
func (c *wsClientConn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// NetConn returns the underlying TCP connection (tests).
func (c *wsClientConn) NetConn() net.Conn { return c.c }

func (c *wsClientConn) SetDeadline(t time.Time) error      { return c.c.SetDeadline(t) }
func (c *wsClientConn) SetReadDeadline(t time.Time) error  { return c.c.SetReadDeadline(t) }
func (c *wsClientConn) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }

var _ net.Conn = (*wsClientConn)(nil)
