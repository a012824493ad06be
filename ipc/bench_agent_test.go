package ipc_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// realAgentBackend is the real *agent.Agent over a memory store holding one
// cached session: token.get takes the agent's whole hot path (resolve,
// admission, cache lookup, freshness check).
func realAgentBackend(tb testing.TB) server.Backend { return benchAgent(tb, nil) }

// benchAgent builds the agent realAgentBackend describes; tweak, when not
// nil, adjusts its Config first.
func benchAgent(tb testing.TB, tweak func(*agent.Config)) *agent.Agent {
	st := store.NewMemory()
	err := store.PutSession(context.Background(), st, store.SessionRecord{
		Server: benchToken.Server, Account: benchToken.Account, Issuer: "https://as.example.com",
		ClientID: "bench", TokenType: "Bearer", AccessToken: benchToken.AccessToken, RefreshToken: "r",
		ExpiresAt: benchToken.ExpiresAt, ObtainedAt: time.Now(), Scopes: benchToken.Scopes,
	})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := agent.Config{Store: st, Settings: &agent.Settings{
		Servers: map[string]agent.ServerSettings{"bench": {Name: "bench", URL: benchToken.Server, Account: benchToken.Account}},
	}}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// BenchmarkTokenGetAgent is BenchmarkTokenGet with the real agent behind
// the socket instead of a canned reply.
func BenchmarkTokenGetAgent(b *testing.B) {
	benchTokenGet(b, realAgentBackend)
}
