package agent

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"
)

const (
	// pbkdfIterations makes a lock passphrase costly to guess even for a
	// process that could read the agent's memory.
	pbkdfIterations = 100_000
	// maxUnlockDelay caps the backoff after wrong passphrases (1 s, 2 s,
	// 4 s … as ssh-agent delays failed unlocks).
	maxUnlockDelay = 30 * time.Second
)

// Locked reports whether the agent is locked.
func (a *Agent) Locked() bool { return a.g.locked.Load() }

// Lock locks the agent, as `ssh-add -x` does: the in-memory sessions are
// dropped (unlock reads them back from the keyring), remembered approvals
// are forgotten, waiting approvals are refused, logins in flight are
// cancelled, and until Unlock every token, login and logout request answers
// ErrLocked. With a passphrase, Unlock requires it. Locking a locked agent
// answers ErrLocked.
func (a *Agent) Lock(ctx context.Context, passphrase string) error {
	if _, ok := restrictionFrom(ctx); ok {
		return fmt.Errorf("%w: not on a restricted socket", ErrDenied)
	}
	return a.lock(ctx, passphrase, "")
}

// lockBy locks without a passphrase for reason ("screen locked", "idle …").
func (a *Agent) lockBy(reason string) {
	if err := a.lock(context.Background(), "", reason); err == nil {
		a.log.Info("agent locked", "reason", reason)
	}
}

func (a *Agent) lock(ctx context.Context, passphrase, reason string) error {
	var salt, hash []byte
	if passphrase != "" {
		salt = make([]byte, 16)
		rand.Read(salt)
		var err error
		if hash, err = pbkdf2.Key(sha256.New, passphrase, salt, pbkdfIterations, 32); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	a.g.mu.Lock()
	if a.g.locked.Load() {
		a.g.mu.Unlock()
		return fmt.Errorf("%w: already locked", ErrLocked)
	}
	a.g.lockSalt, a.g.lockHash, a.g.failures = salt, hash, 0
	a.g.locked.Store(true)
	a.g.mu.Unlock()

	a.forgetApprovals(DecisionLocked)
	a.mu.Lock()
	dropped := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		dropped = append(dropped, s)
	}
	a.sessions = make(map[sessionKey]*session)
	a.pending, a.broken = nil, nil // the loader drops what it reads
	logins := make([]*loginFlight, 0, len(a.logins))
	for _, f := range a.logins {
		logins = append(logins, f)
	}
	a.mu.Unlock()
	for _, f := range logins {
		f.cancel()
	}
	forget(dropped...)
	a.releaseMemory()
	a.audit(ctx, AuditRecord{Event: AuditLock, Reason: reason})
	a.publish(Event{Kind: EventLocked, Message: reason})
	a.log.Info("locked", "sessions_dropped", len(dropped), "passphrase", passphrase != "")
	return nil
}

// Unlock unlocks the agent and reads the sessions back from the keyring.
// When the lock set a passphrase, passphrase must match (compared in
// constant time); a wrong one answers ErrDenied after a delay that doubles
// with each failure (1 s, 2 s, 4 s …, at most 30 s); attempts are served
// one at a time, and none is checked before the last failure's delay has
// passed, whether or not that attempt waited for its answer. Unlocking an unlocked agent does nothing.
func (a *Agent) Unlock(ctx context.Context, passphrase string) error {
	if _, ok := restrictionFrom(ctx); ok {
		return fmt.Errorf("%w: not on a restricted socket", ErrDenied)
	}
	a.g.unlockMu.Lock()
	defer a.g.unlockMu.Unlock()
	if !a.g.locked.Load() {
		return nil
	}
	a.g.mu.Lock()
	salt, want, notBefore := a.g.lockSalt, a.g.lockHash, a.g.unlockNotBefore
	a.g.mu.Unlock()
	if want != nil {
		// The backoff follows from the count of failures, not from the
		// guesser's patience: an attempt that gives up before the delay
		// ends is never checked, and the next one waits out the rest.
		if err := sleepUntil(ctx, notBefore); err != nil {
			return err
		}
		got, err := pbkdf2.Key(sha256.New, passphrase, salt, pbkdfIterations, 32)
		if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			a.g.mu.Lock()
			a.g.failures++
			delay := min(maxUnlockDelay, time.Second<<min(a.g.failures-1, 10))
			a.g.unlockNotBefore = time.Now().Add(delay)
			a.g.mu.Unlock()
			a.audit(ctx, AuditRecord{Event: AuditDenied, Reason: "wrong unlock passphrase"})
			a.log.Warn("unlock refused: wrong passphrase", "delay", delay)
			if err := sleepUntil(ctx, time.Now().Add(delay)); err != nil {
				return err
			}
			return fmt.Errorf("%w: wrong passphrase", ErrDenied)
		}
	}
	n, err := a.beginLoad(ctx) // read back in the background, as at start
	if err != nil {
		return fmt.Errorf("unlock: list sessions: %w", storeErr(err))
	}
	a.g.mu.Lock()
	a.g.lockSalt, a.g.lockHash, a.g.failures, a.g.unlockNotBefore = nil, nil, 0, time.Time{}
	a.g.locked.Store(false)
	a.g.mu.Unlock()
	a.g.lastActive.Store(a.now().UnixNano())
	select {
	case a.g.kick <- struct{}{}:
	default:
	}
	a.nudge()
	a.audit(ctx, AuditRecord{Event: AuditUnlock})
	a.publish(Event{Kind: EventUnlocked})
	a.log.Info("unlocked", "sessions", n)
	return nil
}

// sleepUntil waits until t (real time: the backoff must not follow a test
// clock) or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
