package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get and Delete when no item has the key.
var ErrNotFound = errors.New("store: item not found")

// ErrCorrupt wraps every error about an item whose content cannot be decoded
// (bad JSON, a broken chunk manifest, a wrong schema). It is never confused
// with ErrNotFound. Messages name the key, never the content.
var ErrCorrupt = errors.New("store: corrupt item")

// ErrInvalidKey is returned for a key the store cannot hold (empty, not
// printable ASCII, or, under Chunked, using the reserved character '#').
var ErrInvalidKey = errors.New("store: invalid key")

// ErrFull wraps the error for a write the store has no room for: the
// kernel keyring's per-user quota (a non-root user may keep 20000 bytes in
// 200 keys, all programs together) is used up. What was stored before stays
// readable; the message says how full the quota is and what to do.
var ErrFull = errors.New("credential store full")

// ErrUnavailable wraps every failure to reach the backing store (a hung or
// locked keyring daemon, a timeout). The agent maps it to store_unavailable.
var ErrUnavailable = errors.New("store unavailable")

// Store is a namespaced key/value store for secrets. Keys are short ASCII
// paths such as "session/3f2a…/refresh"; an implementation adds its own
// namespace ("mcpkey:") and never lists or touches items outside it.
// Implementations are safe for concurrent use. Every method honours ctx.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key, replacing any previous value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; it returns ErrNotFound when there was none.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys that start with prefix, without reading values.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Backend names the implementation ("secret-service", "file", "memory", …).
	Backend() string
}
