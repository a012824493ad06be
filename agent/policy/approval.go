package policy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mcpkey/mcpkey/agent/config"
	"github.com/mcpkey/mcpkey/api"
)

type approvalKey struct{ who, server string }

type remembered struct {
	allow bool
	until time.Time
}

// approval is a pending api.Approval. Its fields are guarded by Policy.mu.
type approval struct {
	api.Approval
	key      approvalKey
	remember time.Duration
	done     chan struct{} // closed once decided
	timer    *time.Timer
	// challenge is the code written to an answering terminal, if any;
	// wrongCodes counts the wrong ones sent back.
	challenge  *challenge
	wrongCodes int
	// failure says why the trusted prompt could not ask (api.DecisionFailed).
	failure string
}

// Await settles d: nil for Allow, d.Err for Deny, and for Ask it makes
// the request wait for the user's decision, unless a remembered one
// applies (a remembered denial is decided here, not in Decide).
func (po *Policy) Await(ctx context.Context, d Decision) error {
	switch d.Verdict {
	case Allow:
		return nil
	case Deny:
		return d.Err
	}
	req, pol := d.req, d.pol
	url, account, scopes := req.Server, req.Account, req.Scopes
	c, _, id := po.judge(ctx, d.caller, true) // Decide has judged the caller already
	key := approvalKey{id, url}
	now := po.now()

	po.mu.Lock()
	if r, ok := po.remembered[key]; ok {
		if now.Before(r.until) {
			po.mu.Unlock()
			if r.allow {
				return nil
			}
			po.Audit(ctx, AuditRecord{Event: AuditDenied, Server: url, Account: account, Scopes: scopes, Reason: "remembered denial"})
			return fmt.Errorf("%w: you denied %s access to %s (remembered until %s)", api.ErrDenied, c.Describe(), url, r.until.Format(time.TimeOnly))
		}
		delete(po.remembered, key)
	}
	p := po.pending[key]
	fresh := p == nil
	if fresh {
		po.nextID++
		p = &approval{Approval: api.Approval{ID: po.nextID, Server: url, Name: req.Name, Account: account,
			Scopes: slices.Clone(scopes), Caller: c, Requested: now, Deadline: now.Add(pol.Timeout),
			RememberSeconds: int64(pol.Remember / time.Second), Via: trustedVia(pol.Approval)}, key: key, remember: pol.Remember, done: make(chan struct{})}
		po.pending[key], po.byID[p.ID] = p, p
		p.timer = time.AfterFunc(pol.Timeout, func() { po.decide(p, api.DecisionTimeout, false) })
	}
	p.Waiting++
	snap := p.snapshotLocked()
	po.mu.Unlock()
	if fresh {
		po.Audit(ctx, AuditRecord{Event: AuditApprovalRequested, Server: url, Account: account, Scopes: scopes, Approval: snap.ID})
		po.opts.Publish(api.Event{Kind: api.EventApprovalRequested, Server: url, Account: account, Approval: &snap,
			Message: fmt.Sprintf("%s asks for a token for %s", c.Describe(), url)})
		po.log.Info("approval requested", "id", snap.ID, "server", url, "exe", c.Exe, "pid", c.PID)
		if snap.Via != "" {
			po.wg.Add(1)
			go po.askTrusted(p, snap.Via)
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		po.mu.Lock()
		p.Waiting--
		last := p.Waiting == 0 && p.Decision == ""
		po.mu.Unlock()
		if last {
			po.decide(p, api.DecisionCancelled, false)
		}
		return ctx.Err()
	}
	po.mu.Lock()
	answer, failure := p.Decision, p.failure
	po.mu.Unlock()
	switch answer {
	case api.DecisionAllow, api.DecisionAllowOnce:
		return nil
	case api.DecisionFailed:
		po.Audit(ctx, AuditRecord{Event: AuditDenied, Server: url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "approval could not be asked: " + failure})
		return fmt.Errorf("%w: approval %d for %s could not be asked (approval = %q): %s", api.ErrDenied, p.ID, url, pol.Approval, failure)
	case api.DecisionLocked:
		return fmt.Errorf("%w: run `mcpkey unlock`", api.ErrLocked)
	case api.DecisionTimeout:
		po.Audit(ctx, AuditRecord{Event: AuditDenied, Server: url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "approval timed out"})
		how := "while it waits, run `mcpkey approvals` and `mcpkey approve N`"
		if p.Via != "" {
			how = "while it waits, authenticate in the " + p.Via + " dialog"
		}
		return fmt.Errorf("%w: %s was not approved for %s within %s (approval %d); %s, or allow it in the config",
			api.ErrDenied, c.Describe(), url, pol.Timeout, p.ID, how)
	default:
		po.Audit(ctx, AuditRecord{Event: AuditDenied, Server: url, Account: account, Scopes: scopes, Approval: p.ID, Reason: "denied by the user"})
		return fmt.Errorf("%w: the user denied %s access to %s (approval %d)", api.ErrDenied, c.Describe(), url, p.ID)
	}
}

func (p *approval) snapshotLocked() api.Approval {
	s := p.Approval
	s.Scopes = slices.Clone(s.Scopes)
	return s
}

// decide settles p once; later calls report false.
func (po *Policy) decide(p *approval, d api.Decision, remember bool) bool {

	po.mu.Lock()
	if p.Decision != "" {
		po.mu.Unlock()
		return false
	}
	p.Decision = d
	p.timer.Stop()
	delete(po.pending, p.key)
	delete(po.byID, p.ID)
	switch {
	case d == api.DecisionAllow:
		po.remembered[p.key] = remembered{allow: true, until: po.now().Add(p.remember)}
	case d == api.DecisionDeny && remember:
		po.remembered[p.key] = remembered{allow: false, until: po.now().Add(p.remember)}
	}
	snap := p.snapshotLocked()
	po.mu.Unlock()
	close(p.done)
	po.Audit(context.Background(), AuditRecord{Event: AuditApprovalAnswered, Server: snap.Server, Account: snap.Account,
		Scopes: snap.Scopes, Approval: snap.ID, Decision: string(d),
		Caller: &AuditCaller{Transport: snap.Caller.Transport, PID: snap.Caller.PID, Exe: snap.Caller.Exe, Client: snap.Caller.Client}})
	po.opts.Publish(api.Event{Kind: api.EventApprovalAnswered, Server: snap.Server, Account: snap.Account, Approval: &snap})
	po.log.Info("approval answered", "id", snap.ID, "decision", d)
	return true
}

// Approvals lists the approvals waiting for an answer, oldest first.
func (po *Policy) Approvals(ctx context.Context) ([]api.Approval, error) {
	if d := po.Decide(ctx, Request{Op: OpManage}); d.Verdict == Deny {
		return nil, d.Err
	}
	po.mu.Lock()
	out := make([]api.Approval, 0, len(po.byID))
	for _, p := range po.byID {
		out = append(out, p.snapshotLocked())
	}
	po.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AnswerApproval answers approval id: api.DecisionAllowOnce, api.DecisionAllow
// (remembered for the server's remember time) or api.DecisionDeny (remembered
// too when remember is set). It is Answer for callers that cannot confirm
// in a terminal (the tray, in-process callers): a terminal answerer gets
// api.ErrDenied telling it to confirm.
func (po *Policy) AnswerApproval(ctx context.Context, id int, d api.Decision, remember bool) error {
	r, err := po.Answer(ctx, api.Answer{ID: id, Decision: d, Remember: remember})
	if err == nil && r.ConfirmInTerminal {
		return fmt.Errorf("%w: approval %d: confirm with the code shown in your terminal (mcpkey approve does)", api.ErrDenied, id)
	}
	return err
}

// Answer answers an approval. Only a person may allow one: see
// approverTerminal for who may. A terminal answerer gets
// AnswerResult.ConfirmInTerminal first and must send the code the agent
// wrote to its terminal; a denial is accepted from any local caller.
func (po *Policy) Answer(ctx context.Context, ans api.Answer) (api.AnswerResult, error) {
	if d := po.Decide(ctx, Request{Op: OpManage}); d.Verdict == Deny {
		return api.AnswerResult{}, d.Err
	}
	d, remember := ans.Decision, ans.Remember
	switch d {
	case api.DecisionAllowOnce, api.DecisionAllow, api.DecisionDeny:
	default:
		return api.AnswerResult{}, fmt.Errorf("%w: decision must be allow_once, allow or deny", api.ErrInvalidRequest)
	}
	po.mu.Lock()
	p := po.byID[ans.ID]
	po.mu.Unlock()
	if p == nil {
		return api.AnswerResult{}, fmt.Errorf("%w: no approval %d is waiting (run `mcpkey approvals`)", api.ErrNotFound, ans.ID)
	}
	if d != api.DecisionDeny && p.Via != "" {
		// Fixed at creation: no lock needed.
		return api.AnswerResult{}, po.refuseApprover(ctx, p, fmt.Sprintf("approval %d is answered only in the %s dialog (approval = %q); deny needs no dialog", p.ID, p.Via, p.Via))
	}
	if d != api.DecisionDeny {
		tty, dev, err := po.approverTerminal(ctx, p)
		if err != nil {
			return api.AnswerResult{}, err
		}
		if tty != "" {
			c, _ := CallerFrom(ctx)
			if ans.Code == "" {
				if err := po.challengeTerminal(p, c.PID, d, tty, dev); err != nil {
					return api.AnswerResult{}, err
				}
				return api.AnswerResult{ConfirmInTerminal: true}, nil
			}
			if !po.checkChallenge(p, c.PID, d, ans.Code) {
				return api.AnswerResult{}, po.refuseApprover(ctx, p, fmt.Sprintf("wrong or stale confirmation code (%d wrong codes deny the request)", maxWrongCodes))
			}
		}
	}
	if d == api.DecisionAllow {
		remember = true
	}
	if !po.decide(p, d, remember) {
		return api.AnswerResult{}, fmt.Errorf("%w: approval %d was already settled", api.ErrNotFound, ans.ID)
	}
	return api.AnswerResult{}, nil
}

// forgetApprovals drops remembered decisions and settles every pending
// approval as d (lock).
func (po *Policy) forgetApprovals(d api.Decision) {
	po.mu.Lock()
	clear(po.remembered)
	ps := make([]*approval, 0, len(po.byID))
	for _, p := range po.byID {
		ps = append(ps, p)
	}
	po.mu.Unlock()
	for _, p := range ps {
		po.decide(p, d, false)
	}
}

// trustedVia is Approval.Via for an approval mode: "" for config.ApprovalPrompt.
func trustedVia(mode string) string {
	if mode == config.ApprovalPrompt || mode == "" {
		return ""
	}
	return mode
}
