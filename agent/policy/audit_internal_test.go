package policy

import (
	"testing"
	"time"
)

// TestAuditRepeatIssueQueuesNothing: the same token handed to the same
// caller again adds no line, and is left out before the writer goroutine
// hears of it: a repeated token.get queues nothing (a queued record wakes
// the writer, which cost more than the rest of the request).
func TestAuditRepeatIssueQueuesNothing(t *testing.T) {
	l := &auditLog{ch: make(chan AuditRecord, 8), seen: map[issuedKey]struct{}{}} // no writer: the queue stays
	exp := time.Now().Add(time.Hour)
	rec := func(pid int) AuditRecord {
		return AuditRecord{Event: AuditTokenIssued, Server: "https://a.example/mcp", ExpiresAt: exp,
			Caller: &AuditCaller{Transport: "unix", PID: pid, Exe: "/usr/bin/a"}}
	}
	for range 3 {
		l.add(rec(1))
	}
	if n := len(l.ch); n != 1 {
		t.Fatalf("%d records queued for three issues of one token to one caller, want 1", n)
	}
	l.add(rec(2))                                                           // another caller
	l.add(AuditRecord{Event: AuditDenied, Server: "https://a.example/mcp"}) // other events are never deduplicated
	l.add(AuditRecord{Event: AuditDenied, Server: "https://a.example/mcp"})
	if n := len(l.ch); n != 4 {
		t.Fatalf("%d records queued, want 4", n)
	}
}
