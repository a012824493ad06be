package ipc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/encoding/iso8601"

	"github.com/mcpkey/mcpkey/agent"
)

// MessageConn is a message-oriented connection: the transport under one
// dispatcher. The Unix socket uses LineConn (one JSON message per line); a
// WebSocket transport maps one message to one text frame.
//
// ReadMessage is called from one goroutine at a time; the slice it returns is
// valid until the next ReadMessage. WriteMessage is called from one goroutine
// at a time and must not keep msg after it returns (the server reuses
// buffers). Close may be called concurrently with both and makes them return.
type MessageConn interface {
	ReadMessage() ([]byte, error)
	WriteMessage(msg []byte) error
	Close() error
}

// flusher is implemented by a MessageConn that buffers writes; the server
// flushes when its outbound queue runs empty.
type flusher interface {
	Flush() error
}

// ErrFrameTooLarge is returned by ReadMessage for a message over the frame cap.
var ErrFrameTooLarge = errors.New("frame too large")

// LineConn frames JSON messages as `\n`-terminated lines over a net.Conn.
type LineConn struct {
	c net.Conn
	// MaxFrame caps one message without its newline (0 = DefaultMaxFrame).
	maxFrame int
	// frameTimeout bounds how long a started frame may take to complete (0 =
	// no limit). Idle time between frames is never limited.
	frameTimeout time.Duration
	// writeTimeout bounds each Flush (0 = no limit).
	writeTimeout time.Duration

	// read state, owned by the reader goroutine.
	buf  []byte
	r, w int
	// framing is true when the read deadline runs for the pending frame;
	// armed is true when any read deadline is set on c.
	framing, armed bool

	// wmu guards wbuf.
	wmu  sync.Mutex
	wbuf []byte
}

// LineConnOptions configures NewLineConn.
type LineConnOptions struct {
	// MaxFrame caps one message (0 = DefaultMaxFrame).
	MaxFrame int
	// FrameTimeout bounds how long a message, once its first byte has
	// arrived, may take to complete; 0 means no limit.
	FrameTimeout time.Duration
	// WriteTimeout bounds each write to the socket; 0 means no limit.
	WriteTimeout time.Duration
}

// NewLineConn wraps c.
func NewLineConn(c net.Conn, opts LineConnOptions) *LineConn {
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxFrame
	}
	return &LineConn{c: c, maxFrame: opts.MaxFrame, frameTimeout: opts.FrameTimeout,
		writeTimeout: opts.WriteTimeout, buf: make([]byte, 4096)}
}

// NetConn returns the underlying connection.
func (l *LineConn) NetConn() net.Conn { return l.c }

// ReadMessage returns the next line without its newline (a trailing "\r" is
// kept: JSON ignores it). Empty lines are skipped.
func (l *LineConn) ReadMessage() ([]byte, error) {
	scanned := l.r // bytes before scanned hold no newline
	for {
		if i := bytes.IndexByte(l.buf[scanned:l.w], '\n'); i >= 0 {
			end := scanned + i
			line := l.buf[l.r:end]
			l.r = end + 1
			l.framing = false // the next frame gets its own deadline
			if len(line) > l.maxFrame {
				return nil, ErrFrameTooLarge
			}
			if len(bytes.TrimSpace(line)) == 0 {
				scanned = l.r
				continue
			}
			return line, nil
		}
		scanned = l.w
		if l.w-l.r > l.maxFrame {
			return nil, ErrFrameTooLarge
		}
		// Need more bytes. Compact or grow the buffer.
		if l.r > 0 {
			n := copy(l.buf, l.buf[l.r:l.w])
			scanned -= l.r
			l.w, l.r = n, 0
		}
		if l.w == len(l.buf) {
			size := min(2*len(l.buf), l.maxFrame+1)
			if size <= len(l.buf) {
				return nil, ErrFrameTooLarge
			}
			nb := make([]byte, size)
			copy(nb, l.buf[:l.w])
			l.buf = nb
		}
		// A partial frame is pending: bound the time it may take.
		// Between frames the connection may idle forever.
		if l.frameTimeout > 0 {
			switch {
			case l.w > 0 && !l.framing:
				if err := l.c.SetReadDeadline(time.Now().Add(l.frameTimeout)); err != nil {
					return nil, err
				}
				l.framing, l.armed = true, true
			case l.w == 0 && l.armed:
				if err := l.c.SetReadDeadline(time.Time{}); err != nil {
					return nil, err
				}
				l.framing, l.armed = false, false
			}
		}
		n, err := l.c.Read(l.buf[l.w:])
		l.w += n
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				continue // deliver a final line first; the next Read fails again
			}
			if l.w > 0 && errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// WriteMessage buffers msg and a newline; Flush sends them. A message with a
// raw newline inside is refused (encoding/json never produces one).
func (l *LineConn) WriteMessage(msg []byte) error {
	if bytes.IndexByte(msg, '\n') >= 0 {
		return fmt.Errorf("message contains a newline")
	}
	l.wmu.Lock()
	l.wbuf = append(append(l.wbuf, msg...), '\n')
	l.wmu.Unlock()
	return nil
}

// Flush writes the buffered messages.
func (l *LineConn) Flush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if len(l.wbuf) == 0 {
		return nil
	}
	if l.writeTimeout > 0 {
		if err := l.c.SetWriteDeadline(time.Now().Add(l.writeTimeout)); err != nil {
			return err
		}
	}
	_, err := l.c.Write(l.wbuf)
	clear(l.wbuf) // replies carry tokens: leave no copy behind
	if cap(l.wbuf) > 64<<10 {
		l.wbuf = nil // don't pin a burst's buffer
	} else {
		l.wbuf = l.wbuf[:0]
	}
	return err
}

// PeerHalfClosed reports whether the peer shut down only its sending side,
// so replies can still reach it. ServeConn then answers in-flight requests
// before closing instead of cancelling them.
func (l *LineConn) PeerHalfClosed() bool { return peerHalfClosed(l.c) }

// watchPeerClose calls gone once a half-closed peer closes completely;
// stop ends the watch.
func (l *LineConn) watchPeerClose(gone func()) (stop func()) { return watchPeerClose(l.c, gone) }

// Close closes the connection.
func (l *LineConn) Close() error { return l.c.Close() }

// The token.get hot path: hand-written JSON for exactly its messages.
//
// Gap: the general decoder and encoder (segmentio/encoding/json) spend
// 1–2.5 µs on each of the four messages of a token.get (request, params,
// reply, client-side decode), mostly in reflection and in byte-by-byte
// validation of the 1–2 KB token, which together cost more than the
// socket round trip itself. The functions below handle only the plain
// form of those messages: ASCII strings without escapes, the known keys
// each at most once, no nulls. Anything else reports false and takes the
// general codec, so the two can never disagree on what a message means
// (fuzz_test.go checks that).

// plainByte marks the bytes a plain string may hold: printable ASCII but
// " \ (escapes) and < > & (which the HTML-safe encoder escapes).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// plainString reports whether s can be copied between quotes as is, both
// by a JSON decoder (no escape, no control character) and by the HTML-safe
// encoder.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

// appendPlain appends "s" when s is a plainString.
func appendPlain(b []byte, s string) ([]byte, bool) {
	if !plainString(s) {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendToken appends tok as json.Append would (the same bytes), or
// reports false when tok holds anything but plain strings.
func appendToken(b []byte, tok *agent.Token) ([]byte, bool) {
	b = append(b, `{"access_token":`...)
	b, ok := appendPlain(b, tok.AccessToken)
	if !ok {
		return b, false
	}
	b = append(b, `,"token_type":`...)
	if b, ok = appendPlain(b, tok.TokenType); !ok {
		return b, false
	}
	b = append(b, `,"expires_at":"`...)
	b = tok.ExpiresAt.AppendFormat(b, time.RFC3339Nano) // as the library does
	b = append(b, `","scopes":`...)
	if tok.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range tok.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendPlain(b, s); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"server":`...)
	if b, ok = appendPlain(b, tok.Server); !ok {
		return b, false
	}
	b = append(b, `,"account":`...)
	if b, ok = appendPlain(b, tok.Account); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendTokenParams appends p as json.Marshal would, or reports false.
func appendTokenParams(b []byte, p *TokenParams) ([]byte, bool) {
	b = append(b, `{"server":`...)
	b, ok := appendPlain(b, p.Server)
	if ok && p.Account != "" {
		b = append(b, `,"account":`...)
		b, ok = appendPlain(b, p.Account)
	}
	if ok && len(p.Scopes) > 0 {
		b = append(b, `,"scopes":[`...)
		for i, s := range p.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendPlain(b, s); !ok {
				break
			}
		}
		b = append(b, ']')
	}
	if ok && p.MinTTLSeconds != 0 {
		b = append(b, `,"min_ttl_seconds":`...)
		b = strconv.AppendInt(b, p.MinTTLSeconds, 10)
	}
	if ok && p.RejectedToken != "" {
		b = append(b, `,"rejected_token":`...)
		b, ok = appendPlain(b, p.RejectedToken)
	}
	return append(b, '}'), ok
}

// scanner reads the plain JSON subset above; any other input makes it
// fail (ok false), never guess.
type scanner struct {
	b  []byte
	i  int
	ok bool
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.space()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) {
	if s.ok && s.peek() == c {
		s.i++
		return
	}
	s.ok = false
}

// str returns a plain string's contents (without quotes).
func (s *scanner) str() []byte {
	if !s.ok || s.peek() != '"' {
		s.ok = false
		return nil
	}
	rest := s.b[s.i+1:]
	for n, c := range rest {
		if !plainByte[c] {
			if c != '"' {
				break
			}
			s.i += n + 2
			return rest[:n]
		}
	}
	s.ok = false
	return nil
}

// raw returns the text of the value scanned by f, quotes included.
func (s *scanner) raw(f func()) []byte {
	s.space()
	start := s.i
	f()
	if !s.ok {
		return nil
	}
	return s.b[start:s.i]
}

// uint returns a JSON integer ≥ 0 of at most 18 digits, as its text.
func (s *scanner) uint() []byte {
	if !s.ok {
		return nil
	}
	s.space()
	j := s.i
	for j < len(s.b) && j-s.i < 19 && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	n := j - s.i
	if n == 0 || n > 18 || (n > 1 && s.b[s.i] == '0') {
		s.ok = false
		return nil
	}
	v := s.b[s.i:j]
	s.i = j
	return v
}

// object calls field for each key of an object, which reads the value;
// field returns the key's bit in a set of known keys, or 0 for an unknown
// key. An unknown key, a key seen twice (decoders differ on which one
// wins) or a failed value fails the scan.
func (s *scanner) object(field func(key []byte) uint) {
	s.expect('{')
	if s.ok && s.peek() == '}' {
		s.i++
		return
	}
	var seen uint
	for s.ok {
		k := s.str()
		s.expect(':')
		if !s.ok {
			return
		}
		bit := field(k)
		if bit == 0 || seen&bit != 0 {
			s.ok = false
			return
		}
		seen |= bit
		if !s.ok {
			return
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.ok = false
		}
	}
}

// strs reads an array of plain strings (possibly empty).
func (s *scanner) strs() []string {
	s.expect('[')
	out := []string{}
	if s.ok && s.peek() == ']' {
		s.i++
		return out
	}
	for s.ok {
		out = append(out, string(s.str()))
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return out
		default:
			s.ok = false
		}
	}
	return nil
}

// end reports whether the scan succeeded with only spaces left.
func (s *scanner) end() bool {
	if s.ok && s.peek() != 0 {
		s.ok = false
	}
	return s.ok
}

// parseTokenGet recognises a plain token.get request and returns its raw
// id (a number or a string, as the general decoder keeps it) and params.
// A rejected_token takes the general path: it never comes from the cache.
func parseTokenGet(line []byte) (id []byte, p TokenParams, ok bool) {
	s := scanner{b: line, ok: true}
	var fields uint
	s.object(func(key []byte) uint {
		switch string(key) {
		case "jsonrpc":
			if string(s.str()) != "2.0" {
				s.ok = false
			}
			fields |= 1
			return 1
		case "id":
			id = s.raw(func() {
				if s.peek() == '"' {
					s.str()
				} else {
					s.uint()
				}
			})
			fields |= 2
			return 2
		case "method":
			if string(s.str()) != MethodTokenGet {
				s.ok = false
			}
			fields |= 4
			return 4
		case "params":
			s.object(func(key []byte) uint {
				switch string(key) {
				case "server":
					p.Server = string(s.str())
					return 1
				case "account":
					p.Account = string(s.str())
					return 2
				case "scopes":
					p.Scopes = s.strs()
					return 4
				case "min_ttl_seconds":
					if v := s.uint(); s.ok {
						n, err := strconv.ParseInt(string(v), 10, 64)
						p.MinTTLSeconds = n
						s.ok = err == nil
					}
					return 8
				}
				return 0
			})
			fields |= 8
			return 8
		}
		return 0
	})
	if !s.end() || fields != 15 {
		return nil, TokenParams{}, false
	}
	return id, p, true
}

// parseTokenReply decodes a plain successful token.get reply into tok as
// the general decoder would.
func parseTokenReply(line []byte, tok *agent.Token) bool {
	s := scanner{b: line, ok: true}
	var t agent.Token
	var fields uint
	s.object(func(key []byte) uint {
		switch string(key) {
		case "jsonrpc":
			if string(s.str()) != "2.0" {
				s.ok = false
			}
			fields |= 1
			return 1
		case "id":
			s.uint()
			return 2
		case "result":
			s.object(func(key []byte) uint {
				switch string(key) {
				case "access_token":
					t.AccessToken = string(s.str())
					return 1
				case "token_type":
					t.TokenType = string(s.str())
					return 2
				case "expires_at":
					v := s.str()
					if s.ok {
						var err error
						t.ExpiresAt, err = iso8601.Parse(string(v)) // the library's parser
						s.ok = err == nil
					}
					return 4
				case "scopes":
					if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
						s.i += len("null")
					} else {
						t.Scopes = s.strs()
					}
					return 8
				case "server":
					t.Server = string(s.str())
					return 16
				case "account":
					t.Account = string(s.str())
					return 32
				}
				return 0
			})
			fields |= 2
			return 4
		}
		return 0
	})
	if !s.end() || fields != 3 {
		return false
	}
	*tok = t
	return true
}
