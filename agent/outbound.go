package agent

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// outbound is the agent's room for its HTTP clients and the memory their
// traffic leaves behind: two hardened clients, made once (with and without
// allow_private_network), so connections to an authorization server are
// reused and no per-login client leaves idle connections behind.
type outbound struct {
	make        func(allowPrivateNetwork bool) *http.Client // Config.HTTPClient
	once        [2]sync.Once
	clients     [2]*http.Client
	trimPending atomic.Bool // see trimSoon
}

// client returns the hardened client for t.
func (o *outbound) client(t target) *http.Client {
	i := 0
	if t.settings.AllowPrivateNetwork {
		i = 1
	}
	o.once[i].Do(func() { o.clients[i] = o.make(i == 1) })
	return o.clients[i]
}

// releaseMemory closes idle connections to authorization servers (net/http
// keeps the last request, a refresh token in its form, in each connection's
// write buffer), collects garbage twice and returns free pages to the OS, so the
// tokens in them are gone too (the kernel hands back zeroed pages).
func (o *outbound) releaseMemory() {
	for i := range o.clients {
		o.once[i].Do(func() {}) // pairs with client's write
		if c := o.clients[i]; c != nil {
			c.CloseIdleConnections()
		}
	}
	// Two collections: sync.Pools (encoding/json's encoder buffers hold the
	// last replies) are emptied only by the second.
	runtime.GC()
	debug.FreeOSMemory()
}

// trimDelay is how long after a burst of work (a login, with its HTTP
// clients, listener and TLS state) the agent hands freed memory back to the
// OS. An idle agent should stay small: it runs all day.
const trimDelay = 2 * time.Second

// trimSoon returns freed heap to the OS shortly after a burst ends; one
// trim per burst, however many logins end in it.
func (o *outbound) trimSoon() {
	if o.trimPending.CompareAndSwap(false, true) {
		time.AfterFunc(trimDelay, func() {
			o.trimPending.Store(false)
			debug.FreeOSMemory()
		})
	}
}
