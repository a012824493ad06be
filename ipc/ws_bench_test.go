package ipc_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
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

func benchTokenGetWebSocket(b *testing.B, newBackend func(testing.TB) ipc.Backend) {
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			s := startWSServer(b, newBackend(b), ipc.ServerOptions{Logger: discardLogger()},
				ipc.WebSocketOptions{MaxConns: 1024, RateLimit: 1e9, RateBurst: 1e9})
			clients := make([]*ipc.Client, n)
			for i := range clients {
				clients[i] = s.client()
				defer clients[i].Close()
				if _, err := clients[i].Token(context.Background(), agent.TokenRequest{Server: "https://mcp.example.com/mcp"}); err != nil {
					b.Fatal(err)
				}
			}
			req := agent.TokenRequest{Server: "https://mcp.example.com/mcp", Scopes: []string{"mcp:read"}}
			runConns(b, n, func(i int) error {
				_, err := clients[i].Token(context.Background(), req)
				return err
			})
		})
	}
}

// BenchmarkRawEchoTCP is BenchmarkRawEcho over loopback TCP instead of a
// Unix socket: the floor for the WebSocket transport, which runs on TCP.
func BenchmarkRawEchoTCP(b *testing.B) {
	reqLine := []byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"https://mcp.example.com/mcp","scopes":["mcp:read"]}}` + "\n")
	respLine := []byte(`{"jsonrpc":"2.0","id":1,"result":{"access_token":"` + benchToken.AccessToken +
		`","token_type":"Bearer","expires_at":"2030-01-01T00:00:00Z","scopes":["mcp:read","mcp:write"],"server":"https://mcp.example.com/mcp","account":"work"}}` + "\n")
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer ln.Close()
			wg.Go(func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					wg.Go(func() {
						defer c.Close()
						r := bufio.NewReader(c)
						for {
							if _, err := r.ReadSlice('\n'); err != nil {
								return
							}
							if _, err := c.Write(respLine); err != nil {
								return
							}
						}
					})
				}
			})
			conns := make([]net.Conn, n)
			readers := make([]*bufio.Reader, n)
			for i := range conns {
				c, err := net.Dial("tcp4", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				conns[i], readers[i] = c, bufio.NewReaderSize(c, 4096)
			}
			runConns(b, n, func(i int) error {
				if _, err := conns[i].Write(reqLine); err != nil {
					return err
				}
				_, err := readers[i].ReadSlice('\n')
				return err
			})
		})
	}
}
