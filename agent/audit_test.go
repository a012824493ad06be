package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpkey/mcpkey/agent"
)

func readAudit(t *testing.T, path string) []agent.AuditRecord {
	t.Helper()
	var out []agent.AuditRecord
	if err := agent.ReadAudit(t.Context(), path, agent.AuditReadOptions{}, func(r agent.AuditRecord, line []byte) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "audit.jsonl")
	a, err := agent.New(t.Context(), agent.Config{Store: seeded(t), Audit: agent.AuditOptions{Path: path},
		Settings: &agent.Settings{Deny: []string{"/opt/evil/*"}}, DBusSessionAddress: "off", DBusSystemAddress: "off"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := callerCtx(t.Context(), exeA, 4242)
	for range 3 { // the same token to the same program: one line
		if _, err := a.Token(ctx, agent.TokenRequest{Server: srvA}); err != nil {
			t.Fatal(err)
		}
	}
	a.Token(callerCtx(t.Context(), "/opt/evil/x", 7), agent.TokenRequest{Server: srvB})
	a.Lock(t.Context(), "pw")
	a.Unlock(t.Context(), "pw")
	a.Close() // flushes

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{accessA, refreshA, accessB, refreshB, "pw\""} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("audit log contains secret material %q", secret)
		}
	}
	recs := readAudit(t, path)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Event)
	}
	want := []string{agent.AuditTokenIssued, agent.AuditDenied, agent.AuditLock, agent.AuditUnlock}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events = %v, want %v", kinds, want)
	}
	issued := recs[0]
	if issued.Server != srvA || issued.Caller == nil || issued.Caller.Exe != exeA || issued.Caller.PID != 4242 ||
		!slices.Equal(issued.Scopes, []string{"mcp:tools"}) || issued.ExpiresAt.IsZero() || issued.Time.IsZero() {
		t.Fatalf("token_issued = %+v", issued)
	}
	if d := recs[1]; d.Server != srvB || d.Caller.Exe != "/opt/evil/x" || d.Reason != "deny rule" {
		t.Fatalf("denied = %+v", d)
	}
	if s := issued.String(); !strings.Contains(s, "token_issued") || !strings.Contains(s, exeA+" (pid 4242)") {
		t.Fatalf("String() = %q", s)
	}
}

func TestAuditRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := agent.New(t.Context(), agent.Config{Store: seeded(t), Audit: agent.AuditOptions{Path: path, MaxSize: 600, Keep: 2},
		DBusSessionAddress: "off", DBusSystemAddress: "off"})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		a.Lock(t.Context(), "")
		a.Unlock(t.Context(), "")
	}
	a.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatalf("%s.3 kept beyond Keep=2: %v", path, err)
	}
	// Everything read back is whole JSON, oldest first.
	recs := readAudit(t, path)
	if len(recs) == 0 || len(recs) >= 60 {
		t.Fatalf("read %d records after rotation", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Fatal("records out of order")
		}
	}
}

func TestReadAuditFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	write := func(p string, r agent.AuditRecord) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		f.Write(append(b, '\n'))
		f.Close()
	}
	write(path, agent.AuditRecord{Event: agent.AuditLock, Time: time.Now()})
	got := make(chan agent.AuditRecord, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- agent.ReadAudit(ctx, path, agent.AuditReadOptions{Follow: true, Poll: 5 * time.Millisecond}, func(r agent.AuditRecord, _ []byte) error {
			got <- r
			return nil
		})
	}()
	expect := func(event string) {
		t.Helper()
		select {
		case r := <-got:
			if r.Event != event {
				t.Fatalf("got %s, want %s", r.Event, event)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s record within 5s", event)
		}
	}
	expect(agent.AuditLock)
	write(path, agent.AuditRecord{Event: agent.AuditUnlock, Time: time.Now()})
	expect(agent.AuditUnlock)
	// Rotation: the file moves away and a new one starts.
	os.Rename(path, path+".1")
	write(path, agent.AuditRecord{Event: agent.AuditLogin, Time: time.Now()})
	expect(agent.AuditLogin)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
