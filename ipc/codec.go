package ipc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
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

// Flusher is implemented by a MessageConn that buffers writes; the server
// flushes when its outbound queue runs empty.
type Flusher interface {
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

// WatchPeerClose calls gone once a half-closed peer closes completely;
// stop ends the watch.
func (l *LineConn) WatchPeerClose(gone func()) (stop func()) { return watchPeerClose(l.c, gone) }

// Close closes the connection.
func (l *LineConn) Close() error { return l.c.Close() }
