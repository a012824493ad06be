package ipc_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// benchToken is a cached token whose token.get reply is about 1.5 KB, the
// size of a typical JWT access token with its metadata.
var benchToken = agent.Token{
	AccessToken: strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 64), // 1280 bytes
	TokenType:   "Bearer",
	ExpiresAt:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	Scopes:      []string{"mcp:read", "mcp:write"},
	Server:      "https://mcp.example.com/mcp",
	Account:     "work",
}

// cachedTokenBackend answers token.get with a prebuilt token.
func cachedTokenBackend(testing.TB) server.Backend {
	return &testBackend{token: func(ctx context.Context, req agent.TokenRequest) (agent.Token, error) {
		return benchToken, nil
	}}
}

var benchConns = []int{1, 8, 64}

// BenchmarkTokenGet measures token.get over the Unix socket with 1, 8 and 64
// connections, one caller goroutine per connection. ns/op is the time per
// call across all connections (its inverse is the throughput, also reported
// as calls/s); p50-ns is the median latency of one call.
func BenchmarkTokenGet(b *testing.B) {
	benchTokenGet(b, cachedTokenBackend)
}

// benchTokenGet runs the token.get benchmark over the Unix socket against
// the Backend newBackend returns; point it at the real agent to measure the
// whole path.
func benchTokenGet(b *testing.B, newBackend func(testing.TB) server.Backend) {
	benchTokenGetOn(b, func(b *testing.B) *testServer {
		return startServer(b, newBackend(b), server.ServerOptions{Logger: discardLogger()})
	})
}

// benchTokenGetOn runs the token.get benchmark against the server start
// returns, with 1, 8 and 64 connections.
func benchTokenGetOn(b *testing.B, start func(*testing.B) *testServer) {
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			s := start(b)
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

// BenchmarkRawEcho is the baseline for BenchmarkTokenGet: a raw Unix-socket
// server that reads a ~100 B line and writes a ~1.5 KB line, with the same
// connection counts and the same measurements.
func BenchmarkRawEcho(b *testing.B) {
	benchRawEcho(b, func(b *testing.B) (net.Listener, string) {
		path := filepath.Join(shortDir(b), "echo.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		return ln, "unix"
	})
}

// benchRawEcho runs the raw echo baseline on the listener listen returns
// (and the network to dial it on).
func benchRawEcho(b *testing.B, listen func(*testing.B) (net.Listener, string)) {
	reqLine := []byte(`{"jsonrpc":"2.0","id":1,"method":"token.get","params":{"server":"https://mcp.example.com/mcp","scopes":["mcp:read"]}}` + "\n")
	respLine := []byte(`{"jsonrpc":"2.0","id":1,"result":{"access_token":"` + benchToken.AccessToken +
		`","token_type":"Bearer","expires_at":"2030-01-01T00:00:00Z","scopes":["mcp:read","mcp:write"],"server":"https://mcp.example.com/mcp","account":"work"}}` + "\n")
	for _, n := range benchConns {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			ln, network := listen(b)
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
				c, err := net.Dial(network, ln.Addr().String())
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

// runConns splits b.N calls across n goroutines, one per connection, and
// reports calls/s and, for one connection, the median latency.
func runConns(b *testing.B, n int, call func(conn int) error) {
	var lat []time.Duration
	if n == 1 {
		lat = make([]time.Duration, 0, b.N)
	}
	errs := make(chan error, n)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		ops := b.N / n
		if i < b.N%n {
			ops++
		}
		wg.Go(func() {
			for range ops {
				var t0 time.Time
				if lat != nil {
					t0 = time.Now()
				}
				if err := call(i); err != nil {
					errs <- err
					return
				}
				if lat != nil {
					lat = append(lat, time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	}
}
