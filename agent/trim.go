package agent

import (
	"runtime/debug"
	"time"
)

// trimDelay is how long after a burst of work (a login, with its HTTP
// clients, listener and TLS state) the agent hands freed memory back to the
// OS. An idle agent should stay small: it runs all day.
const trimDelay = 2 * time.Second

// trimSoon returns freed heap to the OS shortly after a burst ends; one
// trim per burst, however many logins end in it.
func (a *Agent) trimSoon() {
	if a.trimPending.CompareAndSwap(false, true) {
		time.AfterFunc(trimDelay, func() {
			a.trimPending.Store(false)
			debug.FreeOSMemory()
		})
	}
}
