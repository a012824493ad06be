package ipc_test

import (
	"net"
	"testing"

	"github.com/mcpkey/mcpkey/ipc/server"
)

// BenchmarkTokenGetWebSocket is BenchmarkTokenGet over the loopback
// WebSocket: the same backend, payloads, connection counts and metrics, so
// one run compares the transports:
//
//	go test ./ipc -run '^$' -bench 'TokenGet(WebSocket)?$' -benchtime 2s
//
// The rate limiter is on (at a rate the benchmark never reaches), so its
// cost is measured too.
func BenchmarkTokenGetWebSocket(b *testing.B) {
	benchTokenGetWebSocket(b, cachedTokenBackend)
}

// BenchmarkTokenGetWebSocketAgent is BenchmarkTokenGetAgent over the
// WebSocket: the real agent behind it.
func BenchmarkTokenGetWebSocketAgent(b *testing.B) {
	benchTokenGetWebSocket(b, realAgentBackend)
}

func benchTokenGetWebSocket(b *testing.B, newBackend func(testing.TB) server.Backend) {
	benchTokenGetOn(b, func(b *testing.B) *testServer {
		return startWSServer(b, newBackend(b), server.ServerOptions{Logger: discardLogger()},
			server.WebSocketOptions{MaxConns: 1024, RateLimit: 1e9, RateBurst: 1e9})
	})
}

// BenchmarkRawEchoTCP is BenchmarkRawEcho over loopback TCP instead of a
// Unix socket: the floor for the WebSocket transport, which runs on TCP.
func BenchmarkRawEchoTCP(b *testing.B) {
	benchRawEcho(b, func(b *testing.B) (net.Listener, string) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		return ln, "tcp4"
	})
}
