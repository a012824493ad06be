package policy

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/mcpkey/mcpkey/api"
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
func (po *Policy) Locked() bool { return po.locked.Load() }

// Touch records a request: lock_after_idle counts from the last one.
func (po *Policy) Touch() { po.lastActive.Store(po.now().UnixNano()) }

// Lock locks, as `ssh-add -x` does: remembered approvals are forgotten,
// waiting approvals are refused, Options.OnLock drops the in-memory
// sessions and logins in flight, and until Unlock Decide refuses every
// token, login, logout and secret (api.ErrLocked). With a passphrase,
// Unlock requires it. Locking a locked agent answers api.ErrLocked.
func (po *Policy) Lock(ctx context.Context, passphrase string) error {
	if d := po.Decide(ctx, Request{Op: OpManage}); d.Verdict == Deny {
		return d.Err
	}
	return po.lock(ctx, passphrase, "")
}

// lockBy locks without a passphrase for reason ("screen locked", "idle …").
func (po *Policy) lockBy(reason string) {
	if err := po.lock(context.Background(), "", reason); err == nil {
		po.log.Info("agent locked", "reason", reason)
	}
}

func (po *Policy) lock(ctx context.Context, passphrase, reason string) error {
	var salt, hash []byte
	if passphrase != "" {
		salt = make([]byte, 16)
		rand.Read(salt)
		var err error
		if hash, err = pbkdf2.Key(sha256.New, passphrase, salt, pbkdfIterations, 32); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	po.mu.Lock()
	if po.locked.Load() {
		po.mu.Unlock()
		return fmt.Errorf("%w: already locked", api.ErrLocked)
	}
	po.lockSalt, po.lockHash, po.failures = salt, hash, 0
	po.locked.Store(true)
	po.mu.Unlock()

	po.forgetApprovals(api.DecisionLocked)
	dropped := po.opts.OnLock()
	po.Audit(ctx, AuditRecord{Event: AuditLock, Reason: reason})
	po.opts.Publish(api.Event{Kind: api.EventLocked, Message: reason})
	po.log.Info("locked", "sessions_dropped", dropped, "passphrase", passphrase != "")
	return nil
}

// Unlock unlocks; reload (the agent reading its sessions back from the
// keyring) runs first, and its error keeps the agent locked. When the lock
// set a passphrase, passphrase must match (compared in constant time); a
// wrong one answers api.ErrDenied after a delay that doubles with each
// failure (1 s, 2 s, 4 s …, at most 30 s); attempts are served one at a
// time, and none is checked before the last failure's delay has passed,
// whether or not that attempt waited for its answer. Unlocking an unlocked
// agent does nothing.
func (po *Policy) Unlock(ctx context.Context, passphrase string, reload func(context.Context) (int, error)) error {
	if d := po.Decide(ctx, Request{Op: OpManage}); d.Verdict == Deny {
		return d.Err
	}
	po.unlockMu.Lock()
	defer po.unlockMu.Unlock()
	if !po.locked.Load() {
		return nil
	}
	po.mu.Lock()
	salt, want, notBefore := po.lockSalt, po.lockHash, po.unlockNotBefore
	po.mu.Unlock()
	if want != nil {
		// The backoff follows from the count of failures, not from the
		// guesser's patience: an attempt that gives up before the delay
		// ends is never checked, and the next one waits out the rest.
		if err := sleepUntil(ctx, notBefore); err != nil {
			return err
		}
		got, err := pbkdf2.Key(sha256.New, passphrase, salt, pbkdfIterations, 32)
		if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			po.mu.Lock()
			po.failures++
			delay := min(maxUnlockDelay, time.Second<<min(po.failures-1, 10))
			po.unlockNotBefore = time.Now().Add(delay)
			po.mu.Unlock()
			po.Audit(ctx, AuditRecord{Event: AuditDenied, Reason: "wrong unlock passphrase"})
			po.log.Warn("unlock refused: wrong passphrase", "delay", delay)
			if err := sleepUntil(ctx, time.Now().Add(delay)); err != nil {
				return err
			}
			return fmt.Errorf("%w: wrong passphrase", api.ErrDenied)
		}
	}
	n, err := reload(ctx)
	if err != nil {
		return err
	}
	po.mu.Lock()
	po.lockSalt, po.lockHash, po.failures, po.unlockNotBefore = nil, nil, 0, time.Time{}
	po.locked.Store(false)
	po.mu.Unlock()
	po.Touch()
	po.wakeIdle()
	po.Audit(ctx, AuditRecord{Event: AuditUnlock})
	po.opts.Publish(api.Event{Kind: api.EventUnlocked})
	po.log.Info("unlocked", "sessions", n)
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
