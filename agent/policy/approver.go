package policy

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/mcpkey/mcpkey/api"
)

// Who may answer an approval. ssh-agent's confirm shows its own dialog
// (ssh-askpass) that no socket method can answer; mcpkey's approvals are
// answered over the socket, so the agent must tell a person from the
// program it is asked about. It allows an approval (allow, allow_once)
// only from:
//
//   - the agent's own process: `mcpkey agent --tray` runs the tray in it;
//   - the tray of this mcpkey executable (`mcpkey tray`, or `mcpkey agent
//     --tray` beside a running agent): the same file as the agent's, running
//     the tray command, whose answers come from clicks on the desktop;
//   - `mcpkey approve` on a terminal: the answering process has a
//     controlling terminal that belongs to this user, and the agent writes
//     the request and a one-time code to that terminal, where only the
//     person looking at it can read it (a program on the same terminal reads
//     keystrokes, not what is shown); the approval holds only when the code
//     comes back.
//
// Never from a WebSocket or proxy connection (they have no process to
// check), a process without a terminal, nor the asker's process tree: the
// asker itself, its parents, its children, or (for a terminal) a process
// in its session or process group or on its terminal (`mcpkey token a &
// mcpkey approve N` in one shell). A denial needs none of this: refusing
// is never an escalation.
//
// What remains: a program that drives a pseudo-terminal it created (it
// reads the code off the master side) or the desktop (a fake tray host,
// synthetic clicks, a screen reader of the terminal such as tmux
// capture-pane), or that runs code inside mcpkey's processes (ptrace).

// challenge is a code written to an answering terminal, waiting to come
// back. One try: a wrong code drops it.
type challenge struct {
	pid      int
	code     string
	decision api.Decision
}

// refuseApprover audits and returns a refusal of an answer.
func (po *Policy) refuseApprover(ctx context.Context, p *approval, why string) error {
	po.Audit(ctx, AuditRecord{Event: AuditDenied, Server: p.Server, Approval: p.ID, Reason: "approval answer refused: " + why})
	po.log.Warn("approval answer refused", "id", p.ID, "reason", why)
	return fmt.Errorf("%w: %s", api.ErrDenied, why)
}

// approverTerminal decides whether the caller in ctx may allow p: "" and
// nil for a trusted answerer (in-process, the agent's own process, the
// tray), the terminal's path and device for a terminal answerer that must
// confirm with a code, or an error.
func (po *Policy) approverTerminal(ctx context.Context, p *approval) (string, uint64, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Transport == "in-process" {
		return "", 0, nil
	}
	const hint = "answer in the tray or with `mcpkey approve` in a terminal"
	if c.Transport != "unix" || c.PID <= 0 {
		return "", 0, po.refuseApprover(ctx, p, "approvals are not answered over "+c.Transport+"; "+hint)
	}
	chain := DescribeCaller(Caller{PID: c.PID})
	if asker := p.Caller.PID; asker > 0 {
		parentOf := func(pp Process) bool { return pp.PID == c.PID }
		childOf := func(pp Process) bool { return pp.PID == asker }
		if c.PID == asker || slices.ContainsFunc(p.Caller.Parents, parentOf) || slices.ContainsFunc(chain.Parents, childOf) {
			return "", 0, po.refuseApprover(ctx, p, "a program may not answer its own approval, nor may its parents or children")
		}
	}
	if c.PID == os.Getpid() {
		return "", 0, nil // the tray of `mcpkey agent --tray`
	}
	me, err := readStat(c.PID)
	if err != nil {
		return "", 0, po.refuseApprover(ctx, p, "cannot tell who answers ("+err.Error()+"); "+hint)
	}
	// The tray's answers are clicks: where it runs in the process tree
	// does not matter (desktop programs share a session with it).
	if po.isTray(c.PID, chain.Cmdline) {
		return "", 0, nil
	}
	if asker := p.Caller.PID; asker > 0 {
		if st, err := readStat(asker); err == nil {
			if st.session == me.session || st.pgrp == me.pgrp || (st.tty != 0 && st.tty == me.tty) {
				return "", 0, po.refuseApprover(ctx, p, "a program may not answer an approval asked from its own session or terminal; "+hint)
			}
		}
	}
	if me.tty == 0 {
		return "", 0, po.refuseApprover(ctx, p, "the answering program has no terminal; "+hint)
	}
	path, err := ttyPath(me.tty)
	if err != nil {
		return "", 0, po.refuseApprover(ctx, p, err.Error())
	}
	return path, me.tty, nil
}

// isTray reports whether pid runs this mcpkey executable's tray: the same
// file as Options.Executable (default: the agent's own executable), with
// the command `tray` or `agent --tray`.
func (po *Policy) isTray(pid int, cmdline []string) bool {
	if len(cmdline) < 2 || !(cmdline[1] == "tray" || cmdline[1] == "agent" && slices.Contains(cmdline[2:], "--tray")) {
		return false
	}
	want, err := po.selfID()
	if err != nil {
		return false
	}
	got, err := exeID(pid)
	return err == nil && got == want
}

// selfID identifies the mcpkey executable whose tray is trusted.
func (po *Policy) selfID() (fileID, error) {
	if po.opts.Executable != "" {
		return pathID(po.opts.Executable)
	}
	return exeID(os.Getpid())
}

// challengeTerminal writes p and a fresh code to the terminal at path and
// keeps the code for the answering process pid.
func (po *Policy) challengeTerminal(p *approval, pid int, d api.Decision, path string, dev uint64) error {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return fmt.Errorf("approval %d: %w", p.ID, err)
	}
	code := fmt.Sprintf("%06d", n.Int64())
	po.mu.Lock()
	if p.Decision != "" {
		po.mu.Unlock()
		return fmt.Errorf("%w: approval %d was already settled", api.ErrNotFound, p.ID)
	}
	p.challenge = &challenge{pid: pid, code: code, decision: d}
	snap := p.snapshotLocked()
	po.mu.Unlock()
	verb := "allow it once"
	if d == api.DecisionAllow {
		verb = "allow it and remember the answer"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\r\nmcpkey agent: approval %d: %s asks for a token for %s", snap.ID, Printable(snap.Caller.Describe()), Printable(snap.Server))
	if len(snap.Scopes) > 0 {
		fmt.Fprintf(&b, " (scopes %s)", Printable(strings.Join(snap.Scopes, " ")))
	}
	b.WriteString("\r\n")
	if len(snap.Caller.Cmdline) > 0 {
		fmt.Fprintf(&b, "  command: %s\r\n", Printable(strings.Join(snap.Caller.Cmdline, " ")))
	}
	for _, pp := range snap.Caller.Parents {
		fmt.Fprintf(&b, "  parent:  %s (pid %d)\r\n", Printable(cmp.Or(strings.Join(pp.Cmdline, " "), pp.Exe, "?")), pp.PID)
	}
	fmt.Fprintf(&b, "mcpkey agent: to %s, type %s and Enter (anything else cancels): ", verb, code)
	if err := writeTTY(path, dev, b.String()); err != nil {
		return po.refuseApprover(context.Background(), p, err.Error())
	}
	return nil
}

// maxWrongCodes is how many wrong confirmation codes an approval takes
// before it is denied: a program on a terminal that may answer cannot try
// its way through a million codes.
const maxWrongCodes = 3

// checkChallenge consumes p's challenge and reports whether code answers
// it for pid and d; the maxWrongCodes-th wrong code denies p.
func (po *Policy) checkChallenge(p *approval, pid int, d api.Decision, code string) bool {
	po.mu.Lock()
	ch := p.challenge
	p.challenge = nil
	ok := ch != nil && ch.pid == pid && ch.decision == d &&
		subtle.ConstantTimeCompare([]byte(ch.code), []byte(strings.TrimSpace(code))) == 1
	if !ok {
		p.wrongCodes++
	}
	deny := p.wrongCodes >= maxWrongCodes
	po.mu.Unlock()
	if deny {
		po.decide(p, api.DecisionDeny, false)
	}
	return ok
}

// Printable replaces control characters (terminal escapes among them) in
// s (see api.Printable).
func Printable(s string) string { return api.Printable(s) }
