package ipc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wscSecret is the bearer secret the test servers want.
const wscSecret = "wsclient-test-secret-0123456789"

// wscGorillaServer serves a gorilla WebSocket on loopback that checks the
// secret and hands each connection to serve.
func wscGorillaServer(t testing.TB, serve func(*websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+wscSecret {
			http.Error(w, "missing or wrong secret", http.StatusUnauthorized)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		serve(ws)
	}))
	t.Cleanup(s.Close)
	return "ws" + strings.TrimPrefix(s.URL, "http") + WebSocketPath
}

// wscEcho echoes every message until the connection ends.
func wscEcho(ws *websocket.Conn) {
	for {
		typ, m, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if err := ws.WriteMessage(typ, m); err != nil {
			return
		}
	}
}

func wscDial(t testing.TB, url string) *wsClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := DialWebSocket(ctx, url, wscSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*wsClientConn)
}

// wscLine is a line of n bytes (newline excluded) that differs at every
// position modulo 251, so a shifted or reordered byte shows.
func wscLine(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%251%26)
		if i%251 >= 26*9 {
			b[i] = '0' + byte(i%10)
		}
	}
	return b
}

func TestWSClientRoundTrip(t *testing.T) {
	c := wscDial(t, wscGorillaServer(t, wscEcho))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	sizes := []int{1, 110, 125, 126, 127, 65535, 65536, 65537, 1 << 20}
	for _, n := range sizes {
		want := wscLine(n)
		if _, err := c.Write(append(bytes.Clone(want), '\n')); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
		got, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		if !bytes.Equal(got[:len(got)-1], want) {
			t.Fatalf("message of %d bytes came back as %d bytes, different", n, len(got)-1)
		}
	}
	// Several lines in one Write: one frame (one message) each.
	var batch []byte
	for _, n := range sizes {
		batch = append(append(batch, wscLine(n)...), '\n')
	}
	if n, err := c.Write(batch); n != len(batch) || err != nil {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(batch))
	}
	for _, n := range sizes {
		got, err := br.ReadBytes('\n')
		if err != nil || !bytes.Equal(got[:len(got)-1], wscLine(n)) {
			t.Fatalf("batched message of %d bytes: %d bytes, %v", n, len(got), err)
		}
	}
}

// TestWSClientLargeReadsDirect reads a 1 MiB message with a buffer larger
// than the conn's own, the path that reads payload straight into p.
func TestWSClientLargeReadsDirect(t *testing.T) {
	c := wscDial(t, wscGorillaServer(t, wscEcho))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	want := wscLine(1 << 20)
	if _, err := c.Write(append(bytes.Clone(want), '\n')); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want)+1)
	p := make([]byte, 64<<10)
	for len(got) == 0 || got[len(got)-1] != '\n' {
		n, err := c.Read(p)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, append(want, '\n')) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want)+1)
	}
}

func TestWSClientGorillaFragments(t *testing.T) {
	want := wscLine(50000)
	url := wscGorillaServer(t, func(ws *websocket.Conn) {
		for range 2 {
			w, err := ws.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			// Writes larger than the 4 KiB write buffer: gorilla sends
			// a frame each time the buffer fills.
			for part := range slices.Chunk(want, 9000) {
				w.Write(part)
			}
			w.Close()
		}
	})
	c := wscDial(t, url)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	for i := range 2 {
		got, err := br.ReadBytes('\n')
		if err != nil || !bytes.Equal(got, append(bytes.Clone(want), '\n')) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// wscRawServer is the server end of a raw WebSocket: the test writes frames
// on it by hand and reads the client's frames.
type wscRawServer struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// wscRawListen accepts one client and answers its handshake with
// respond(key), which returns the whole HTTP response, plus anything to
// send in the same write.
func wscRawListen(t testing.TB, respond func(key string) string) (url string, srv <-chan *wscRawServer) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *wscRawServer, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			nc.Close()
			return
		}
		if _, err := io.WriteString(nc, respond(req.Header.Get("Sec-WebSocket-Key"))); err != nil {
			return
		}
		ch <- &wscRawServer{t: t, nc: nc, br: br}
	}()
	return "ws://" + ln.Addr().String() + WebSocketPath, ch
}

func wscAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func wsc101(key string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wscAccept(key) + "\r\n\r\n"
}

// wscRawDial connects a client to a raw server.
func wscRawDial(t testing.TB) (*wsClientConn, *wscRawServer) {
	t.Helper()
	url, srv := wscRawListen(t, wsc101)
	c := wscDial(t, url)
	return c, <-srv
}

// wscFrame is a server frame (unmasked): first is the first header byte
// (FIN, RSV and opcode), length the declared payload length.
func wscFrame(first byte, payload []byte) []byte {
	b := []byte{first}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

func (s *wscRawServer) write(b []byte) {
	s.t.Helper()
	if _, err := s.nc.Write(b); err != nil {
		s.t.Fatalf("server write: %v", err)
	}
}

// readFrame reads one client frame, which must be final and masked, and
// returns its opcode and unmasked payload.
func (s *wscRawServer) readFrame() (byte, []byte) {
	s.t.Helper()
	s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(s.br, h[:]); err != nil {
		s.t.Fatalf("server read: %v", err)
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 == 0 {
		s.t.Fatalf("client frame header % x: want FIN, no RSV, masked", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(s.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(s.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	io.ReadFull(s.br, key[:])
	p := make([]byte, n)
	if _, err := io.ReadFull(s.br, p); err != nil {
		s.t.Fatalf("server read payload: %v", err)
	}
	for i := range p {
		p[i] ^= key[i%4]
	}
	return h[0] & 0x0f, p
}

func TestWSClientRawFrames(t *testing.T) {
	t.Run("ping between fragments", func(t *testing.T) {
		c, s := wscRawDial(t)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var b []byte
		b = append(b, wscFrame(0x01, []byte("hello "))...) // text, FIN=0
		b = append(b, wscFrame(0x89, []byte("ping-payload"))...)
		b = append(b, wscFrame(0x00, []byte("brave "))...) // continuation, FIN=0
		b = append(b, wscFrame(0x8A, []byte("unsolicited pong"))...)
		b = append(b, wscFrame(0x80, nil)...)              // empty continuation, FIN=1
		b = append(b, wscFrame(0x81, []byte("second"))...) // a whole message
		b = append(b, wscFrame(0x01, []byte("new "))...)   // text, FIN=0
		b = append(b, wscFrame(0x80, []byte("world"))...)  // continuation, FIN=1
		b = append(b, wscFrame(0x81, nil)...)              // an empty message: an empty line
		b = append(b, wscFrame(0x81, []byte("after"))...)  //
		s.write(b)
		br := bufio.NewReader(c)
		for _, want := range []string{"hello brave \n", "second\n", "new world\n", "\n", "after\n"} {
			got, err := br.ReadString('\n')
			if got != want || err != nil {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
		if op, p := s.readFrame(); op != wsOpPong || string(p) != "ping-payload" {
			t.Fatalf("client answered op %#x %q, want a pong with the ping's payload", op, p)
		}
	})
	t.Run("frames in the handshake's write", func(t *testing.T) {
		url, srv := wscRawListen(t, func(key string) string {
			return wsc101(key) + string(wscFrame(0x81, []byte("early")))
		})
		c := wscDial(t, url)
		<-srv
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := bufio.NewReader(c).ReadString('\n')
		if got != "early\n" || err != nil {
			t.Fatalf("read %q, %v", got, err)
		}
	})
	t.Run("small p", func(t *testing.T) {
		c, s := wscRawDial(t)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s.write(append(wscFrame(0x81, []byte("abc")), wscFrame(0x81, []byte("de"))...))
		var got []byte
		p := make([]byte, 1)
		for len(got) < len("abc\nde\n") {
			n, err := c.Read(p)
			if n != 1 || err != nil {
				t.Fatalf("Read = %d, %v", n, err)
			}
			got = append(got, p[0])
		}
		if string(got) != "abc\nde\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("client frames are masked text frames", func(t *testing.T) {
		c, s := wscRawDial(t)
		lines := []string{"x", strings.Repeat("y", 125), strings.Repeat("z", 126), string(wscLine(70000))}
		if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n\n")); err != nil {
			t.Fatal(err)
		}
		for _, want := range lines {
			if op, p := s.readFrame(); op != wsOpText || string(p) != want {
				t.Fatalf("frame op %#x, %d bytes; want text of %d bytes", op, len(p), len(want))
			}
		}
	})
}

// wscCountingConn reports the size of every successful read from the TCP
// conn, so a test knows what the client has taken in.
type wscCountingConn struct {
	net.Conn
	got chan int
}

func (c *wscCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.got <- n
	}
	return n, err
}

// TestWSClientResumesAfterDeadline interrupts reads with a read deadline in
// the past mid-header, mid-payload, mid-control-frame and between
// fragments: each interrupted Read returns os.ErrDeadlineExceeded, and once
// the deadline is cleared the next Reads go on with the stream intact.
func TestWSClientResumesAfterDeadline(t *testing.T) {
	c, s := wscRawDial(t)
	counting := &wscCountingConn{Conn: c.c, got: make(chan int, 1<<16)}
	c.c = counting // before any Read

	type result struct {
		b   []byte
		err error
	}
	reads, results := make(chan struct{}), make(chan result)
	go func() {
		p := make([]byte, 8192)
		for range reads {
			n, err := c.Read(p)
			results <- result{bytes.Clone(p[:n]), err}
		}
	}()
	defer close(reads)
	wait := func() result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("Read did not return")
			return result{}
		}
	}
	sent, taken := 0, 0
	send := func(piece []byte) {
		t.Helper()
		s.write(piece)
		sent += len(piece)
	}
	// interrupt makes the client's pending Read, once it has taken in all
	// that was sent, return os.ErrDeadlineExceeded, and clears the deadline.
	interrupt := func() {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for taken < sent {
			select {
			case k := <-counting.got:
				taken += k
			case <-timeout:
				t.Fatalf("the client took in %d of %d bytes", taken, sent)
			}
		}
		c.SetReadDeadline(time.Unix(1, 0))
		r := wait()
		if !errors.Is(r.err, os.ErrDeadlineExceeded) || len(r.b) != 0 {
			t.Fatalf("interrupted Read = %q, %v; want os.ErrDeadlineExceeded", r.b, r.err)
		}
		c.SetReadDeadline(time.Time{})
	}
	// interrupted sends piece, which holds no complete data, to a pending
	// Read and interrupts it.
	interrupted := func(piece []byte) {
		t.Helper()
		reads <- struct{}{}
		send(piece)
		interrupt()
	}
	// delivered sends piece and expects Reads to return want.
	delivered := func(piece []byte, want string) {
		t.Helper()
		send(piece)
		var got []byte
		for len(got) < len(want) {
			reads <- struct{}{}
			r := wait()
			if r.err != nil {
				t.Fatalf("Read after %d bytes: %v", len(got), r.err)
			}
			got = append(got, r.b...)
		}
		if string(got) != want {
			t.Fatalf("read %d bytes %.40q..., want %d bytes %.40q...", len(got), got, len(want), want)
		}
	}

	// A 300-byte message: a 4-byte header.
	msg := wscLine(300)
	frame := wscFrame(0x81, msg)
	interrupted(frame[:1])  // mid-header
	interrupted(frame[1:3]) // mid-length
	interrupted(frame[3:4]) // header complete, no payload yet
	delivered(frame[4:104], string(msg[:100]))
	interrupted(nil) // mid-payload, nothing buffered
	delivered(frame[104:], string(msg[100:])+"\n")
	interrupted(nil) // between messages

	// A fragmented message with a ping between its fragments, the ping
	// split across reads.
	first := wscFrame(0x01, []byte("frag-one "))
	ping := wscFrame(0x89, []byte("pp"))
	delivered(append(bytes.Clone(first), ping[:1]...), "frag-one ")
	interrupted(ping[1:3]) // mid-ping
	interrupted(ping[3:])  // ping answered, between fragments
	if op, p := s.readFrame(); op != wsOpPong || string(p) != "pp" {
		t.Fatalf("client answered op %#x %q, want a pong", op, p)
	}
	delivered(wscFrame(0x80, []byte("frag-two")), "frag-two\n")

	// A 70,000-byte message (a 10-byte header), read partly straight into
	// the caller's buffer.
	big := wscLine(70000)
	frame = wscFrame(0x81, big)
	interrupted(frame[:5])
	interrupted(frame[5:10])
	delivered(frame[10:20010], string(big[:20000]))
	interrupted(nil)
	delivered(frame[20010:], string(big[20000:])+"\n")
	interrupted(nil)

	// The stream is still in step: a close frame ends it.
	send(wscFrame(0x88, binary.BigEndian.AppendUint16(nil, 1000)))
	reads <- struct{}{}
	if r := wait(); r.err != io.EOF {
		t.Fatalf("Read after a close frame = %q, %v; want io.EOF", r.b, r.err)
	}
}

func TestWSClientProtocolErrors(t *testing.T) {
	long := bytes.Repeat([]byte{'p'}, 126)
	for _, tc := range []struct {
		name   string
		frames []byte
		want   string
		proto  bool
	}{
		{"rsv bit", wscFrame(0xC1, []byte("x")), "reserved bits", true},
		{"masked frame", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, "masked frame", true},
		{"control frame over 125 bytes", wscFrame(0x89, long), "control frame of 126 bytes", true},
		{"fragmented ping", wscFrame(0x09, []byte("p")), "fragmented control frame", true},
		{"unknown opcode", wscFrame(0x83, []byte("x")), "unknown opcode", true},
		{"continuation without a message", wscFrame(0x80, []byte("x")), "continuation frame without a message", true},
		{"text inside a fragmented message", append(wscFrame(0x01, []byte("a")), wscFrame(0x81, []byte("b"))...), "inside a fragmented", true},
		{"64-bit length with the top bit", []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, "top bit", true},
		{"close frame of 1 byte", wscFrame(0x88, []byte{3}), "close frame of 1 byte", true},
		{"binary message", wscFrame(0x82, []byte("x")), "binary frame", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := wscRawDial(t)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			s.write(tc.frames)
			p := make([]byte, 4096)
			var err error
			for err == nil {
				_, err = c.Read(p) // "a" of a fragmented message comes first
			}
			if !strings.Contains(err.Error(), tc.want) || errors.Is(err, errWSProtocol) != tc.proto || err == io.EOF {
				t.Fatalf("err = %v, want one with %q (protocol error: %v)", err, tc.want, tc.proto)
			}
			// Sticky: the stream cannot be resynchronised.
			s.write(wscFrame(0x81, []byte("later")))
			if n, err2 := c.Read(p); n != 0 || err2 != err {
				t.Fatalf("next Read = %d, %v; want the same error", n, err2)
			}
		})
	}
}

func TestWSClientClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		eof     bool
		want    string
	}{
		{"normal", binary.BigEndian.AppendUint16(nil, 1000), true, ""},
		{"going away", append(binary.BigEndian.AppendUint16(nil, 1001), "restart"...), true, ""},
		{"internal error", append(binary.BigEndian.AppendUint16(nil, 1011), "boom"...), false, `1011 "boom"`},
		{"policy", binary.BigEndian.AppendUint16(nil, 1008), false, "1008"},
		{"no status", nil, false, "1005"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := wscRawDial(t)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			s.write(append(wscFrame(0x81, []byte("last")), wscFrame(0x88, tc.payload)...))
			got, err := io.ReadAll(c)
			if string(got) != "last\n" {
				t.Fatalf("read %q before the close", got)
			}
			if tc.eof {
				// io.ReadAll hides io.EOF: Read again.
				if _, err := c.Read(make([]byte, 10)); err != io.EOF {
					t.Fatalf("Read = %v, want io.EOF", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
			// The client echoes the close code, once, and writes nothing after.
			op, p := s.readFrame()
			if op != wsOpClose || !bytes.Equal(p, tc.payload[:min(len(tc.payload), 2)]) {
				t.Fatalf("client replied op %#x % x, want close % x", op, p, tc.payload[:min(len(tc.payload), 2)])
			}
			if _, err := c.Write([]byte("more\n")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after the close = %v, want net.ErrClosed", err)
			}
			c.Close()
			s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if rest, err := io.ReadAll(s.br); len(rest) != 0 || err != nil {
				t.Fatalf("after the close reply the client sent % x, %v", rest, err)
			}
		})
	}
	t.Run("client close", func(t *testing.T) {
		c, s := wscRawDial(t)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if op, p := s.readFrame(); op != wsOpClose || binary.BigEndian.Uint16(p) != 1000 {
			t.Fatalf("client sent op %#x % x, want close 1000", op, p)
		}
		if rest, err := io.ReadAll(s.br); len(rest) != 0 || err != nil {
			t.Fatalf("after close: % x, %v", rest, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("close ends a blocked read", func(t *testing.T) {
		c, _ := wscRawDial(t)
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		c.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read = %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Read still blocked after Close")
		}
	})
}

func TestWSClientHandshake(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		respond func(key string) string
		want    string
	}{
		{"wrong accept", func(string) string { return wsc101("another key") }, "Sec-WebSocket-Accept"},
		{"no upgrade header", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + wscAccept(key) + "\r\n\r\n"
		}, "Upgrade: websocket"},
		{"no connection header", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + wscAccept(key) + "\r\n\r\n"
		}, "Connection: Upgrade"},
		{"unrequested extension", func(key string) string {
			return strings.TrimSuffix(wsc101(key), "\r\n") + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
		}, "extension"},
		{"not http", func(string) string { return "SSH-2.0-OpenSSH\r\n\r\n" }, "handshake response"},
		{"refused", func(string) string {
			return "HTTP/1.1 401 Unauthorized\r\nContent-Length: 24\r\n\r\nmissing or wrong secret\n"
		}, "401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := wscRawListen(t, tc.respond)
			c, err := DialWebSocket(ctx, url, wscSecret)
			if err == nil {
				c.Close()
				t.Fatal("handshake accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "connect to agent on "+url) ||
				strings.Contains(err.Error(), wscSecret) {
				t.Fatalf("err = %v, want one with %q and the URL, without the secret", err, tc.want)
			}
		})
	}
	t.Run("request", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		reqs := make(chan *http.Request, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			req, err := http.ReadRequest(bufio.NewReader(nc))
			if err != nil {
				return
			}
			reqs <- req
			io.WriteString(nc, wsc101(req.Header.Get("Sec-WebSocket-Key")))
		}()
		url := "ws://" + ln.Addr().String() + WebSocketPath + "?q=1"
		c, err := DialWebSocket(ctx, url, wscSecret)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := <-reqs
		key, _ := base64.StdEncoding.DecodeString(req.Header.Get("Sec-WebSocket-Key"))
		for name, got := range map[string]string{
			"method":                req.Method,
			"path":                  req.URL.RequestURI(),
			"Host":                  req.Host,
			"Upgrade":               req.Header.Get("Upgrade"),
			"Connection":            req.Header.Get("Connection"),
			"Sec-WebSocket-Version": req.Header.Get("Sec-WebSocket-Version"),
			"Authorization":         req.Header.Get("Authorization"),
			"key length":            fmt.Sprint(len(key)),
		} {
			want := map[string]string{"method": "GET", "path": WebSocketPath + "?q=1", "Host": ln.Addr().String(),
				"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
				"Authorization": "Bearer " + wscSecret, "key length": "16"}[name]
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	})
	t.Run("gorilla refuses a wrong secret", func(t *testing.T) {
		url := wscGorillaServer(t, wscEcho)
		wrong := "not-the-secret-4242"
		_, err := DialWebSocket(ctx, url, wrong)
		if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("secret with a line break", func(t *testing.T) {
		url := wscGorillaServer(t, wscEcho)
		bad := wscSecret + "\r\nX-Injected: 1"
		if _, err := DialWebSocket(ctx, url, bad); err == nil || strings.Contains(err.Error(), wscSecret) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, _ := net.Listen("tcp4", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, err := DialWebSocket(ctx, "ws://"+addr+WebSocketPath, wscSecret); !errors.Is(err, ErrNoAgent) {
			t.Fatalf("err = %v, want ErrNoAgent", err)
		}
	})
	t.Run("context ends a silent handshake", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			nc, err := ln.Accept() // and never answer
			if err == nil {
				t.Cleanup(func() { nc.Close() })
			}
		}()
		ctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := DialWebSocket(ctx, "ws://"+ln.Addr().String()+WebSocketPath, wscSecret)
			errc <- err
		}()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("DialWebSocket did not return after its context ended")
		}
	})
}

// wscServeCanned answers every client frame with reply, from a buffer read
// in place: a server that allocates nothing per message.
func wscServeCanned(s *wscRawServer, reply []byte) {
	hdr := make([]byte, 14)
	body := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(s.br, hdr[:2]); err != nil {
			return
		}
		n := int(hdr[1] & 0x7f)
		if n == 126 {
			io.ReadFull(s.br, hdr[2:4])
			n = int(binary.BigEndian.Uint16(hdr[2:4]))
		}
		if _, err := io.ReadFull(s.br, body[:4+n]); err != nil {
			return
		}
		if _, err := s.nc.Write(reply); err != nil {
			return
		}
	}
}

func TestWSClientNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("counts allocations")
	}
	c, s := wscRawDial(t)
	go wscServeCanned(s, wscFrame(0x81, wscLine(1500)))
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := append(wscLine(110), '\n')
	p := make([]byte, 4096)
	echo := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 1501; {
			n, err := c.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	echo()
	if allocs := testing.AllocsPerRun(200, echo); allocs > 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}
}

// wscBenchReply is the reply of the echo benchmarks: about a token.get's.
var wscBenchReply = wscLine(1500)

// wscBenchServer answers every message with wscBenchReply.
func wscBenchServer(b *testing.B) string {
	return wscGorillaServer(b, func(ws *websocket.Conn) {
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
			if err := ws.WriteMessage(websocket.TextMessage, wscBenchReply); err != nil {
				return
			}
		}
	})
}

// BenchmarkWSClientEcho: the hand-written client against a gorilla echo
// server, a 110-byte request and a 1.5 KB reply, as a token.get. Compare
// with BenchmarkWSClientEchoGorilla:
//
//	go test ./ipc -run '^$' -bench 'WSClientEcho' -count 6
func BenchmarkWSClientEcho(b *testing.B) {
	reply := wscBenchReply
	c := wscDial(b, wscBenchServer(b))
	br := bufio.NewReaderSize(c, 4096)
	req := append(wscLine(110), '\n')
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(reply) + 1))
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		line, err := br.ReadSlice('\n')
		if err != nil || len(line) != len(reply)+1 {
			b.Fatalf("reply of %d bytes, %v", len(line), err)
		}
	}
}

// BenchmarkWSClientEchoGorilla is BenchmarkWSClientEcho with gorilla's
// client (the one wsClientConn replaced).
func BenchmarkWSClientEchoGorilla(b *testing.B) {
	d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 4096}
	ws, _, err := d.Dial(wscBenchServer(b), http.Header{"Authorization": {"Bearer " + wscSecret}})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	req := wscLine(110)
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + 1 + len(wscBenchReply) + 1))
	for b.Loop() {
		if err := ws.WriteMessage(websocket.TextMessage, req); err != nil {
			b.Fatal(err)
		}
		_, r, err := ws.NextReader()
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(wscBenchReply)) {
			b.Fatalf("reply of %d bytes, %v", n, err)
		}
	}
}
