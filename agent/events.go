package agent

import (
	"context"
	"sync"
	"time"
)

// subscriberBuffer is how many events a subscriber may fall behind before it
// is dropped. Dropping (closing its channel) keeps a slow reader from ever
// blocking the agent; a subscriber that wants to keep going resubscribes and
// re-reads state with Sessions.
const subscriberBuffer = 128

// hub is the agent's room for events: it stamps them with the agent's
// clock and fans them out to subscribers without ever blocking the
// publisher.
type hub struct {
	now  func() time.Time
	mu   sync.Mutex // guards subs
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch     chan Event
	closed bool // guarded by hub.mu
}

func newHub(now func() time.Time) *hub { return &hub{now: now, subs: make(map[*subscriber]struct{})} }

// subscribe returns a channel of events that is closed when ctx ends or when
// the subscriber falls subscriberBuffer events behind.
func (h *hub) subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.dropLocked(s)
	})
	return s.ch
}

func (h *hub) dropLocked(s *subscriber) {
	if s.closed {
		return
	}
	s.closed = true
	delete(h.subs, s)
	close(s.ch)
}

// publish delivers e to every subscriber that has room and drops the rest.
// An e without a time gets the clock's.
func (h *hub) publish(e Event) {
	if e.Time.IsZero() {
		e.Time = h.now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- e:
		default:
			h.dropLocked(s)
		}
	}
}
