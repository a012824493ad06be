package agent

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"
)

type approvalKey struct{ who, server string }

type remembered struct {
	allow bool
	until time.Time
}

// approval is a pending Approval. Its fields are guarded by guard.mu.
type approval struct {
	Approval
	key      approvalKey
	remember time.Duration
	done     chan struct{} // closed once decided
	timer    *time.Timer
	// challenge is the code written to an answering terminal, if any;
	// wrongCodes counts the wrong ones sent back.
	challenge  *challenge
	wrongCodes int
	// failure says why the trusted prompt could not ask (DecisionFailed).
	failure string
}

// approve makes the request wait for the user's decision, unless a
// remembered one applies.
func (a *Agent) approve(ctx context.Context, c Caller, t target, account string, scopes []string, pol ApprovalPolicy) error {
	c, _, id := a.judge(ctx, c, true) // admitQuick has judged c already
	key := approvalKey{id, t.url}
	now := a.now()
	g := &a.g
	g.mu.Lock()
	if r, ok := g.remembered[key]; ok {
		if now.Before(r.until) {
			g.mu.Unlock()
			if r.allow {
				return nil
			}
			a.audit(ctx, AuditRecord{Event: AuditDenied, Server: t.url, Account: account, Scopes: scopes, Reason: "remembered denial"})
			return fmt.Errorf("%w: you denied %s access to %s (remembered until %s)", ErrDenied, c.Describe(), t.url, r.until.Format(time.TimeOnly))
		}
		delete(g.remembered, key)
	}
	p := g.pending[key]
	fresh := p == nil
	if fresh {
		g.nextID++
		p = &approval{Approval: Approval{ID: g.nextID, Server: t.url, Name: t.settings.Name, Account: account,
			Scopes: slices.Clone(scopes), Caller: c, Requested: now, Deadline: now.Add(pol.Timeout),
			RememberSeconds: int64(pol.Remember / time.Second), Via: trustedVia(pol.Approval)}, key: key, remember: pol.Remember, done: make(chan struct{})}
		g.pending[key], g.byID[p.ID] = p, p
		p.timer = time.AfterFunc(pol.Timeout, func() { a.decide(p, DecisionTimeout, false) })
	}
	p.Waiting++
	snap := p.snapshotLocked()
	g.mu.Unlock()
	if fresh {
		a.audit(ctx, AuditRecord{Event: AuditApprovalRequested, Server: t.url, Account: account, Scopes: scopes, Approval: snap.ID})
		a.publish(Event{Kind: EventApprovalRequested, Server: t.url, Account: account, Approval: &snap,
			Message: fmt.Sprintf("%s asks for a token for %s", c.Describe(), t.url)})
		a.log.Info("approval requested", "id", snap.ID, "server", t.url, "exe", c.Exe, "pid", c.PID)
		if snap.Via != "" {
			a.wg.Add(1)
			go a.askTrusted(p, snap.Via)
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		g.mu.Lock()
		p.Waiting--
		last := p.Waiting == 0 && p.Decision == ""
		g.mu.Unlock()
		if last {
			a.decide(p, DecisionCancelled, false)
		}
		return ctx.Err()
	}
	g.mu.Lock()
	d, failure := p.Decision, p.failure
	g.mu.Unlock()
	switch d {
	case DecisionAllow, DecisionAllowOnce:
		return nil
	case DecisionFailed:
		a.audit(ctx, AuditRecord{Event: AuditDenied, Server: t.url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "approval could not be asked: " + failure})
		return fmt.Errorf("%w: approval %d for %s could not be asked (approval = %q): %s", ErrDenied, p.ID, t.url, pol.Approval, failure)
	case DecisionLocked:
		return fmt.Errorf("%w: run `mcpkey unlock`", ErrLocked)
	case DecisionTimeout:
		a.audit(ctx, AuditRecord{Event: AuditDenied, Server: t.url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "approval timed out"})
		how := "while it waits, run `mcpkey approvals` and `mcpkey approve N`"
		if p.Via != "" {
			how = "while it waits, authenticate in the " + p.Via + " dialog"
		}
		return fmt.Errorf("%w: %s was not approved for %s within %s (approval %d); %s, or allow it in the config",
			ErrDenied, c.Describe(), t.url, pol.Timeout, p.ID, how)
	default:
		a.audit(ctx, AuditRecord{Event: AuditDenied, Server: t.url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "denied by the user"})
		return fmt.Errorf("%w: the user denied %s access to %s (approval %d)", ErrDenied, c.Describe(), t.url, p.ID)
	}
}

func (p *approval) snapshotLocked() Approval {
	s := p.Approval
	s.Scopes = slices.Clone(s.Scopes)
	return s
}

// decide settles p once; later calls report false.
func (a *Agent) decide(p *approval, d Decision, remember bool) bool {
	g := &a.g
	g.mu.Lock()
	if p.Decision != "" {
		g.mu.Unlock()
		return false
	}
	p.Decision = d
	p.timer.Stop()
	delete(g.pending, p.key)
	delete(g.byID, p.ID)
	switch {
	case d == DecisionAllow:
		g.remembered[p.key] = remembered{allow: true, until: a.now().Add(p.remember)}
	case d == DecisionDeny && remember:
		g.remembered[p.key] = remembered{allow: false, until: a.now().Add(p.remember)}
	}
	snap := p.snapshotLocked()
	g.mu.Unlock()
	close(p.done)
	a.audit(context.Background(), AuditRecord{Event: AuditApprovalAnswered, Server: snap.Server, Account: snap.Account,
		Scopes: snap.Scopes, Approval: snap.ID, Decision: string(d),
		Caller: &AuditCaller{Transport: snap.Caller.Transport, PID: snap.Caller.PID, Exe: snap.Caller.Exe, Client: snap.Caller.Client}})
	a.publish(Event{Kind: EventApprovalAnswered, Server: snap.Server, Account: snap.Account, Approval: &snap})
	a.log.Info("approval answered", "id", snap.ID, "decision", d)
	return true
}

// Approvals lists the approvals waiting for an answer, oldest first.
func (a *Agent) Approvals(ctx context.Context) ([]Approval, error) {
	if _, ok := restrictionFrom(ctx); ok {
		return nil, fmt.Errorf("%w: not on a restricted socket", ErrDenied)
	}
	a.g.mu.Lock()
	out := make([]Approval, 0, len(a.g.byID))
	for _, p := range a.g.byID {
		out = append(out, p.snapshotLocked())
	}
	a.g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AnswerApproval answers approval id: DecisionAllowOnce, DecisionAllow
// (remembered for the server's remember time) or DecisionDeny (remembered
// too when remember is set). It is Answer for callers that cannot confirm
// in a terminal (the tray, in-process callers): a terminal answerer gets
// ErrDenied telling it to confirm.
func (a *Agent) AnswerApproval(ctx context.Context, id int, d Decision, remember bool) error {
	r, err := a.Answer(ctx, Answer{ID: id, Decision: d, Remember: remember})
	if err == nil && r.ConfirmInTerminal {
		return fmt.Errorf("%w: approval %d: confirm with the code shown in your terminal (mcpkey approve does)", ErrDenied, id)
	}
	return err
}

// Answer answers an approval. Only a person may allow one: see
// approverTerminal for who may. A terminal answerer gets
// AnswerResult.ConfirmInTerminal first and must send the code the agent
// wrote to its terminal; a denial is accepted from any local caller.
func (a *Agent) Answer(ctx context.Context, ans Answer) (AnswerResult, error) {
	if _, ok := restrictionFrom(ctx); ok {
		return AnswerResult{}, fmt.Errorf("%w: not on a restricted socket", ErrDenied)
	}
	d, remember := ans.Decision, ans.Remember
	switch d {
	case DecisionAllowOnce, DecisionAllow, DecisionDeny:
	default:
		return AnswerResult{}, fmt.Errorf("%w: decision must be allow_once, allow or deny", ErrInvalidRequest)
	}
	a.g.mu.Lock()
	p := a.g.byID[ans.ID]
	a.g.mu.Unlock()
	if p == nil {
		return AnswerResult{}, fmt.Errorf("%w: no approval %d is waiting (run `mcpkey approvals`)", ErrNotFound, ans.ID)
	}
	if d != DecisionDeny && p.Via != "" {
		// Fixed at creation: no lock needed.
		return AnswerResult{}, a.refuseApprover(ctx, p, fmt.Sprintf("approval %d is answered only in the %s dialog (approval = %q); deny needs no dialog", p.ID, p.Via, p.Via))
	}
	if d != DecisionDeny {
		tty, dev, err := a.approverTerminal(ctx, p)
		if err != nil {
			return AnswerResult{}, err
		}
		if tty != "" {
			c, _ := CallerFrom(ctx)
			if ans.Code == "" {
				if err := a.challengeTerminal(p, c.PID, d, tty, dev); err != nil {
					return AnswerResult{}, err
				}
				return AnswerResult{ConfirmInTerminal: true}, nil
			}
			if !a.checkChallenge(p, c.PID, d, ans.Code) {
				return AnswerResult{}, a.refuseApprover(ctx, p, fmt.Sprintf("wrong or stale confirmation code (%d wrong codes deny the request)", maxWrongCodes))
			}
		}
	}
	if d == DecisionAllow {
		remember = true
	}
	if !a.decide(p, d, remember) {
		return AnswerResult{}, fmt.Errorf("%w: approval %d was already settled", ErrNotFound, ans.ID)
	}
	return AnswerResult{}, nil
}

// forgetApprovals drops remembered decisions and settles every pending
// approval as d (lock).
func (a *Agent) forgetApprovals(d Decision) {
	a.g.mu.Lock()
	clear(a.g.remembered)
	ps := make([]*approval, 0, len(a.g.byID))
	for _, p := range a.g.byID {
		ps = append(ps, p)
	}
	a.g.mu.Unlock()
	for _, p := range ps {
		a.decide(p, d, false)
	}
}

// trustedVia is Approval.Via for an approval mode: "" for ApprovalPrompt.
func trustedVia(mode string) string {
	if mode == ApprovalPrompt || mode == "" {
		return ""
	}
	return mode
}
