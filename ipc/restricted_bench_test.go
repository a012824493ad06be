package ipc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/agent/store"
	"github.com/mcpkey/mcpkey/ipc"
)

// auditedAgentBackend is realAgentBackend with the audit log on: every
// token.get queues a token_issued record for the asynchronous writer.
func auditedAgentBackend(tb testing.TB) ipc.Backend {
	st := store.NewMemory()
	err := store.PutSession(context.Background(), st, store.SessionRecord{
		Server: benchToken.Server, Account: benchToken.Account, Issuer: "https://as.example.com",
		ClientID: "bench", TokenType: "Bearer", AccessToken: benchToken.AccessToken, RefreshToken: "r",
		ExpiresAt: benchToken.ExpiresAt, ObtainedAt: time.Now(), Scopes: benchToken.Scopes,
	})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := agent.New(context.Background(), agent.Config{Store: st, Settings: &agent.Settings{
		Servers: map[string]agent.ServerSettings{"bench": {Name: "bench", URL: benchToken.Server, Account: benchToken.Account}},
	}, Audit: agent.AuditOptions{Path: filepath.Join(tb.TempDir(), "audit.jsonl")}, DBusSessionAddress: "off", DBusSystemAddress: "off"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// BenchmarkTokenGetAgentAudited is BenchmarkTokenGetAgent with the audit
// log written: the two must be within noise of each other.
func BenchmarkTokenGetAgentAudited(b *testing.B) {
	benchTokenGet(b, auditedAgentBackend)
}
