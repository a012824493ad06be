package ipc_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mcpkey/mcpkey/ipc"
)

// The client's WebSocket transport (DialWebSocket) is gorilla/websocket's
// client under a line adapter. These tests cover what mcpkey adds: lines
// map to messages whatever their size, the secret travels only as a bearer
// header and is never echoed, a normal close reads as EOF, and the dial
// honours its context.

const wsTestSecret = "websocket-client-test-secret-0123456789"

// gorillaServer serves a gorilla WebSocket on loopback that checks the
// secret and hands each connection to serve.
func gorillaServer(t testing.TB, serve func(*websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+wsTestSecret || r.URL.Path != ipc.WebSocketPath {
			http.Error(w, "missing or wrong secret", http.StatusUnauthorized)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetReadLimit(4 << 20)
		serve(ws)
	}))
	t.Cleanup(s.Close)
	return "ws" + strings.TrimPrefix(s.URL, "http") + ipc.WebSocketPath
}

func dialTestWS(t testing.TB, url string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ipc.DialWebSocket(ctx, url, wsTestSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testLine is a line of n bytes (newline excluded) that differs at every
// position modulo 251, so a shifted or reordered byte shows.
func testLine(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%251%26)
	}
	return b
}

// TestWebSocketClientLines: each line written is one message, each message
// read is one line, from 1 byte to 1 MiB, sent one per Write or several in
// one; a message sent by the agent in fragments is still one line.
func TestWebSocketClientLines(t *testing.T) {
	got := make(chan []byte, 32)
	url := gorillaServer(t, func(ws *websocket.Conn) {
		for {
			typ, m, err := ws.ReadMessage()
			if err != nil || typ != websocket.TextMessage {
				return
			}
			got <- m
			// The echo goes out in 9000-byte writes through a 4 KiB
			// buffer: many frames for the big ones.
			w, err := ws.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			for part := range slices.Chunk(m, 9000) {
				w.Write(part)
			}
			w.Close()
		}
	})
	c := dialTestWS(t, url)
	br := bufio.NewReaderSize(c, 4096)
	sizes := []int{1, 125, 126, 65535, 65536, 1 << 20}
	check := func(n int) {
		t.Helper()
		if m := <-got; !bytes.Equal(m, testLine(n)) {
			t.Fatalf("the server got a message of %d bytes for a line of %d", len(m), n)
		}
		line, err := br.ReadBytes('\n')
		if err != nil || !bytes.Equal(line, append(testLine(n), '\n')) {
			t.Fatalf("line of %d bytes came back as %d bytes, %v", n, len(line), err)
		}
	}
	for _, n := range sizes {
		if _, err := c.Write(append(testLine(n), '\n')); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
		check(n)
	}
	var batch []byte
	for _, n := range sizes {
		batch = append(append(batch, testLine(n)...), '\n')
	}
	// A line in two writes is one message.
	if n, err := c.Write(batch[:100]); n != 100 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := c.Write(batch[100:]); n != len(batch)-100 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for _, n := range sizes {
		check(n)
	}
}

// TestWebSocketClientClose: the agent's normal close (1000) or restart
// (1001) reads as io.EOF after the messages before it; another close code
// is an error that names it.
func TestWebSocketClientClose(t *testing.T) {
	for _, tc := range []struct {
		code int
		eof  bool
	}{{websocket.CloseNormalClosure, true}, {websocket.CloseGoingAway, true}, {websocket.CloseInternalServerErr, false}} {
		url := gorillaServer(t, func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte("last"))
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(tc.code, "bye"), time.Now().Add(5*time.Second))
			ws.ReadMessage() // until the client's close
		})
		c := dialTestWS(t, url)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if string(got) != "last\n" {
			t.Fatalf("close %d: read %q before the close", tc.code, got)
		}
		if tc.eof != (err == nil) || (!tc.eof && !strings.Contains(err.Error(), "1011")) {
			t.Errorf("close %d: err = %v, want EOF: %v", tc.code, err, tc.eof)
		}
	}
}

// TestWebSocketClientHandshake: the secret goes only in the Authorization
// header, and no refusal or failure echoes it.
func TestWebSocketClientHandshake(t *testing.T) {
	ctx := context.Background()
	t.Run("request", func(t *testing.T) {
		reqs := make(chan *http.Request, 1)
		url := gorillaServer(t, func(*websocket.Conn) {})
		// A second server records the request the client sends.
		rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs <- r
			http.Error(w, "recorded", http.StatusForbidden)
		}))
		defer rec.Close()
		if _, err := ipc.DialWebSocket(ctx, "ws"+strings.TrimPrefix(rec.URL, "http")+ipc.WebSocketPath+"?q=1", wsTestSecret); err == nil ||
			!strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), wsTestSecret) {
			t.Fatalf("err = %v, want the status without the secret", err)
		}
		r := <-reqs
		if got := r.Header.Get("Authorization"); got != "Bearer "+wsTestSecret {
			t.Errorf("Authorization = %q", got)
		}
		if r.URL.RequestURI() != ipc.WebSocketPath+"?q=1" || strings.Contains(r.URL.RawQuery, wsTestSecret) {
			t.Errorf("request URI %q", r.URL.RequestURI())
		}
		if c, err := ipc.DialWebSocket(ctx, url, wsTestSecret); err != nil {
			t.Errorf("right secret refused: %v", err)
		} else {
			c.Close()
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		url := gorillaServer(t, func(*websocket.Conn) {})
		wrong := "not-the-secret-4242"
		if _, err := ipc.DialWebSocket(ctx, url, wrong); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") ||
			!strings.Contains(err.Error(), "connect to agent on") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("err = %v, want a 401 without the secret", err)
		}
	})
	t.Run("secret with a line break", func(t *testing.T) {
		url := gorillaServer(t, func(*websocket.Conn) {})
		bad := wsTestSecret + "\r\nX-Injected: 1"
		if _, err := ipc.DialWebSocket(ctx, url, bad); err == nil || strings.Contains(err.Error(), wsTestSecret) {
			t.Fatalf("err = %v", err)
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
			_, err := ipc.DialWebSocket(ctx, "ws://"+ln.Addr().String()+ipc.WebSocketPath, wsTestSecret)
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
