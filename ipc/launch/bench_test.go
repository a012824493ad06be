package launch_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth/oauthtest"
	"github.com/mcpkey/mcpkey/ipc/launch"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkBridgeEcho measures one tools/call echo through launch.Bridge
// (in-process pipes, real agent on a Unix socket, real HTTP server) next to
// a direct go-sdk Streamable HTTP client against the same server; the
// difference is the bridge's added latency per message.
func BenchmarkBridgeEcho(b *testing.B) {
	s := newStack(b, oauthtest.Options{})
	s.login()
	tok, err := s.client.Token(b.Context(), agent.TokenRequest{Server: "demo"})
	if err != nil {
		b.Fatal(err)
	}
	args := map[string]any{"text": "x"}
	run := func(b *testing.B, cs *mcp.ClientSession) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		cs := connectHTTP(b, s.mcpURL, bearer{secret: tok.AccessToken, base: http.DefaultTransport})
		run(b, cs)
	})
	b.Run("bridge", func(b *testing.B) {
		var dials atomic.Int64
		tr := http.DefaultTransport.(*http.Transport).Clone()
		d := &net.Dialer{}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}
		br := startBridge(b, s, "demo", launch.BridgeConfig{Base: tr})
		run(b, br.cs)
		b.Logf("dials: %d", dials.Load())
	})
}
