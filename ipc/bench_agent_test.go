package ipc_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/oauth"
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
	return benchAgentKey(tb, tweak, "")
}

// benchAgentKey is benchAgent whose session is key-bound to dpopKey (PKCS
// #8 DER) when it is not "".
func benchAgentKey(tb testing.TB, tweak func(*agent.Config), dpopKey string) *agent.Agent {
	st := store.NewMemory()
	tt := "Bearer"
	if dpopKey != "" {
		tt = "DPoP"
	}
	err := store.PutSession(context.Background(), st, store.SessionRecord{
		Server: benchToken.Server, Account: benchToken.Account, Issuer: "https://as.example.com",
		ClientID: "bench", TokenType: tt, AccessToken: benchToken.AccessToken, RefreshToken: "r",
		ExpiresAt: benchToken.ExpiresAt, ObtainedAt: time.Now(), Scopes: benchToken.Scopes, DPoPKey: dpopKey,
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

// BenchmarkTokenGetDPoP is token.get against the real agent for a bearer
// session and for a key-bound one, in the same run, one connection: the
// difference is the cost of signing a DPoP proof (ES256) per call.
func BenchmarkTokenGetDPoP(b *testing.B) {
	k, err := oauth.NewDPoPKey()
	if err != nil {
		b.Fatal(err)
	}
	der, err := k.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  string
	}{{"bearer", ""}, {"dpop", string(der)}} {
		b.Run(c.name, func(b *testing.B) {
			s := startServer(b, benchAgentKey(b, nil, c.key), server.ServerOptions{Logger: discardLogger()})
			client := s.client()
			defer client.Close()
			req := agent.TokenRequest{Server: benchToken.Server, Scopes: []string{"mcp:read"},
				DPoPMethod: "POST", DPoPURL: benchToken.Server}
			tok, err := client.Token(context.Background(), req)
			if err != nil || (c.key != "") != (tok.DPoPProof != "") {
				b.Fatalf("token: %v, proof %t", err, tok.DPoPProof != "")
			}
			runConns(b, 1, func(int) error {
				_, err := client.Token(context.Background(), req)
				return err
			})
		})
	}
}
