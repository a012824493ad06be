package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// memory is an in-memory Store: for tests and an ephemeral agent.
type memory struct {
	mu    sync.RWMutex // guards items
	items map[string][]byte
}

var _ Store = (*memory)(nil)

// NewMemory returns an empty in-memory Store. Values are copied on the way
// in and out, so callers may reuse their slices. Backend() is "memory".
func NewMemory() Store {
	return &memory{items: make(map[string][]byte)}
}

func (m *memory) Backend() string { return "memory" }

func (m *memory) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkOp(ctx, "get", key); err != nil {
		return nil, err
	}
	m.mu.RLock()
	v, ok := m.items[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (m *memory) Put(ctx context.Context, key string, value []byte) error {
	if err := checkOp(ctx, "put", key); err != nil {
		return err
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	m.mu.Lock()
	m.items[key] = v
	m.mu.Unlock()
	return nil
}

func (m *memory) Delete(ctx context.Context, key string) error {
	if err := checkOp(ctx, "delete", key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[key]; !ok {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	delete(m.items, key)
	return nil
}

func (m *memory) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	m.mu.RLock()
	keys := make([]string, 0, len(m.items))
	for k := range m.items {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// checkOp validates key and ctx before an operation.
func checkOp(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
	if err := validKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// validKey accepts non-empty printable ASCII without spaces, at most 512
// bytes. (Chunked further reserves '#' for its part items.)
func validKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > 512 {
		return fmt.Errorf("%w: longer than 512 bytes", ErrInvalidKey)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c > '~' {
			return fmt.Errorf("%w: %q: byte %d is not printable ASCII", ErrInvalidKey, key, i)
		}
	}
	return nil
}
