package agent

import (
	"time"

	"github.com/mcpkey/mcpkey/agent/internal/wipe"
	"github.com/mcpkey/mcpkey/agent/store"
)

// Tokens in memory (issue 13 §9; see package wipe for why). A session holds
// its tokens in memory it allocated itself (wipe.Own) and overwrites it when
// it drops them (lock, logout) or two refreshes after they were superseded;
// the copies decoded from a token response or read from the store are
// overwritten once the session has its own; the ipc server clears its reply
// buffers. After a lock or a logout the agent returns freed memory to the OS
// (outbound.releaseMemory), which zeroes whole free pages. Copies made inside
// libraries (net/http's and the keyring's buffers) are not ours to wipe;
// e2e's TestLockScrubsMemory counts what remains in a core dump.

// adoptLocked makes r the session's record. Its tokens are copied into
// memory of the session's own unless they are the ones it already holds;
// tokens it no longer holds are retired, and those retired by the previous
// adoption (two generations old: no caller is still being handed them) are
// wiped.
func (s *session) adoptLocked(r store.SessionRecord) {
	if s.dropped {
		// Wiped (lock, logout) while a refresh was in flight: the agent no
		// longer holds this session; the refresh persists what it got.
		return
	}
	var retired []string
	r.AccessToken = s.keepOrOwn(s.rec.AccessToken, r.AccessToken, &retired)
	r.RefreshToken = s.keepOrOwn(s.rec.RefreshToken, r.RefreshToken, &retired)
	s.adoptKeyLocked(s.rec.DPoPKey, r.DPoPKey)
	r.DPoPKey = s.keepOrOwn(s.rec.DPoPKey, r.DPoPKey, &retired)
	for _, t := range s.retired {
		wipe.String(t)
	}
	s.rec, s.retired = r, retired
	s.renewHotLocked()
}

// keepOrOwn returns held when next equals it, else an owned copy of next,
// appending held to retired.
func (s *session) keepOrOwn(held, next string, retired *[]string) string {
	if next == held {
		return held
	}
	if held != "" {
		*retired = append(*retired, held)
	}
	return wipe.Own(next)
}

// wipeLocked overwrites every token the session holds and forgets them;
// the session then takes no new ones (adoptLocked).
func (s *session) wipeLocked() {
	for _, t := range append(s.retired, s.rec.AccessToken, s.rec.RefreshToken, s.rec.DPoPKey) {
		wipe.String(t)
	}
	s.rec.AccessToken, s.rec.RefreshToken, s.rec.DPoPKey, s.retired = "", "", "", nil
	s.key.Store(nil)
	s.dropped = true
	s.renewHotLocked()
}

// forgetWait bounds how long forget waits for a refresh in flight: it is
// never cancelled (a rotated refresh token the answer carries must reach
// the store), and it holds the session's tokens in its request until done.
const forgetWait = 5 * time.Second

// forget wipes the tokens of sessions the agent no longer holds, once their
// refreshes in flight, if any, are done (at most forgetWait).
func forget(ss ...*session) {
	timeout := time.NewTimer(forgetWait)
	defer timeout.Stop()
	for _, s := range ss {
		s.mu.Lock()
		f := s.refreshing
		s.mu.Unlock()
		if f != nil {
			select {
			case <-f.done:
			case <-timeout.C:
			}
		}
		s.mu.Lock()
		s.wipeLocked()
		s.mu.Unlock()
	}
}

// newLoadedSession is newSession for a record just read from the store,
// whose token strings (converted from the store's buffers) nothing else
// holds: they are overwritten once the session has its own copies.
func newLoadedSession(r store.SessionRecord, cap *marginCap) *session {
	s := newSession(r, cap)
	wipe.String(r.AccessToken)
	wipe.String(r.RefreshToken)
	return s
}
