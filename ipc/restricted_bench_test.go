package ipc_test

import (
	"path/filepath"
	"testing"

	"github.com/mcpkey/mcpkey/agent"
	"github.com/mcpkey/mcpkey/ipc/server"
)

// auditedAgentBackend is realAgentBackend with the audit log on: every
// token.get queues a token_issued record for the asynchronous writer.
func auditedAgentBackend(tb testing.TB) server.Backend {
	return benchAgent(tb, func(c *agent.Config) {
		c.Audit = agent.AuditOptions{Path: filepath.Join(tb.TempDir(), "audit.jsonl")}
		c.DBusSessionAddress, c.DBusSystemAddress = "off", "off"
	})
}

// BenchmarkTokenGetAgentAudited is BenchmarkTokenGetAgent with the audit
// log written: the two must be within noise of each other.
func BenchmarkTokenGetAgentAudited(b *testing.B) {
	benchTokenGet(b, auditedAgentBackend)
}
