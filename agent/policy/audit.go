package policy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpkey/mcpkey/api"
	"github.com/mcpkey/mcpkey/internal/safefile"
)

// Audit event names (AuditRecord.Event).
const (
	AuditTokenIssued       = "token_issued"
	AuditRefresh           = "refresh"
	AuditLogin             = "login"
	AuditImport            = "import" // a session adopted from another tool's file; Reason names the tool
	AuditLogout            = "logout"
	AuditApprovalRequested = "approval_requested"
	AuditApprovalAnswered  = "approval_answered"
	AuditDenied            = "denied"
	AuditLock              = "lock"
	AuditUnlock            = "unlock"
)

// Audit log defaults.
const (
	// DefaultAuditMaxSize is the size at which the audit log is rotated.
	DefaultAuditMaxSize = 10 << 20
	// DefaultAuditKeep is how many rotated files are kept (audit.jsonl.1 …).
	DefaultAuditKeep = 3
	// auditBuffer is how many records may wait for the writer; when it is
	// full, records are dropped (and counted) rather than slowing a request.
	auditBuffer = 4096
	// auditDedup bounds the writer's memory of token_issued lines.
	auditDedup = 4096
)

// AuditRecord is one line of the audit log (JSON). It never carries token
// material: no access or refresh token, code, verifier or secret.
type AuditRecord struct {
	Time    time.Time    `json:"time"`
	Event   string       `json:"event"`
	Server  string       `json:"server,omitempty"`
	Account string       `json:"account,omitempty"`
	Scopes  []string     `json:"scopes,omitempty"`
	Caller  *AuditCaller `json:"caller,omitempty"`
	// ExpiresAt is the issued token's expiry (token_issued, refresh,
	// login): it tells tokens apart without naming them.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Approval is the approval's id (approval_requested, approval_answered).
	Approval int `json:"approval,omitempty"`
	// Decision is allow_once, allow, deny or timeout (approval_answered).
	Decision string `json:"decision,omitempty"`
	// Reason says why (denied) or what (lock: "screen locked", "idle").
	Reason string `json:"reason,omitempty"`
	// Dropped counts records lost before this one because the writer could
	// not keep up.
	Dropped uint64 `json:"dropped,omitempty"`
}

// AuditCaller is the caller as the audit log records it.
type AuditCaller struct {
	Transport string `json:"transport,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Exe       string `json:"exe,omitempty"`
	Client    string `json:"client,omitempty"`
	// Socket is the restricted socket the request came through.
	Socket string `json:"socket,omitempty"`
}

func auditCallerOf(ctx context.Context) *AuditCaller {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil
	}
	ac := &AuditCaller{Transport: c.Transport, PID: c.PID, Exe: c.Exe, Client: c.Client}
	if r, ok := restrictionFrom(ctx); ok {
		ac.Socket = r.socket
	}
	return ac
}

// String formats r for people: time, event, server, caller, details.
func (r AuditRecord) String() string {
	var b strings.Builder
	b.WriteString(r.Time.Local().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "  %-18s", r.Event)
	if r.Server != "" {
		b.WriteString("  " + r.Server)
		if r.Account != "" {
			b.WriteString(" (" + r.Account + ")")
		}
	}
	if r.Caller != nil {
		b.WriteString("  by ")
		c := Caller{Transport: r.Caller.Transport, PID: r.Caller.PID, Exe: r.Caller.Exe, Client: r.Caller.Client}
		b.WriteString(c.Describe())
		if r.Caller.Socket != "" {
			b.WriteString(" via " + r.Caller.Socket)
		}
	}
	if len(r.Scopes) > 0 {
		b.WriteString("  scopes " + strings.Join(r.Scopes, " "))
	}
	if r.Approval != 0 {
		b.WriteString("  approval " + strconv.Itoa(r.Approval))
	}
	if r.Decision != "" {
		b.WriteString("  " + r.Decision)
	}
	if r.Reason != "" {
		b.WriteString("  (" + r.Reason + ")")
	}
	if r.Dropped > 0 {
		fmt.Fprintf(&b, "  [%d earlier records dropped]", r.Dropped)
	}
	return b.String()
}

// AuditOptions configures the audit log.
type AuditOptions struct {
	// Path of the log; rotated files are Path.1 … Path.Keep.
	Path string
	// MaxSize rotates the file when it would grow past it; 0 means
	// DefaultAuditMaxSize.
	MaxSize int64
	// Keep is how many rotated files to keep; 0 means DefaultAuditKeep.
	Keep int
}

// auditLog writes records asynchronously: a request only does a
// non-blocking channel send; one goroutine encodes, batches and writes.
type auditLog struct {
	opts    AuditOptions
	log     *slog.Logger
	ch      chan AuditRecord
	dropped atomic.Uint64
	done    chan struct{}

	// closeMu guards closed: add must not send on a closed channel.
	closeMu sync.RWMutex
	closed  bool

	// seenMu guards seen: the token_issued records queued already. A
	// program fetching the same token again and again adds no line, and
	// add drops the repeat before it wakes the writer goroutine (a
	// goroutine wake-up per token.get cost more than the rest of the
	// request).
	seenMu sync.Mutex
	seen   map[issuedKey]struct{}

	// The fields below belong to the writer goroutine.
	f    *os.File
	size int64
}

type issuedKey struct {
	exe, client, socket, server, account string
	pid                                  int
	expires                              int64
}

func issuedKeyOf(r *AuditRecord) issuedKey {
	k := issuedKey{server: r.Server, account: r.Account, expires: r.ExpiresAt.UnixNano()}
	if c := r.Caller; c != nil {
		k.exe, k.client, k.socket, k.pid = c.Exe, c.Client, c.Socket, c.PID
	}
	return k
}

func openAudit(opts AuditOptions, log *slog.Logger) (*auditLog, error) {
	opts.MaxSize = cmp.Or(opts.MaxSize, DefaultAuditMaxSize)
	opts.Keep = cmp.Or(opts.Keep, DefaultAuditKeep)
	l := &auditLog{opts: opts, log: log, ch: make(chan AuditRecord, auditBuffer), done: make(chan struct{}),
		seen: make(map[issuedKey]struct{})}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

func (l *auditLog) open() error {
	f, err := safefile.OpenAppend(l.opts.Path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// add queues r without ever blocking; a full buffer drops it (counted, and
// reported on the next record written). A token_issued record like one
// queued before is left out.
func (l *auditLog) add(r AuditRecord) {
	if l == nil {
		return
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return
	}
	issued := r.Event == AuditTokenIssued
	var k issuedKey
	if issued {
		k = issuedKeyOf(&r)
		l.seenMu.Lock()
		defer l.seenMu.Unlock()
		if _, dup := l.seen[k]; dup {
			return
		}
	}
	select {
	case l.ch <- r:
		if issued {
			if len(l.seen) >= auditDedup {
				clear(l.seen)
			}
			l.seen[k] = struct{}{}
		}
	default:
		l.dropped.Add(1)
	}
}

// close writes what is queued and closes the file.
func (l *auditLog) close() {
	if l == nil {
		return
	}
	l.closeMu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.closeMu.Unlock()
	<-l.done
}

func (l *auditLog) run() {
	defer close(l.done)
	defer func() {
		if l.f != nil {
			l.f.Close()
		}
	}()
	var buf bytes.Buffer
	for r := range l.ch {
		buf.Reset()
		l.encode(&buf, r)
		// Batch whatever else is already waiting into one write.
	more:
		for buf.Len() < 64<<10 {
			select {
			case r, ok := <-l.ch:
				if !ok {
					break more
				}
				mark := buf.Len()
				l.encode(&buf, r)
				// Rotation is decided per write: a batch must not carry
				// the file past MaxSize, so write what fits first.
				if mark > 0 && l.size+int64(buf.Len()) > l.opts.MaxSize {
					rest := bytes.Clone(buf.Bytes()[mark:])
					buf.Truncate(mark)
					l.write(buf.Bytes())
					buf.Reset()
					buf.Write(rest)
				}
			default:
				break more
			}
		}
		l.write(buf.Bytes())
	}
}

func (l *auditLog) encode(buf *bytes.Buffer, r AuditRecord) {
	r.Dropped = l.dropped.Swap(0)
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	buf.Write(b)
	buf.WriteByte('\n')
}

func (l *auditLog) write(b []byte) {
	if len(b) == 0 {
		return
	}
	if l.size > 0 && l.size+int64(len(b)) > l.opts.MaxSize {
		l.rotate()
	}
	if l.f == nil {
		if err := l.open(); err != nil {
			l.log.Warn("audit log unavailable; records lost", "err", err)
			return
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		l.log.Warn("audit log write failed", "err", err)
	}
}

// rotate moves Path to Path.1 (Path.1 to Path.2 …, dropping the oldest).
func (l *auditLog) rotate() {
	l.f.Close()
	l.f = nil
	p := l.opts.Path
	os.Remove(p + "." + strconv.Itoa(l.opts.Keep))
	for i := l.opts.Keep - 1; i >= 1; i-- {
		os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(p, p+".1"); err != nil {
		l.log.Warn("audit log rotation failed", "err", err)
	}
	if err := l.open(); err != nil {
		l.log.Warn("audit log unavailable; records lost", "err", err)
	}
}

// Audit records one event; see AuditRecord. The caller in ctx (nil: none)
// is recorded unless r names one.
func (po *Policy) Audit(ctx context.Context, r AuditRecord) {
	l := po.alog
	if l == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = po.now()
	}
	if r.Caller == nil && ctx != nil {
		r.Caller = auditCallerOf(ctx)
	}
	l.add(r)
}

// AuditIssued records a token handed out.
func (po *Policy) AuditIssued(ctx context.Context, tok api.Token) {
	if po.alog == nil {
		return
	}
	po.Audit(ctx, AuditRecord{Event: AuditTokenIssued, Server: tok.Server, Account: tok.Account, Scopes: tok.Scopes, ExpiresAt: tok.ExpiresAt})
}
